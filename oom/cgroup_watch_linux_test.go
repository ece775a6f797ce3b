package oom

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/internal/testenv"
)

// TestWatchCgroupV2Fake runs the inotify watcher against a fake cgroupfs: a
// write to a regular file fires IN_MODIFY just as cgroup_file_notify does.
func TestWatchCgroupV2Fake(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := filepath.Join(t.TempDir(), "app.scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan CgroupCounts) // unbuffered: the test reads every send
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- watchCgroup(ctx, dir, true, out, func() { close(ready) }) }()
	waitRegistered(t, ready, done)

	write("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
	want := CgroupCounts{OOM: 1, OOMKill: 1}
	select {
	case c := <-out:
		if c != want {
			t.Fatalf("got %+v, want %+v", c, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no counts after memory.events changed")
	}

	// Removing the cgroup ends the watch with nil.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchCgroup after removal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchCgroup did not return after the cgroup was removed")
	}
}

func TestWatchCgroupCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte("oom 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WatchCgroup(ctx, dir, true, make(chan CgroupCounts)) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchCgroup ignored cancellation")
	}
}

// waitRegistered waits until the watcher has registered its notification
// (ready is closed), failing if it returned first.
func waitRegistered(t *testing.T, ready <-chan struct{}, done <-chan error) {
	t.Helper()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watcher returned before registering: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not register its notification")
	}
}

// startHog starts the allocating helper inside cg. The shell joins the
// cgroup and then execs the helper, so the victim never allocates outside
// the limit; its pid is the shell's.
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

func TestWatchCgroupRealOOM(t *testing.T) {
	defer goleak.VerifyNone(t)
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan CgroupCounts, 16) // room for every change of one OOM
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- watchCgroup(ctx, cg.Dir, cg.V2, out, func() { close(ready) }) }()
	// Registration must precede the OOM: a kill before it is part of the
	// baseline and never reported.
	waitRegistered(t, ready, done)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchCgroup: %v", err)
		}
	}()
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
