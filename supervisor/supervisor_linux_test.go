package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// realLauncher adapts the real launcher for these tests.
type realLauncher struct{ l *restart.Launcher }

func (r realLauncher) Start(c restart.Command) (Process, error) {
	p, err := r.l.Start(c)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// realHarness runs a Supervisor over real processes and the real clock.
type realHarness struct {
	t   *testing.T
	sup *Supervisor
	ctx context.Context
	rec *fakeRecorder
}

func newRealHarness(t *testing.T) *realHarness {
	t.Helper()
	l := restart.NewLauncher(restart.LauncherConfig{Stdout: io.Discard, Stderr: io.Discard, Subreaper: true})
	rec := &fakeRecorder{}
	// The kernel log is not followed here, so a SIGKILL waits out the
	// attribution window and settles as a signal unless vmstat shows no OOM
	// kill at all since the start.
	sup := New(Config{
		Launcher:          realLauncher{l},
		Recorder:          rec,
		Env:               []string{"PATH=/usr/bin:/bin"},
		KernelLog:         true,
		HostOOMKills:      func() (uint64, error) { return oom.VMStatOOMKills("/proc") },
		AttributionWindow: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = l.Run(ctx); done <- struct{}{} }()
	go func() { _ = sup.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("the supervisor or the launcher did not stop within 60s of their cancellation")
				return
			}
		}
	})
	return &realHarness{t: t, sup: sup, ctx: ctx, rec: rec}
}

// sync returns once every program loop has handled what it had taken or
// been sent before (see harness.sync).
func (h *realHarness) sync() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	if err := h.sup.barrier(ctx); err != nil {
		h.t.Fatalf("supervisor not alive: %v", err)
	}
}

