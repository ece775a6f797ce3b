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

// fakeV2 builds a cgroup v2 tree in a temporary directory with the files the
// kernel would show in each of dirs (paths relative to the root). The
// library writes into them as it would on cgroupfs; what the kernel would
// do on top (enforce limits, move processes) is not modelled.
func fakeV2(t *testing.T, dirs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range append([]string{"/"}, dirs...) {
		dir := filepath.Join(root, d)
		files := map[string]string{
			"cgroup.controllers":     "cpu io memory pids\n",
			"cgroup.subtree_control": "",
			"cgroup.procs":           "",
			"cgroup.kill":            "",
			"memory.current":         "1601536\n",
			"memory.max":             "max\n",
			"memory.high":            "max\n",
			"memory.swap.max":        "max\n",
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestV2CreateOnFakeFS(t *testing.T) {
	root := fakeV2(t, "/svc", "/svc/programs", "/svc/programs/api")
	m := newManager(layout{v2: true, mount: root, mountRoot: "/", own: "/svc", parent: "/svc/programs"}, nil)
	if !m.V2() || m.Parent() != "/svc/programs" {
		t.Fatalf("V2() = %v, Parent() = %q", m.V2(), m.Parent())
	}
	g, err := m.Create("api", Limits{Max: ptr(64 << 20), High: ptr(48 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	})
	dir := filepath.Join(root, "svc/programs/api")
	if g.Path() != "/svc/programs/api" || g.Dir() != dir || g.Name() != "api" {
		t.Errorf("Path() = %q, Dir() = %q, Name() = %q", g.Path(), g.Dir(), g.Name())
	}
	if g.FD() < 0 || g.Procs() != nil || g.Warnings() != nil {
		t.Errorf("FD() = %d, Procs() = %v, Warnings() = %v; want an fd, no procs files, no warnings", g.FD(), g.Procs(), g.Warnings())
	}
	for file, want := range map[string]string{
		"memory.max": "67108864", "memory.high": "50331648", "memory.swap.max": "max",
	} {
		if got := readFile(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// The memory controller is enabled from the root down to programs/, and
	// not in the program's own cgroup, which holds the processes.
	for _, d := range []string{"", "svc", "svc/programs"} {
		if got := readFile(t, filepath.Join(root, d, "cgroup.subtree_control")); got != "+memory" {
			t.Errorf("%s/cgroup.subtree_control = %q, want +memory", d, got)
		}
	}
	if got := readFile(t, filepath.Join(dir, "cgroup.subtree_control")); got != "" {
		t.Errorf("program's cgroup.subtree_control = %q, want it untouched", got)
	}
	if _, err := os.Stat(filepath.Join(root, "svc", supervisorLeaf)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("supervisor leaf created although own cgroup is empty: %v", err)
	}

	if u, err := g.Usage(); err != nil || u != 1601536 {
		t.Errorf("Usage() = %d, %v", u, err)
	}
	if l, ok := g.Limit(); !ok || l != 64<<20 {
		t.Errorf("Limit() = %d, %v", l, ok)
	}
	if err := g.Update(Limits{SwapMax: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory.max": "max", "memory.high": "max", "memory.swap.max": "0"} {
		if got := readFile(t, filepath.Join(dir, file)); got != want {
			t.Errorf("after Update: %s = %q, want %q", file, got, want)
		}
	}
	if _, ok := g.Limit(); ok {
		t.Error("Limit() reports a limit after it was lifted")
	}

	// Without swap accounting there is no memory.swap.max.
	if err := os.Remove(filepath.Join(dir, "memory.swap.max")); err != nil {
		t.Fatal(err)
	}
	if err := g.Update(Limits{Max: ptr(1 << 30), SwapMax: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	if w := g.Warnings(); len(w) != 1 || !strings.Contains(w[0], "swap_max") {
		t.Errorf("Warnings() = %q, want one about swap_max", w)
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("memory.swap.max written without swap accounting: %v", err)
	}

	if pids, err := g.PIDs(); err != nil || len(pids) != 0 {
		t.Errorf("PIDs() = %v, %v", pids, err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "svc/programs/cgroup.procs")); got != "" {
		t.Errorf("parent touched: %q", got)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory left after Remove: %v", err)
	}
	if g.FD() != -1 {
		t.Errorf("FD() = %d after Remove", g.FD())
	}
	// Remove of a removed group, KillAll and PIDs of a vanished group.
	if err := g.Remove(); err != nil {
		t.Errorf("second Remove() = %v", err)
	}
	if err := g.KillAll(); err != nil {
		t.Errorf("KillAll() of a removed group = %v", err)
	}
	if _, err := g.PIDs(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PIDs() of a removed group = %v, want fs.ErrNotExist", err)
	}
	if _, err := g.Usage(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Usage() of a removed group = %v, want fs.ErrNotExist", err)
	}
}

func TestV2CreateRejectsBadInput(t *testing.T) {
	root := fakeV2(t, "/svc")
	m := newManager(layout{v2: true, mount: root, mountRoot: "/", own: "/svc", parent: "/svc/programs"}, nil)
	if _, err := m.Create("../x", Limits{}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Create(../x) = %v", err)
	}
	if _, err := m.Create("x", Limits{Max: ptr(-5)}); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("Create with negative max = %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "svc")); slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.IsDir() }) {
		t.Errorf("bad input created directories: %v", entries)
	}
}

// TestLibV2Ops checks the library-backed operations prepareV2 uses, on the
// fake tree: they address the right files.
func TestLibV2Ops(t *testing.T) {
	root := fakeV2(t, "/svc")
	if err := os.WriteFile(filepath.Join(root, "svc/cgroup.procs"), []byte("100\n200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ops := libV2Ops{layout{v2: true, mount: root, mountRoot: "/", own: "/svc", parent: "/svc/programs"}}
	pids, err := ops.procs("/svc")
	if err != nil || !slices.Equal(pids, []int{100, 200}) {
		t.Fatalf("procs = %v, %v", pids, err)
	}
	if err := ops.mkdir("/svc/supervisor"); err != nil {
		t.Fatal(err)
	}
	if err := ops.addProc("/svc/supervisor", 200); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "svc/supervisor/cgroup.procs")); got != "200" {
		t.Errorf("supervisor/cgroup.procs = %q, want 200", got)
	}
	if err := ops.enableMemoryAbove("/svc/programs"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "svc"} {
		if got := readFile(t, filepath.Join(root, d, "cgroup.subtree_control")); got != "+memory" {
			t.Errorf("%s/cgroup.subtree_control = %q, want +memory", d, got)
		}
	}
}
