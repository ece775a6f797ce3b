package main

import (
	"errors"
	"testing"

	"github.com/respawnd/respawnd/cgroup"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
)

// The counter of the test's own cgroup reads, and does not go down.
func TestOwnOOMKillsReads(t *testing.T) {
	read, err := newOwnOOMKills("/proc")
	if errors.Is(err, cgroup.ErrNoMemoryController) {
		testenv.Skip(t, "no memory controller: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	a, err := read()
	if err != nil {
		t.Fatal(err)
	}
	b, err := read()
	if err != nil || b < a {
		t.Errorf("second read %d, %v after %d", b, err, a)
	}
}

// BenchmarkOwnOOMKills is the cost the restart path pays for a program
// without a cgroup: one read at its start, for the baseline.
func BenchmarkOwnOOMKills(b *testing.B) {
	read, err := newOwnOOMKills("/proc")
	if err != nil {
		b.Skipf("own cgroup counter: %v", err)
	}
	for b.Loop() {
		if _, err := read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostOOMKills is the read of /proc/vmstat that the same start
// already pays, for comparison.
func BenchmarkHostOOMKills(b *testing.B) {
	for b.Loop() {
		if _, err := oom.VMStatOOMKills("/proc"); err != nil {
			b.Fatal(err)
		}
	}
}
