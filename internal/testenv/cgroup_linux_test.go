package testenv

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	RunHelperIfRequested()
	os.Exit(m.Run())
}

// startHelper starts the sleeping helper as a child, killed and reaped at
// the end of the test.
func startHelper(t *testing.T) *exec.Cmd {
	t.Helper()
	argv := HelperArgv("sleep")
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child, through its pidfd
		_ = cmd.Wait()
	})
	return cmd
}

// The cleanup of a memory cgroup kills what the test left in it but never
// the test process, even when the test process (v2) or one of its threads
// (v1, where one thread lists the whole process in cgroup.procs) is still
// in it: that is moved back where it came from.
func TestRemoveCgroupSparesTheTestProcess(t *testing.T) {
	cg := NewMemoryCgroup(t, 256<<20)
	helper := startHelper(t)
	mustWrite(t, cg.Procs(), strconv.Itoa(helper.Process.Pid))

	// Move this process (v2) or one locked thread of it (v1) into the
	// cgroup, as a launcher does for the instant of a fork.
	release := make(chan struct{})
	moved := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is retired with the goroutine: it never runs other
		// code from inside the cgroup.
		if cg.V2 {
			moved <- os.WriteFile(cg.Procs(), []byte(strconv.Itoa(os.Getpid())), 0)
		} else {
			moved <- os.WriteFile(filepath.Join(cg.Dir, "tasks"), []byte(strconv.Itoa(unix.Gettid())), 0)
		}
		<-release
	}()
	defer close(release)
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	pids, err := cg.PIDs()
	if err != nil || !slices.Contains(pids, os.Getpid()) || !slices.Contains(pids, helper.Process.Pid) {
		t.Fatalf("cgroup.procs = %v, %v; want the test process and the helper", pids, err)
	}

	RemoveCgroup(t, cg.Dir, cg.Path, cg.V2, cg.home)

	if _, err := os.Stat(cg.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cgroup %s left behind: %v", cg.Dir, err)
	}
	done := make(chan error, 1)
	go func() { done <- helper.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("helper ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the helper in the cgroup was not killed")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := cgroupPathOf(self, cg.V2); !ok || p == cg.Path {
		t.Errorf("the test process is still in %s (%q)", cg.Path, p)
	}
}

// SignalIf signals only when the check holds, and never the test process.
func TestSignalIf(t *testing.T) {
	RequireRoot(t, "signalling a helper")
	helper := startHelper(t)
	pid := helper.Process.Pid
	// Until the child execs, its command line is the test binary's.
	for deadline := time.Now().Add(10 * time.Second); !isHelper(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never ran as a helper", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if isHelper(os.Getpid()) {
		t.Fatal("the test process taken for a helper")
	}
	if err := SignalIf(pid, syscall.SIGKILL, func(int) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if err := SignalIf(os.Getpid(), syscall.SIGKILL, func(int) bool { return true }); err == nil {
		t.Error("SignalIf agreed to signal the test process")
	}
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("helper signalled although the check failed: %v", err)
	}
	KillHelper(pid)
	var ee *exec.ExitError
	if err := helper.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("helper ended with %v, want SIGKILL", err)
	}
}

// The cgroup version is a matrix dimension: the helper for the other
// version skips even when privileged skips are failures.
func TestRequireCgroupVersion(t *testing.T) {
	_, v2, err := memoryRoot()
	if err != nil {
		Skip(t, "%v", err)
	}
	t.Setenv(RequireEnv, "1")
	other := RequireCgroupV1
	if !v2 {
		other = RequireCgroupV2
	}
	ran := false
	t.Run("other", func(t *testing.T) {
		other(t, "the other version")
		ran = true
	})
	if ran {
		t.Error("the test for the other cgroup version ran")
	}
	mine := RequireCgroupV2
	if !v2 {
		mine = RequireCgroupV1
	}
	t.Run("this", func(t *testing.T) {
		mine(t, "this version")
	})
}
