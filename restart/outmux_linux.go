package restart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/epoll"
)

// outputMux copies the output pipes of every program, line by line, to the
// program's output file or, with the program's prefix, to respawnd's own
// stdout and stderr, and keeps each instance's last lines in memory. One
// goroutine and one epoll set serve all of them: an idle program's pipes
// cost no goroutine and no buffer (a partial line is kept only until its end
// comes, and a buffer grown for a long line is dropped once it is written).
// The goroutine runs while any pipe is open and ends with the last one.
// Nothing it writes to blocks it: output files are written so that a
// failure drops lines (see outFile), and respawnd's own stdout and stderr
// are the operator's to keep flowing.
//
// The epoll set is itself registered with the Go runtime's poller, so the
// goroutine parks without holding a thread.
type outputMux struct {
	l *Launcher

	mu      sync.Mutex // guards every field below
	set     *epoll.Set
	pipes   map[uint64]*outPipe
	next    uint64
	running bool
}

// outPipe is one program's stdout or stderr.
type outPipe struct {
	fd     int
	stream int       // streamStdout or streamStderr
	w      io.Writer // respawnd's stdout or stderr, when file is nil
	file   *outFile  // the instance's output file, or nil
	name   string
	prefix string // "NAME | " for w; none for a file
	stamps bool   // each line starts with its time
	// proc is the instance whose tail keeps the lines; nil keeps none.
	proc   *Process
	buf    []byte // the partial line read so far
	failed bool   // a write to w failed and was logged
	out    *outputDone
}

// batch is what the lines of one batch of reads share: when the reads
// were made, the time stamp that starts each line (with its space) when
// stamps are on, and the tail the lines go to. Each copying goroutine has
// its own.
type batch struct {
	now   time.Time
	stamp []byte
	tail  *processTail
	buf   [40]byte
}

// outputDone closes done once every pipe of a process reached end of file,
// after closing the output file.
type outputDone struct {
	left atomic.Int32
	file *outFile
	done chan struct{}
}

// pipeDone is called once by each pipe at its end of file.
func (d *outputDone) pipeDone() {
	if d.left.Add(-1) == 0 {
		if d.file != nil {
			d.file.close()
		}
		close(d.done)
	}
}

// stampLayout is RFC 3339 with milliseconds: 2026-12-02T08:15:04.123Z, or
// with the local offset, 2026-12-02T09:15:04.123+01:00.
const stampLayout = "2006-01-02T15:04:05.000Z07:00"

// outputSink says where one instance's output goes.
type outputSink struct {
	name   string
	file   *outFile // nil: respawnd's stdout and stderr, prefixed
	stamps bool
	proc   *Process // whose tail keeps the lines; nil keeps none
	done   chan struct{}
}

// pipes returns the two outPipes of s.
func (l *Launcher) pipes(s *outputSink, stdout, stderr int) [2]*outPipe {
	od := &outputDone{file: s.file, done: s.done}
	od.left.Store(2)
	prefix := s.name + " | "
	if s.file != nil {
		prefix = ""
	}
	return [2]*outPipe{
		{fd: stdout, stream: streamStdout, w: l.stdout, file: s.file, name: s.name, prefix: prefix, stamps: s.stamps, proc: s.proc, out: od},
		{fd: stderr, stream: streamStderr, w: l.stderr, file: s.file, name: s.name, prefix: prefix, stamps: s.stamps, proc: s.proc, out: od},
	}
}

// scratchSize is how much one read takes from a pipe; a line longer than
// maxLine is split, so no pipe keeps more than that.
const scratchSize = maxLine

// shrinkAbove is the capacity beyond which a pipe's line buffer is dropped
// once empty: idle programs hold no large buffers.
const shrinkAbove = 4 << 10

// readsPerWakeup bounds how much of one busy pipe is copied before the
// others get their turn.
const readsPerWakeup = 4

// add registers the read ends of a program's output pipes (they must be
// non-blocking) and starts the goroutine if it is not running; s.done is
// closed once both reach end of file.
func (m *outputMux) add(s *outputSink, stdout, stderr int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		set, err := epoll.New("output")
		if err != nil {
			return err
		}
		m.set = set
		m.pipes = map[uint64]*outPipe{}
	}
	ps := m.l.pipes(s, stdout, stderr)
	var keys []uint64
	for _, p := range ps {
		m.next++
		key := m.next
		if err := m.set.Add(p.fd, unix.EPOLLIN|unix.EPOLLRDHUP, key); err != nil {
			for _, k := range keys {
				_ = m.set.Del(m.pipes[k].fd)
				delete(m.pipes, k)
			}
			return fmt.Errorf("watching output pipe: %w", err)
		}
		m.pipes[key] = p
		keys = append(keys, key)
	}
	if !m.running {
		m.running = true
		go m.run(m.set)
	}
	return nil
}

// run copies output until no pipe is left.
func (m *outputMux) run(set *epoll.Set) {
	scratch := make([]byte, scratchSize)
	var out []byte
	var bt batch
	err := set.Wait(make([]unix.EpollEvent, 64), func(events []unix.EpollEvent) {
		for _, ev := range events {
			key := epoll.Key(ev)
			m.mu.Lock()
			p := m.pipes[key]
			m.mu.Unlock()
			if p != nil {
				out = m.drain(key, p, &bt, scratch, out[:0])
			}
		}
	}, func() bool {
		// Park until a pipe has data, or end with the last pipe: a later
		// add starts the goroutine again.
		m.mu.Lock()
		defer m.mu.Unlock()
		last := len(m.pipes) == 0
		if last {
			m.running = false
		}
		return last
	})
	if err != nil {
		m.stopAll(err)
	}
}

