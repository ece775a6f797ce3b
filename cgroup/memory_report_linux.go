package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

// maxReportFile bounds one read: memory.stat is 1–3 KiB.
const maxReportFile = 16 << 10

// Report reads the group's memory files. A file that is missing (an older
// kernel) is left out; only memory.stat is required.
func (g *Group) Report() (MemoryReport, error) {
	r := MemoryReport{Version: 1}
	if g.v2 {
		r.Version = 2
	}
	b, err := readSmall(filepath.Join(g.dir, "memory.stat"))
	if err != nil {
		return r, fmt.Errorf("reading memory.stat of cgroup %s: %w", g.path, err)
	}
	r.Stat = parseFlatKeyed(b)
	if g.v2 {
		if b, err := readSmall(filepath.Join(g.dir, "memory.events")); err == nil {
			r.Events = parseFlatKeyed(b)
		}
		if b, err := readSmall(filepath.Join(g.dir, "memory.pressure")); err == nil {
			some, full, ok := pressureTotals(b)
			if ok {
				r.PressureSomeUS, r.PressureFullUS, r.HasPressure = uint64(some.Microseconds()), uint64(full.Microseconds()), true
			}
		}
		return r, nil
	}
	r.Events = map[string]uint64{}
	if b, err := readSmall(filepath.Join(g.dir, "memory.failcnt")); err == nil {
		if v, err := parseUint(b); err == nil {
			r.Events["failcnt"] = v
		}
	}
	if b, err := readSmall(filepath.Join(g.dir, "memory.oom_control")); err == nil {
		if v, ok := parseFlatKeyed(b)["oom_kill"]; ok {
			r.Events["oom_kill"] = v
		}
	}
	return r, nil
}

// readSmall reads at most maxReportFile bytes of a cgroup file.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReportFile))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// parseFlatKeyed parses "key value" lines (the kernel's flat keyed format);
// lines that are not two fields with a number are skipped.
func parseFlatKeyed(b []byte) map[string]uint64 {
	m := make(map[string]uint64, 64)
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
