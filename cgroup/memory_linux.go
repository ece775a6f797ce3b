package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Memory is a group's memory use at one moment.
type Memory struct {
	// Usage is memory.current (v2) or memory.usage_in_bytes (v1): every
	// page charged to the group, page cache included.
	Usage uint64
	// RSS is the resident set of the group's processes: anonymous memory
	// plus mapped files (memory.stat anon + file_mapped on v2, total_rss +
	// total_mapped_file on v1). Pages shared by several processes count
	// once, unlike a sum over /proc/PID/status.
	RSS uint64
	// WorkingSet is Usage less the inactive page cache (inactive_file on
	// v2, total_inactive_file on v1), as kubelet computes it: what the
	// kernel cannot simply drop when the group reaches its limit.
	WorkingSet uint64
	// PressureSome and PressureFull are the totals of memory.pressure
	// (cgroup v2 with PSI): the time some, or all, of the group's tasks
	// stalled on memory. HasPressure says they were read.
	PressureSome, PressureFull time.Duration
	HasPressure                bool
}

// memFiles are the group's memory files, opened once and read with pread:
// a scrape of a thousand programs then costs a read or two each, not opens
// and closes (which cost far more than the reads on cgroupfs). On v1,
// memory.stat alone has both figures (usage is total_rss + total_cache, the
// exact value that memory.usage_in_bytes only approximates), so usage is
// nil there.
type memFiles struct {
	usage, stat, pressure *os.File
	// noPressure says memory.pressure is not there (v1, or no PSI): it
	// is not tried again.
	noPressure bool
}

// readBuf holds what Memory and Report read of one cgroup file: memory.stat
// is 1–3 KiB. It is too big for a stack, and a scrape reads a file for
// every program; the buffers are pooled (a fresh one per read was 8 MiB of
// garbage per scrape of a thousand programs).
type readBuf [16 << 10]byte

var readBufs = sync.Pool{New: func() any { return new(readBuf) }}

// readFrom reads a cgroup file whole into buf, from its start.
func readFrom(f *os.File, buf []byte) ([]byte, error) {
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// Memory reads the group's memory use.
func (g *Group) Memory() (Memory, error) {
	g.memMu.Lock()
	defer g.memMu.Unlock()
	// memory.stat may have been opened by Report already.
	if g.v2 && g.mem.usage == nil {
		u, err := os.Open(filepath.Join(g.dir, "memory.current"))
		if err != nil {
			return Memory{}, fmt.Errorf("reading memory of cgroup %s: %w", g.path, err)
		}
		g.mem.usage = u
	}
	if g.mem.stat == nil {
		s, err := os.Open(filepath.Join(g.dir, "memory.stat"))
		if err != nil {
			return Memory{}, fmt.Errorf("reading memory of cgroup %s: %w", g.path, err)
		}
		g.mem.stat = s
	}
	bp := readBufs.Get().(*readBuf)
	defer readBufs.Put(bp)
	buf := bp[:]
	var m Memory
	if g.mem.usage != nil {
		b, err := readFrom(g.mem.usage, buf)
		if err != nil {
			return Memory{}, fmt.Errorf("reading memory usage of cgroup %s: %w", g.path, err)
		}
		if m.Usage, err = parseUint(b); err != nil {
			return Memory{}, fmt.Errorf("reading memory usage of cgroup %s: %w", g.path, err)
		}
	}
	b, err := readFrom(g.mem.stat, buf)
	if err != nil {
		return Memory{}, fmt.Errorf("reading memory.stat of cgroup %s: %w", g.path, err)
	}
	var usage, inactive uint64
	m.RSS, usage, inactive = statFigures(b, g.v2)
	if g.mem.usage == nil {
		m.Usage = usage
	}
	if m.Usage > inactive {
		m.WorkingSet = m.Usage - inactive
	}
	g.readPressure(&m, buf)
	return m, nil
}

// readPressure adds the group's memory.pressure totals to m, on v2 kernels
// with PSI. The caller holds memMu.
func (g *Group) readPressure(m *Memory, buf []byte) {
	if !g.v2 || g.mem.noPressure {
		return
	}
	if g.mem.pressure == nil {
		f, err := os.Open(filepath.Join(g.dir, "memory.pressure"))
		if err != nil {
			g.mem.noPressure = true
			return
		}
		g.mem.pressure = f
	}
	b, err := readFrom(g.mem.pressure, buf)
	if err != nil {
		// EOPNOTSUPP: PSI is off (psi=0); the file is there, unreadable.
		g.mem.noPressure = true
		return
	}
	m.PressureSome, m.PressureFull, m.HasPressure = pressureTotals(b)
}

// pressureTotals reads the total= fields of a pressure file
// (Documentation/accounting/psi.rst): "some avg10=0.00 avg60=0.00
// avg300=0.00 total=0", then the same for "full", totals in microseconds.
func pressureTotals(b []byte) (some, full time.Duration, ok bool) {
	var seen int
	for line := range bytes.Lines(b) {
		kind, rest, _ := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
		_, total, found := bytes.Cut(rest, []byte("total="))
		if !found {
			continue
		}
		us, err := strconv.ParseUint(string(bytes.TrimSpace(total)), 10, 63)
		if err != nil {
			return 0, 0, false
		}
		switch string(kind) {
		case "some":
			some, seen = time.Duration(us)*time.Microsecond, seen|1
		case "full":
			full, seen = time.Duration(us)*time.Microsecond, seen|2
		}
	}
	return some, full, seen == 3
}

// statFigures reads a memory.stat file (Documentation/admin-guide/
// cgroup-v2.rst and cgroup-v1/memory.rst): the resident set (anon +
// file_mapped on v2; total_rss + total_mapped_file on v1, total_ fields
// including any cgroup below) and, on v1, the usage (total_rss +
// total_cache).
func statFigures(stat []byte, v2 bool) (rss, usage, inactiveFile uint64) {
	for len(stat) > 0 {
		line := stat
		if i := bytes.IndexByte(stat, '\n'); i >= 0 {
			line, stat = stat[:i], stat[i+1:]
		} else {
			stat = nil
		}
		k, v, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		var isRSS, isUsage, isInactive bool
		switch string(k) {
		case "inactive_file":
			isInactive = v2
		case "total_inactive_file":
			isInactive = !v2
		case "anon", "file_mapped":
			isRSS = v2
		case "total_rss":
			isRSS, isUsage = !v2, !v2
		case "total_mapped_file":
			isRSS = !v2
		case "total_cache":
			isUsage = !v2
		}
		if !isRSS && !isUsage && !isInactive {
			continue
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			continue
		}
		if isRSS {
			rss += n
		}
		if isUsage {
			usage += n
		}
		if isInactive {
			inactiveFile = n
		}
	}
	return rss, usage, inactiveFile
}

// closeMem releases the memory files.
func (g *Group) closeMem() {
	g.memMu.Lock()
	defer g.memMu.Unlock()
	for _, f := range []*os.File{g.mem.usage, g.mem.stat, g.mem.pressure} {
		if f != nil {
			_ = f.Close()
		}
	}
	g.mem = memFiles{}
}