// drain copies what pipe p has now, as whole prefixed lines in one write;
// at end of file it flushes the partial line and closes the pipe.
func (m *outputMux) drain(key uint64, p *outPipe, bt *batch, scratch, out []byte) []byte {
	p.batch(bt)
	eof := false
	for range readsPerWakeup {
		n, err := unix.Read(p.fd, scratch)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil || n == 0 {
			eof = true // end of file, or a broken pipe: nothing more comes
			break
		}
		out = p.lines(bt, scratch[:n], out)
	}
	if eof && len(p.buf) > 0 {
		out = p.flush(bt, out)
	}
	if len(p.buf) == 0 && cap(p.buf) > shrinkAbove {
		p.buf = nil
	}
	if len(out) > 0 {
		m.l.write(p, bt.now, out)
	}
	if eof {
		m.close(key, p)
	}
	return out
}

// batch starts bt for the reads about to be made on p.
func (p *outPipe) batch(bt *batch) {
	bt.stamp, bt.tail = nil, nil
	if p.proc == nil && !p.stamps {
		return
	}
	bt.now = time.Now()
	if p.stamps {
		bt.stamp = append(bt.now.AppendFormat(bt.buf[:0], stampLayout), ' ')
	}
}

// lockTail sets bt.tail to the tail of p's instance, made on the first
// line, and locks it.
func (p *outPipe) lockTail(bt *batch) {
	if p.proc == nil {
		return
	}
	bt.tail = p.proc.tailForLines()
	bt.tail.mu.Lock()
}

func (bt *batch) unlockTail() {
	if bt.tail != nil {
		bt.tail.mu.Unlock()
	}
}

// lines appends every complete line of data (joined to the partial line
// kept from before) to out, and keeps the rest. A line that grows past
// maxLine is written in pieces.
func (p *outPipe) lines(bt *batch, data, out []byte) []byte {
	p.lockTail(bt)
	defer bt.unlockTail()
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			room := maxLine - len(p.buf)
			if len(data) < room {
				p.buf = append(p.buf, data...)
				return out
			}
			p.buf = append(p.buf, data[:room]...)
			out = p.line(bt, p.buf, out)
			p.buf = p.buf[:0]
			data = data[room:]
			continue
		}
		if len(p.buf) > 0 {
			p.buf = append(p.buf, data[:i]...)
			out = p.line(bt, p.buf, out)
			p.buf = p.buf[:0]
		} else {
			out = p.line(bt, data[:i], out)
		}
		data = data[i+1:]
	}
	return out
}

// flush appends the partial line kept, at end of file, to out.
func (p *outPipe) flush(bt *batch, out []byte) []byte {
	p.lockTail(bt)
	defer bt.unlockTail()
	out = p.line(bt, p.buf, out)
	p.buf = p.buf[:0]
	return out
}

// line appends one line, prefixed and stamped, to out and keeps it in the
// tail; the caller holds the tail's lock.
func (p *outPipe) line(bt *batch, l, out []byte) []byte {
	if bt.tail != nil {
		bt.tail.rings[p.stream].add(bt.now, l)
	}
	out = append(out, p.prefix...)
	out = append(out, bt.stamp...)
	out = append(out, l...)
	return append(out, '\n')
}

// write writes whole lines to the pipe's file, or to respawnd's stdout or
// stderr under the Launcher's output lock, so that lines of different
// programs never interleave. Lines that cannot be written are counted as
// dropped; the pipe is drained on regardless, so the program never blocks
// on it.
func (l *Launcher) write(p *outPipe, now time.Time, b []byte) {
	if p.file != nil {
		p.file.write(b, now)
		return
	}
	l.outMu.Lock()
	_, err := p.w.Write(b)
	l.outMu.Unlock()
	if err != nil {
		l.droppedCounter(p.name).Add(uint64(countLines(b)))
		if !p.failed {
			p.failed = true
			l.logger.Debug("writing program output failed", "program", p.name, "err", err)
		}
	}
}

// close forgets a pipe at end of file.
func (m *outputMux) close(key uint64, p *outPipe) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.set.Del(p.fd)
	_ = unix.Close(p.fd)
	delete(m.pipes, key)
	p.out.pipeDone()
}

// stopAll gives up every pipe after the epoll set failed (it should not):
// the pipes are closed, so programs writing to them get EPIPE instead of
// blocking, and every OutputDone closes.
func (m *outputMux) stopAll(err error) {
	m.l.logger.Error("copying program output failed; program output is dropped from now on", "err", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, p := range m.pipes {
		_ = unix.Close(p.fd)
		delete(m.pipes, key)
		p.out.pipeDone()
	}
	m.running = false
	// A later add starts afresh.
	_ = m.set.Close()
	m.set = nil
}

// copyPipe copies pipe p until it reaches end of file or fails, with
// blocking reads on a goroutine of its own. It is the fallback when the
// output mux is unavailable; every line is handled as the mux does.
func (l *Launcher) copyPipe(p *outPipe) {
	defer p.out.pipeDone()
	defer func() { _ = unix.Close(p.fd) }()
	_ = unix.SetNonblock(p.fd, false)
	scratch := make([]byte, maxLine)
	var out []byte
	var bt batch
	for {
		n, err := unix.Read(p.fd, scratch)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		p.batch(&bt)
		out = out[:0]
		if n > 0 {
			out = p.lines(&bt, scratch[:n], out)
		}
		eof := err != nil || n == 0
		if eof && len(p.buf) > 0 {
			out = p.flush(&bt, out)
		}
		if len(out) > 0 {
			l.write(p, bt.now, out)
		}
		if eof {
			return
		}
	}
}
