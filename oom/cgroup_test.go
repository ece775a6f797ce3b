package oom

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// File contents in the kernel's formats: v2 memory.events with every OOM key
// (Linux 5.18+) and without oom_kill (before 4.13); v1 memory.oom_control as
// read on Linux 6.18 after one kill, and before 4.13 (no oom_kill key) with
// oom_kill_disable set during an OOM; a /proc/vmstat excerpt.
const (
	memoryEvents6 = "low 0\nhigh 0\nmax 113\noom 3\noom_kill 2\noom_group_kill 1\n"
	memoryEvents4 = "low 0\nhigh 0\nmax 7\noom 1\n"
	oomControl618 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
	oomControl44  = "oom_kill_disable 1\nunder_oom 1\n"
	vmstatSnippet = "nr_free_pages 5989430\npgfault 23897\noom_kill 4\nnr_unstable 0\n"
)

func TestParseMemoryEvents(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want CgroupCounts
	}{
		{memoryEvents6, CgroupCounts{OOM: 3, OOMKill: 2, OOMGroupKill: 1}},
		{memoryEvents4, CgroupCounts{OOM: 1}},
		{"", CgroupCounts{}},
	} {
		got, err := parseMemoryEvents(strings.NewReader(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("parseMemoryEvents(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseMemoryEvents(strings.NewReader("oom x\n")); err == nil {
		t.Error("bad value: no error")
	}
}

func TestParseOOMControl(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want CgroupCounts
	}{
		{oomControl618, CgroupCounts{OOMKill: 1}},
		{oomControl44, CgroupCounts{UnderOOM: true}},
	} {
		got, err := parseOOMControl(strings.NewReader(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("parseOOMControl(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestVMStat(t *testing.T) {
	n, err := parseVMStatOOMKills([]byte(vmstatSnippet))
	if err != nil || n != 4 {
		t.Fatalf("got %d, %v", n, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmstat"), []byte(vmstatSnippet), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := VMStatOOMKills(dir); err != nil || n != 4 {
		t.Fatalf("VMStatOOMKills = %d, %v", n, err)
	}
	if _, err := VMStatOOMKills(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReadCgroupCounts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory.events", memoryEvents6)
	if c, err := ReadCgroupCounts(dir, true); err != nil || c.OOMKill != 2 {
		t.Fatalf("fallback to memory.events: %+v, %v", c, err)
	}
	write("memory.events.local", "oom 1\noom_kill 1\n")
	if c, err := ReadCgroupCounts(dir, true); err != nil || c != (CgroupCounts{OOM: 1, OOMKill: 1}) {
		t.Fatalf("memory.events.local: %+v, %v", c, err)
	}
	write("memory.oom_control", oomControl618)
	if c, err := ReadCgroupCounts(dir, false); err != nil || c.OOMKill != 1 {
		t.Fatalf("v1: %+v, %v", c, err)
	}
	if _, err := ReadCgroupCounts(filepath.Join(dir, "gone"), true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removed cgroup: %v", err)
	}
}
