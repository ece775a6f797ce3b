package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestProcsUnder pins the tree listing behind PIDs and KillAll: every
// cgroup.procs below the group counts, control files and empty lines do
// not, a malformed file is an error naming it, and a missing group is
// fs.ErrNotExist (which KillAll and Remove treat as "already gone").
func TestProcsUnder(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cgroup.procs", "10\n11\n")
	write("memory.stat", "cache 0\n")
	write("a/cgroup.procs", "")
	write("a/b/cgroup.procs", "\n20\n")
	write("c/cgroup.procs", "30\n")

	got, err := procsUnder(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []int{10, 11, 20, 30}; !slices.Equal(got, want) {
		t.Errorf("procsUnder = %v, want %v", got, want)
	}

	write("c/cgroup.procs", "30\nx1\n")
	if _, err := procsUnder(dir, nil); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "c", "cgroup.procs")) {
		t.Errorf("malformed cgroup.procs: err = %v, want one naming the file", err)
	}

	if _, err := procsUnder(filepath.Join(dir, "gone"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing group: err = %v, want fs.ErrNotExist", err)
	}
}
