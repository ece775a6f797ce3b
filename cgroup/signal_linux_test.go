package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

func TestMemberOf(t *testing.T) {
	v1 := "12:pids:/user.slice\n7:memory:/respawnd/programs/api\n1:name=systemd:/x\n0::/user.slice\n"
	v2 := "0::/respawnd/programs/api/sub\n"
	for _, tc := range []struct {
		content, path string
		v2, want      bool
	}{
		{v1, "/respawnd/programs/api", false, true},
		{v1, "/respawnd/programs/ap", false, false}, // a prefix of the name is not membership
		{v1, "/user.slice", false, false},           // the v2 line does not count on v1
		{v2, "/respawnd/programs/api", true, true},  // below the group counts
		{v2, "/respawnd/programs/api/sub/x", true, false},
		{"0::/respawnd/programs/apix\n", "/respawnd/programs/api", true, false},
		{"garbage", "/a", true, false},
		{"", "/a", false, false},
	} {
		if got := memberOf([]byte(tc.content), tc.path, tc.v2); got != tc.want {
			t.Errorf("memberOf(%q, %q, v2=%v) = %v, want %v", tc.content, tc.path, tc.v2, got, tc.want)
		}
	}
}

// exitWait bounds exitSignal's wait.
const exitWait = 30 * time.Second

// exitSignal waits for cmd, for exitWait at most (then it kills it and
// fails the test), and returns the signal that ended it, or -1 for a normal
// exit.
func exitSignal(t *testing.T, cmd *exec.Cmd) syscall.Signal {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(exitWait):
		_ = cmd.Process.Kill() // our own child, through its pidfd
		<-done
		t.Fatalf("pid %d still running after %v", cmd.Process.Pid, exitWait)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return -1
	}
	return ws.Signal()
}

// Signal reaches every process in the group and nothing outside it.
func TestSignalReachesGroupOnly(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "sig", Limits{})
	in1, in2 := startInGroup(t, g), startInGroup(t, g)
	argv := testenv.HelperArgv("sleep")
	outside := exec.Command(argv[0], argv[1:]...)
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = outside.Process.Kill(); _ = outside.Wait() })
	poll(t, "two processes in the group", func() bool { pids, _ := g.PIDs(); return len(pids) == 2 })

	if err := g.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{in1, in2} {
		if sig := exitSignal(t, c); sig != syscall.SIGTERM {
			t.Errorf("member pid %d ended by %v, want SIGTERM", c.Process.Pid, sig)
		}
	}
	if err := outside.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("a process outside the group was signalled: %v", err)
	}
}

// Drain waits for the members to finish on their own, and only at its
// timeout kills what is left.
func TestDrainWaitsThenKills(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "drain", Limits{})

	// A member that finishes by itself after a moment: Drain waits for it.
	quick := startInGroupArgv(t, g, testenv.HelperArgv("exit-after", "300ms", "0"))
	if err := g.Drain(time.Minute); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, quick); sig != -1 {
		t.Errorf("a member that exits by itself was killed by %v", sig)
	}

	// A member that ignores SIGTERM: SIGKILL at the timeout.
	stubborn := startInGroupArgv(t, g, testenv.HelperArgv("ignore-term"))
	poll(t, "member in the group", func() bool { pids, _ := g.PIDs(); return len(pids) == 1 })
	waitIgnores(t, stubborn.Process.Pid, syscall.SIGTERM)
	if err := g.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := g.Drain(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, stubborn); sig != syscall.SIGKILL {
		t.Errorf("member ignoring SIGTERM ended by %v, want SIGKILL at the drain timeout", sig)
	}
	if pids, err := g.PIDs(); err != nil || len(pids) != 0 {
		t.Errorf("group not empty after Drain: %v %v", pids, err)
	}
}

// waitIgnores waits until pid ignores sig (SigIgn in /proc/PID/status).
func waitIgnores(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	poll(t, "the helper to ignore "+sig.String(), func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return err == nil && mask&(1<<(uint(sig)-1)) != 0
			}
		}
		return false
	})
}

