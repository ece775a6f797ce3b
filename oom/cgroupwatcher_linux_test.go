package oom

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/internal/testenv"
)

// One watcher serves many cgroups: a write to a fake memory.events (a
// regular file fires IN_MODIFY like cgroupfs does) hands the new counts to
// that cgroup's channel only; a removed watch and Run's end release all.
func TestCgroupWatcherV2Many(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	w := runCgroupWatcher(t, true)
	var err error

	const n = 50
	dirs := make([]string, n)
	outs := make([]chan CgroupCounts, n)
	stops := make([]func(), n)
	for i := range n {
		dirs[i] = t.TempDir()
		writeEvents(t, filepath.Join(dirs[i], "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
		outs[i] = make(chan CgroupCounts, 1)
		if stops[i], err = w.Add(dirs[i], outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Two bumps of one cgroup before it is read: only the latest is kept.
	writeEvents(t, filepath.Join(dirs[7], "memory.events"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n")
	writeEvents(t, filepath.Join(dirs[7], "memory.events"), "low 0\nhigh 0\nmax 0\noom 2\noom_kill 2\n")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-outs[7]:
			if c.OOMKill == 2 {
				goto got
			}
		case <-deadline:
			t.Fatal("no counts for the changed cgroup")
		}
	}
got:
	for i, o := range outs {
		select {
		case c := <-o:
			if i != 7 {
				t.Errorf("cgroup %d got %+v without a change", i, c)
			}
		default:
		}
	}
	stops[7]()
	writeEvents(t, filepath.Join(dirs[7], "memory.events"), "low 0\nhigh 0\nmax 0\noom 3\noom_kill 3\n")
	writeEvents(t, filepath.Join(dirs[8], "memory.events"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n")
	select {
	case <-outs[8]: // the watcher handled writes after the stopped one
	case <-time.After(10 * time.Second):
		t.Fatal("no counts for cgroup 8")
	}
	select {
	case c := <-outs[7]:
		t.Errorf("a stopped watch still sends: %+v", c)
	default:
	}
}

func writeEvents(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A real OOM kill in a memory cgroup (v1 or v2, whichever the host has)
// reaches the cgroup's channel through the shared watcher.
func TestCgroupWatcherRealOOM(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	w := runCgroupWatcher(t, cg.V2)
	out := make(chan CgroupCounts, 1)
	before := openFDs(t)
	stop, err := w.Add(cg.Dir, out) // registered before the OOM: Add returns once it is
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// A watch holds one descriptor at most (v1: the eventfd; the control
	// file that names the event is closed once it is registered), and the
	// notification below still comes through it.
	var added []string
	for fd, target := range openFDs(t) {
		if _, ok := before[fd]; !ok {
			added = append(added, target)
		}
	}
	if cg.V2 && len(added) != 0 || !cg.V2 && (len(added) != 1 || added[0] != "anon_inode:[eventfd]") {
		t.Errorf("a watch added the descriptors %q", added)
	}
	startHog(t, cg)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case c := <-out:
			if c.OOMKill >= 1 {
				return
			}
		case <-deadline:
			t.Fatal("no OOM kill counted")
		}
	}
}

// runCgroupWatcher runs a CgroupWatcher until the test's end. Cleanups run
// last-registered first, so a goleak check registered before it runs after
// Run has ended.
func runCgroupWatcher(t *testing.T, v2 bool) *CgroupWatcher {
	t.Helper()
	w, err := NewCgroupWatcher(v2, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

// startHog starts the helper that allocates until the OOM killer ends it,
// inside cg (the shell joins it before exec'ing the hog).
func startHog(t *testing.T, cg *testenv.MemoryCgroup) *exec.Cmd {
	t.Helper()
	argv := append([]string{"-c", `echo $$ > "$0"; exec "$@"`, cg.Procs()}, testenv.HelperArgv("hog")...)
	cmd := exec.Command("/bin/sh", argv...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting hog: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// openFDs maps the test process's open descriptors to what they are.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil { // the directory's own descriptor is gone by now
			out[e.Name()] = target
		}
	}
	return out
}
