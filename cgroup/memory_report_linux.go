package cgroup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// MemoryReport is everything a group's memory files say at one moment, for
// a post-mortem: memory.stat whole, the event counters, and the pressure
// totals. Keys are the kernel's own, so a reader can look them up in the
// kernel's documentation (Documentation/admin-guide/cgroup-v2.rst, or
// cgroup-v1/memory.rst).
type MemoryReport struct {
	// Version is 1 or 2.
	Version int
	// Stat is memory.stat: bytes for sizes, counts for events.
	Stat map[string]uint64
	// Events are the group's event counters: memory.events on v2 (low,
	// high, max, oom, oom_kill, oom_group_kill); on v1 failcnt (how often
	// the limit was hit, memory.failcnt) and oom_kill (memory.oom_control).
	Events map[string]uint64
	// PressureSomeUS and PressureFullUS are memory.pressure's totals in
	// microseconds (v2 with PSI); HasPressure says they were read.
	PressureSomeUS, PressureFullUS uint64
	HasPressure                    bool
}

// Report reads the group's memory files, through descriptors kept open
// from one call to the next (and shared with Memory), as a scrape does: it
// runs on the restart path, where opening cgroup files costs more than
// reading them. A counter file that is missing (an older kernel) is left
// out; only memory.stat is required.
func (g *Group) Report() (MemoryReport, error) {
	r := MemoryReport{Version: 1}
	if g.v2 {
		r.Version = 2
	}
	g.memMu.Lock()
	defer g.memMu.Unlock()
	bp := readBufs.Get().(*readBuf)
	defer readBufs.Put(bp)
	buf := bp[:]
	b, err := g.readKept(&g.mem.stat, "memory.stat", buf)
	if err != nil {
		return r, fmt.Errorf("reading memory.stat of cgroup %s: %w", g.path, err)
	}
	r.Stat = parseFlatKeyed(b)
	if g.v2 {
		if b, err := g.readEvents("memory.events", buf); err == nil {
			r.Events = parseFlatKeyed(b)
		}
		var m Memory
		g.readPressure(&m, buf)
		if m.HasPressure {
			r.PressureSomeUS, r.PressureFullUS, r.HasPressure = uint64(m.PressureSome.Microseconds()), uint64(m.PressureFull.Microseconds()), true
		}
		return r, nil
	}
	r.Events = map[string]uint64{}
	if b, err := g.readEvents("memory.failcnt", buf); err == nil {
		if v, err := parseUint(b); err == nil {
			r.Events["failcnt"] = v
		}
	}
	if b, err := g.readEvents("memory.oom_control", buf); err == nil {
		if v, ok := parseFlatKeyed(b)["oom_kill"]; ok {
			r.Events["oom_kill"] = v
		}
	}
	return r, nil
}

// readEvents reads one of the group's event counter files. Unlike the
// files every scrape reads, they are not kept open: they are read at a
// program's start and death only, and every descriptor respawnd holds is
// copied by each fork and closed by each exec of every restart (two kept
// per program on v1 cost a restart among a thousand programs more than
// opening them costs a death).
func (g *Group) readEvents(name string, buf []byte) ([]byte, error) {
	f, err := os.Open(filepath.Join(g.dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readFrom(f, buf)
}

// readKept reads the group's file name through *f, opening it on first
// use. The caller holds memMu.
func (g *Group) readKept(f **os.File, name string, buf []byte) ([]byte, error) {
	if *f == nil {
		nf, err := os.Open(filepath.Join(g.dir, name))
		if err != nil {
			return nil, err
		}
		*f = nf
	}
	return readFrom(*f, buf)
}

// parseFlatKeyed parses "key value" lines (the kernel's flat keyed format);
// lines that are not two fields with a number are skipped.
func parseFlatKeyed(b []byte) map[string]uint64 {
	// Sized to the file's lines: a report is kept for each program (its
	// baseline), and memory.events has a handful.
	m := make(map[string]uint64, bytes.Count(b, []byte("\n"))+1)
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		m[string(f[0])] = v
	}
	return m
}
