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
		<-done
		<-done
	})
	return &realHarness{t: t, sup: sup, ctx: ctx, rec: rec}
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
	eventually(h.t, name+" running", func() bool {
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
		if err := unix.Kill(st.PID, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		next := h.running("sleeper", st.PID)
		if next.Generation != st.Generation+1 {
			t.Errorf("generation %d after %d", next.Generation, st.Generation)
		}
		st = next
	}
	eventually(t, "three exits", func() bool { return len(h.rec.exitList()) == 3 })
	for _, e := range h.rec.exitList() {
		if e.Reason != ReasonSignal || e.Signal != syscall.SIGKILL {
			t.Errorf("exit %s, want signal SIGKILL", e.Describe())
		}
	}
}

func TestRealCrashLoop(t *testing.T) {
	testenv.RequireRoot(t, "supervising real processes as a subreaper")
	for _, action := range []config.LimitAction{config.ActionGiveUp, config.ActionBackoff} {
		t.Run(string(action), func(t *testing.T) {
			h := newRealHarness(t)
			p := helperProgram("crasher", "exit", "3")
			p.Restart.Backoff = config.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Jitter: 0}
			p.Restart.Limit = config.Limit{Burst: 4, Interval: time.Minute, Action: action}
			var usage0 unix.Rusage
			_ = unix.Getrusage(unix.RUSAGE_SELF, &usage0)
			start := time.Now()
			h.apply(p)
			if action == config.ActionGiveUp {
				eventually(t, "fatal", func() bool { return h.status("crasher").State == StateFatal })
				time.Sleep(300 * time.Millisecond) // nothing may start after fatal
				if n := len(h.rec.exitList()); n != 4 {
					t.Errorf("%d exits, want 4 (the burst)", n)
				}
				return
			}
			// backoff: keeps going at max delay, never fatal.
			var delays []time.Duration
			var last time.Time
			eventually(t, "8 exits", func() bool {
				st := h.status("crasher")
				if st.State == StateFatal {
					t.Fatal("action backoff reached fatal")
				}
				if st.State == StateBackoff && !st.NextStart.IsZero() && st.NextStart != last {
					last = st.NextStart
					delays = append(delays, time.Until(st.NextStart))
				}
				return len(h.rec.exitList()) >= 8
			})
			for _, e := range h.rec.exitList() {
				if e.Reason != ReasonExitError || e.Code != 3 {
					t.Errorf("exit %s, want exit_error 3", e.Describe())
				}
			}
			// CPU of the supervisor during the crash loop must stay low: a
			// spinning loop would burn a whole core.
			var usage1 unix.Rusage
			_ = unix.Getrusage(unix.RUSAGE_SELF, &usage1)
			cpu := time.Duration(usage1.Utime.Nano()+usage1.Stime.Nano()-usage0.Utime.Nano()-usage0.Stime.Nano()) * time.Nanosecond
			wall := time.Since(start)
			t.Logf("crash loop: %d exits in %v, supervisor cpu %v, delays seen %v", len(h.rec.exitList()), wall, cpu, delays)
			if cpu > wall/2 {
				t.Errorf("supervisor used %v of cpu in %v of crash loop", cpu, wall)
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
	var gc int
	eventually(t, "grandchild pid", func() bool {
		b, err := os.ReadFile(pidfile)
		gc, _ = strconv.Atoi(string(b))
		return err == nil && gc > 0
	})
	t.Cleanup(func() { _ = unix.Kill(gc, unix.SIGKILL) })
	if err := h.sup.Control(h.ctx, "tree", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stopped", func() bool { return h.status("tree").State == StateStopped })
	eventually(t, "whole tree gone", func() bool { return !alive(st.PID) && !alive(gc) })
}

func TestRealStartFailureBacksOff(t *testing.T) {
	testenv.RequireRoot(t, "supervising real processes as a subreaper")
	h := newRealHarness(t)
	p := config.DefaultProgram()
	p.Name = "missing"
	p.Command = []string{"/nonexistent/respawnd-test-binary"}
	p.Restart.Backoff = config.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}
	h.apply(p)
	eventually(t, "five start failures", func() bool { return len(h.rec.exitList()) >= 5 })
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