// Contains proves membership of the group by pid.
func TestManagerContains(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "contains", Limits{})
	c := startInGroup(t, g)
	poll(t, "member", func() bool { pids, _ := g.PIDs(); return len(pids) == 1 })
	if in, err := m.Contains(c.Process.Pid, g.Path()); err != nil || !in {
		t.Errorf("Contains(member) = %v, %v", in, err)
	}
	if in, _ := m.Contains(c.Process.Pid, g.Path()+"x"); in {
		t.Error("Contains matched a sibling whose name starts like the group's")
	}
	if in, _ := m.Contains(1, g.Path()); in {
		t.Error("Contains says init is in the group")
	}
}

// Peak is the program's own peak since the last ResetPeak: an instance
// OOM-killed at the 64 MiB limit peaks near it, and the next instance,
// which only sleeps, starts from zero again.
func TestPeakPerInstance(t *testing.T) {
	m := newTestManager(t)
	const limit = 64 << 20
	g := createGroup(t, m, "peak", Limits{Max: ptr(limit), SwapMax: ptr(0)})
	g.ResetPeak()
	hog := startInGroupArgv(t, g, testenv.HelperArgv("hog"))
	if sig := exitSignal(t, hog); sig != syscall.SIGKILL {
		t.Fatalf("hog ended by %v, want the OOM killer's SIGKILL", sig)
	}
	peak, ok := g.Peak()
	if !ok {
		if !g.v2 {
			t.Fatal("no peak on cgroup v1")
		}
		// Before Linux 6.12 memory.peak holds one peak for the group's
		// whole life and refuses "reset": the promise is then to report
		// no peak rather than an earlier instance's. Prove the kernel
		// really refuses the reset, and that no later instance gets a
		// peak either.
		f, err := os.OpenFile(filepath.Join(g.dir, "memory.peak"), os.O_RDWR, 0)
		if err == nil {
			_, err = f.WriteString("reset\n")
			f.Close()
		}
		if err == nil {
			t.Fatal("memory.peak takes a reset, yet Peak reports no peak")
		}
		g.ResetPeak()
		small := startInGroupArgv(t, g, testenv.HelperArgv("exit-after", "10ms", "0"))
		if sig := exitSignal(t, small); sig != -1 {
			t.Fatalf("small helper ended by %v", sig)
		}
		if peak, ok := g.Peak(); ok {
			t.Errorf("Peak after the OOM-killed hog = %d on a kernel that cannot reset it: that is the group's lifetime peak, not the instance's", peak)
		}
		return
	}
	// The kernel may charge a few pages past the limit before it gives up.
	if peak < limit/2 || peak > limit+1<<20 {
		t.Errorf("peak of the OOM-killed hog %d bytes, want close to the %d limit", peak, limit)
	}
	g.ResetPeak()
	small := startInGroupArgv(t, g, testenv.HelperArgv("exit-after", "10ms", "0"))
	if sig := exitSignal(t, small); sig != -1 {
		t.Fatalf("small helper ended by %v", sig)
	}
	if peak, ok := g.Peak(); !ok || peak >= limit/2 {
		t.Errorf("peak after a reset %d (known %v), want the small helper's own, well below %d", peak, ok, limit/2)
	}
}

// Signal lists the group, then signals each pid it listed; in between a
// process may leave the group, or exit and have its pid taken by a process
// elsewhere. A pid that is not in the group when it is signalled is left
// alone.
func TestSignalMemberChecksMembership(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "member", Limits{})
	in := startInGroup(t, g)
	argv := testenv.HelperArgv("sleep")
	outside := exec.Command(argv[0], argv[1:]...)
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = outside.Process.Kill(); _ = outside.Wait() })

	if err := g.signalMember(outside.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A SIGKILL sent above would end the process whatever follows, so the
	// signal that ends it tells whether signalMember sent one.
	if err := outside.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, outside); sig != syscall.SIGTERM {
		t.Errorf("a process outside the group ended by %v: signalMember signalled it", sig)
	}

	if err := g.signalMember(in.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, in); sig != syscall.SIGKILL {
		t.Errorf("a member ended by %v, want the SIGKILL of signalMember", sig)
	}
}