func (h *realHarness) apply(ps ...config.Program) {
	h.t.Helper()
	if err := h.sup.Apply(h.ctx, &config.Config{Limits: config.DefaultLimits(), Programs: ps}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *realHarness) status(name string) Status {
	for _, s := range h.sup.Snapshot() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func (h *realHarness) running(name string, notPID int) Status {
	h.t.Helper()
	var st Status
	testenv.Eventually(h.t, name+" running", func() bool {
		st = h.status(name)
		return st.State == StateRunning && st.PID != 0 && st.PID != notPID
	})
	return st
}

func helperProgram(name string, args ...string) config.Program {
	p := config.DefaultProgram()
	p.Name = name
	p.Command = testenv.HelperArgv(args[0], args[1:]...)
	p.Stop.Timeout = 2 * time.Second
	return p
}

// proc is a process as a test knows it: its pid and start time.
type proc struct {
	pid   int
	start uint64
}

// identify reads pid's start time; ok is false when it is gone or a zombie.
func identify(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return proc{}, false
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return proc{}, false
	}
	return proc{pid: pid, start: st}, true
}

// kill SIGKILLs the process p and never another that reused its pid: the
// signal goes through a pidfd opened before the start time is checked.
func (p proc) kill() {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if now, ok := identify(p.pid); ok && now.start == p.start {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// mustIdentify identifies pid, which must be running.
func mustIdentify(t *testing.T, pid int) proc {
	t.Helper()
	p, ok := identify(pid)
	if !ok {
		t.Fatalf("pid %d is gone", pid)
	}
	return p
}

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	if err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func TestRealSIGKILLRestarts(t *testing.T) {
	testenv.RequireRoot(t, "supervising real processes as a subreaper")
	h := newRealHarness(t)
	h.apply(helperProgram("sleeper", "sleep"))
	st := h.running("sleeper", 0)
	for i := 0; i < 3; i++ {
		mustIdentify(t, st.PID).kill()
		next := h.running("sleeper", st.PID)
		if next.Generation != st.Generation+1 {
			t.Errorf("generation %d after %d", next.Generation, st.Generation)
		}
		st = next
	}
	testenv.Eventually(t, "three exits", func() bool { return len(h.rec.exitList()) == 3 })
	for _, e := range h.rec.exitList() {
		if e.Reason != ReasonSignal || e.Signal != syscall.SIGKILL {
			t.Errorf("exit %s, want signal SIGKILL", e.Describe())
		}
	}
}

func TestRealCrashLoop(t *testing.T) {
	testenv.RequireRoot(t, "supervising real processes as a subreaper")
	// The delay before each restart: the first at once, then the backoff
	// doubling from initial; from the exit that finds burst starts within
	// the interval on, the limit's action: give up, or max every time.
	const initial, maxDelay = 20 * time.Millisecond, 200 * time.Millisecond
	for _, tc := range []struct {
		action config.LimitAction
		exits  int
		delays []time.Duration // before the start after each exit
	}{
		{config.ActionGiveUp, 4, []time.Duration{0, initial, 2 * initial}},
		{config.ActionBackoff, 8, []time.Duration{0, initial, 2 * initial, maxDelay, maxDelay, maxDelay, maxDelay}},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			h := newRealHarness(t)
			p := helperProgram("crasher", "exit", "3")
			p.Restart.Backoff = config.Backoff{Initial: initial, Max: maxDelay, Multiplier: 2, Jitter: 0}
			p.Restart.Limit = config.Limit{Burst: 4, Interval: time.Minute, Action: tc.action}
			h.apply(p)
			testenv.Eventually(t, fmt.Sprintf("%d exits", tc.exits), func() bool {
				if tc.action == config.ActionBackoff && h.status("crasher").State == StateFatal {
					t.Fatal("action backoff reached fatal")
				}
				return len(h.rec.exitList()) >= tc.exits
			})
			if tc.action == config.ActionGiveUp {
				testenv.Eventually(t, "fatal", func() bool { return h.status("crasher").State == StateFatal })
				// Nothing may start after fatal: once the loop is done with
				// the exit that gave up, no start is scheduled.
				h.sync()
				if st := h.status("crasher"); st.State != StateFatal || !st.NextStart.IsZero() || st.Generation != 4 {
					t.Errorf("status %+v, want fatal after 4 starts with no next start", st)
				}
				if n := len(h.rec.exitList()); n != 4 {
					t.Errorf("%d exits, want 4 (the burst)", n)
				}
			}
			exits := h.rec.exitList()
			for _, e := range exits {
				if e.Reason != ReasonExitError || e.Code != 3 {
					t.Errorf("exit %s, want exit_error 3", e.Describe())
				}
			}
			// A timer never fires early: the next start comes no sooner than
			// the delay after the exit (and, on a busy machine, any time
			// later).
			for i, want := range tc.delays {
				if gap := exits[i+1].Started.Sub(exits[i].Time); gap < want {
					t.Errorf("start %d came %v after exit %d, want at least %v", i+2, gap, i+1, want)
				}
			}
		})
	}
}

func TestRealStopKillsTree(t *testing.T) {
	testenv.RequireRoot(t, "supervising real processes as a subreaper")
	h := newRealHarness(t)
	pidfile := filepath.Join(t.TempDir(), "grandchild")
	h.apply(helperProgram("tree", "fork-sleep", pidfile))
	st := h.running("tree", 0)
	var gc proc
	testenv.Eventually(t, "grandchild pid", func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil {
			return false
		}
		var ok bool
		gc, ok = identify(pid)
		return ok
	})
	t.Cleanup(gc.kill)
	if err := h.sup.Control(h.ctx, "tree", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "stopped", func() bool { return h.status("tree").State == StateStopped })
	testenv.Eventually(t, "whole tree gone", func() bool { return !alive(st.PID) && !alive(gc.pid) })
}

func TestRealStartFailureBacksOff(t *testing.T) {
	testenv.RequireRoot(t, "supervising real processes as a subreaper")
	h := newRealHarness(t)
	p := config.DefaultProgram()
	p.Name = "missing"
	p.Command = []string{"/nonexistent/respawnd-test-binary"}
	p.Restart.Backoff = config.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}
	h.apply(p)
	testenv.Eventually(t, "five start failures", func() bool { return len(h.rec.exitList()) >= 5 })
	exits := h.rec.exitList()
	if e := exits[0]; e.Reason != ReasonStartFailure || !strings.Contains(e.Err, "/nonexistent/respawnd-test-binary") || !strings.Contains(e.Err, restart.OpLookupCommand) && !strings.Contains(e.Err, restart.OpExec) {
		t.Errorf("exit %+v, want start_failure naming the step and the binary", e)
	}
	st := h.status("missing")
	if st.State != StateBackoff && st.State != StateStarting {
		t.Errorf("state %v, want backoff", st.State)
	}
	if st.Error == "" {
		t.Error("status carries no error")
	}
	// Backing off, not spinning: after the first retry (at once) the
	// attempts are at least the backoff apart, less the 20 % jitter. A
	// timer never fires early, so this bound holds on any machine.
	for i := 2; i < len(exits); i++ {
		if gap := exits[i].Time.Sub(exits[i-1].Time); gap < 40*time.Millisecond {
			t.Errorf("start attempts %d and %d only %v apart: spinning", i, i+1, gap)
		}
	}
}
