package restart

import (
	"sync"
	"time"
)

// TailLine is one line of a program's output kept in memory.
type TailLine struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	Text   string    `json:"text"`
}

// The streams of a program, as TailLine.Stream names them.
const (
	streamStdout = 0
	streamStderr = 1
)

var streamNames = [2]string{"stdout", "stderr"}

// Defaults of LauncherConfig.TailLines and TailBytes.
const (
	defaultTailLines = 200
	defaultTailBytes = 64 << 10
)

// tailMinLines and tailMinBytes are the first sizes of a ring that grows:
// a program that says one thing at start holds a few hundred bytes.
const (
	tailMinLines = 8
	tailMinBytes = 256
)

// processTail is the last output of one instance, one ring per stream. It
// is safe for concurrent use.
type processTail struct {
	mu    sync.Mutex
	rings [2]tailRing
}

// tailRing keeps the last lines of one stream: at most maxLines lines and
// maxBytes bytes of text, whichever is reached first. Lines live in one
// circular byte buffer, one after the other, and a circular slice of
// entries points into it. Both grow by doubling up to their limits and are
// never shrunk, so a program that writes nothing holds nothing and a busy
// one allocates nothing per line once they are full.
type tailRing struct {
	maxLines, maxBytes int

	ents  []tailEntry // circular; len is the capacity in use
	head  int         // index in ents of the oldest line
	n     int         // lines held
	data  []byte      // circular; len is the capacity in use
	start int         // offset in data of the oldest line's text
	used  int         // bytes of text held
}

// tailEntry is one line: when it was read and where its text is.
type tailEntry struct {
	nanos int64 // Unix nanoseconds
	off   int32
	len   int32
}

// add keeps line, read at now, evicting the oldest lines as needed. A line
// longer than maxBytes is kept cut to maxBytes.
func (r *tailRing) add(now time.Time, line []byte) {
	if r.maxLines <= 0 || r.maxBytes <= 0 {
		return
	}
	if len(line) > r.maxBytes {
		line = line[:r.maxBytes]
	}
	for r.n > 0 && (r.n >= r.maxLines || r.used+len(line) > r.maxBytes) {
		r.evict()
	}
	if r.n == len(r.ents) {
		r.growEntries()
	}
	if r.used+len(line) > len(r.data) {
		r.growData(r.used + len(line))
	}
	off := 0
	if len(r.data) > 0 {
		off = (r.start + r.used) % len(r.data)
		k := copy(r.data[off:], line)
		copy(r.data, line[k:])
	}
	r.ents[(r.head+r.n)%len(r.ents)] = tailEntry{nanos: now.UnixNano(), off: int32(off), len: int32(len(line))}
	r.n++
	r.used += len(line)
}

func (r *tailRing) evict() {
	e := r.ents[r.head]
	r.head = (r.head + 1) % len(r.ents)
	r.n--
	r.used -= int(e.len)
	if r.n == 0 {
		r.head, r.start, r.used = 0, 0, 0
		return
	}
	if len(r.data) > 0 {
		r.start = (r.start + int(e.len)) % len(r.data)
	}
}

// growEntries doubles the entries, up to maxLines, oldest first.
func (r *tailRing) growEntries() {
	size := min(r.maxLines, max(tailMinLines, 2*len(r.ents)))
	ents := make([]tailEntry, size)
	for i := range r.n {
		ents[i] = r.ents[(r.head+i)%len(r.ents)]
	}
	r.ents, r.head = ents, 0
}

// growData makes room for need bytes, up to maxBytes, and moves the text
// held to the front.
func (r *tailRing) growData(need int) {
	size := min(r.maxBytes, max(tailMinBytes, 2*len(r.data), need))
	data := make([]byte, size)
	off := 0
	for i := range r.n {
		e := &r.ents[(r.head+i)%len(r.ents)]
		r.text(data[off:off+int(e.len)], e)
		e.off = int32(off)
		off += int(e.len)
	}
	r.data, r.start = data, 0
}

// text copies the text of e into dst, which has e.len bytes.
func (r *tailRing) text(dst []byte, e *tailEntry) {
	if e.len == 0 {
		return
	}
	k := copy(dst, r.data[e.off:])
	copy(dst[k:], r.data)
}

// lines appends the lines held, oldest first, to out.
func (r *tailRing) lines(out []TailLine, stream string) []TailLine {
	for i := range r.n {
		e := &r.ents[(r.head+i)%len(r.ents)]
		b := make([]byte, e.len)
		r.text(b, e)
		out = append(out, TailLine{Time: time.Unix(0, e.nanos), Stream: stream, Text: string(b)})
	}
	return out
}

// tailForLines returns the instance's tail, made on first use.
func (p *Process) tailForLines() *processTail {
	if t := p.tail.Load(); t != nil {
		return t
	}
	t := &processTail{}
	for i := range t.rings {
		t.rings[i] = tailRing{maxLines: int(p.tailLines), maxBytes: int(p.tailBytes)}
	}
	if !p.tail.CompareAndSwap(nil, t) {
		return p.tail.Load()
	}
	return t
}

// Tail returns the instance's last output lines, both streams merged in
// time order (oldest first). Complete once OutputDone is closed; safe to
// call at any time from any goroutine.
func (p *Process) Tail() []TailLine {
	t := p.tail.Load()
	if t == nil {
		return nil
	}
	t.mu.Lock()
	out := t.rings[streamStdout].lines(make([]TailLine, 0, t.rings[0].n+t.rings[1].n), streamNames[streamStdout])
	nOut := len(out)
	out = t.rings[streamStderr].lines(out, streamNames[streamStderr])
	t.mu.Unlock()
	return mergeByTime(out, nOut)
}

// mergeByTime merges the two runs ls[:mid] and ls[mid:], each in time
// order, into one in time order; on equal times the first run goes first.
func mergeByTime(ls []TailLine, mid int) []TailLine {
	a, b := ls[:mid], ls[mid:]
	if len(a) == 0 || len(b) == 0 {
		return ls
	}
	out := make([]TailLine, 0, len(ls))
	for len(a) > 0 && len(b) > 0 {
		if b[0].Time.Before(a[0].Time) {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}
