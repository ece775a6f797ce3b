package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// withBlockingDrain makes every cgroup's Drain wait until the test sends
// its outcome on the returned channel. Call it after newHarness: its
// cleanup, which ends every wait, then runs before the harness stops.
func withBlockingDrain(t *testing.T, cg *fakeCgroups) chan error {
	c := make(chan error)
	cg.mu.Lock()
	cg.drain, cg.released = c, make(chan struct{})
	released := cg.released
	cg.mu.Unlock()
	t.Cleanup(func() { close(released) })
	return c
}

// A program removed and added again while its old instance is still
// stopping starts again only once the old loop is done with its processes
// and its cgroup: never two loops for one name, and no start into a cgroup
// that is being removed.
func TestReAddDuringStopWaitsForOldIncarnation(t *testing.T) {
	cg := &fakeCgroups{}
	// Starts go into the cgroups' log, so that the order of every create,
	// start and removal is on one record.
	h := newHarness(t, func(c *Config) { c.Cgroups = cg; c.Launcher = startLogger{c.Launcher.(*fakeLauncher), cg} })
	drain := withBlockingDrain(t, cg)
	h.apply(prog("x"))
	h.waitState("x", StateRunning)
	old := h.launcher.last()

	h.apply() // removed: SIGTERM, the process dies, the cgroup drains
	testenv.Eventually(t, "old instance signalled", func() bool { return len(old.gotSignals()) > 0 })
	h.apply(prog("x")) // back before the old stop is complete
	if got := cg.created("x"); got != 1 {
		t.Fatalf("cgroup created %d times before the old incarnation finished, want 1", got)
	}
	drain <- nil
	h.waitStarts(2)
	h.waitState("x", StateRunning)
	h.sync()
	cg.mu.Lock()
	log := slices.Clone(cg.log)
	cg.mu.Unlock()
	// A new incarnation that did not wait would have created its cgroup
	// and started before the old cgroup's removal, which came only after
	// the drain was released.
	if want := []string{"create x", "start x", "remove x", "create x", "start x"}; !slices.Equal(log, want) {
		t.Errorf("cgroups and starts %q, want %q", log, want)
	}
}

// startLogger records every start in the cgroups' log.
type startLogger struct {
	*fakeLauncher
	cg *fakeCgroups
}

func (l startLogger) Start(cmd restart.Command) (Process, error) {
	l.cg.record("start " + cmd.Name)
	return l.fakeLauncher.Start(cmd)
}

// start while a stop is in progress is not acknowledged and dropped: the
// program starts again once the stop is complete. stop after that wins.
func TestStartDuringStopTakesEffect(t *testing.T) {
	h := newHarness(t)
	h.launcher.obeyStop = false
	h.apply(prog("p", func(p *config.Program) { p.Stop.Timeout = 3 * time.Second }))
	h.waitState("p", StateRunning)
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopping)
	if err := h.sup.Control(h.ctx, "p", ActionStart, 0); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(3 * time.Second) // SIGKILL at the timeout
	h.waitStarts(2)
	h.waitState("p", StateRunning)

	// The latest command wins: start, then stop again, ends stopped.
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopping)
	if err := h.sup.Control(h.ctx, "p", ActionStart, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(3 * time.Second)
	h.waitState("p", StateStopped)
	h.sync()
	if n := h.launcher.started(); n != 2 {
		t.Errorf("started %d times, want 2", n)
	}
}

// An operator start after give-up forgets the old start history: the
// program gets its whole burst again instead of giving up at once.
func TestStartAfterGiveUpResetsHistory(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("p", func(p *config.Program) {
		p.Restart.Backoff = config.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Multiplier: 1}
		p.Restart.Limit = config.Limit{Burst: 2, Interval: time.Hour, Action: config.ActionGiveUp}
	}))
	crashUntilFatal := func() int {
		t.Helper()
		n := 0
		for h.status("p").State != StateFatal {
			st := h.waitState("p", StateRunning)
			h.launcher.last().die(restart.ExitStatus{Code: 1})
			n++
			testenv.Eventually(t, "next state", func() bool {
				s := h.status("p")
				return s.State == StateFatal || s.State == StateBackoff || s.PID != st.PID && s.State == StateRunning
			})
			for _, d := range h.clock.pendingTimers() {
				h.clock.Advance(d)
			}
			if n > 10 {
				t.Fatal("never gave up")
			}
		}
		return n
	}
	first := crashUntilFatal()
	if err := h.sup.Control(h.ctx, "p", ActionStart, 0); err != nil {
		t.Fatal(err)
	}
	if again := crashUntilFatal(); again != first {
		t.Errorf("after an operator start the program crashed %d times before giving up, want %d as at first", again, first)
	}
}

// A stop is complete only once the program's cgroup is empty: processes
// that left the process group get the stop signal through the cgroup and
// the stop timeout to finish.
func TestStopWaitsForCgroupToEmpty(t *testing.T) {
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Cgroups = cg })
	drain := withBlockingDrain(t, cg)
	h.apply(prog("p"))
	h.waitState("p", StateRunning)
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "main process gone", func() bool { return len(h.rec.exitList()) == 1 })
	if s := h.status("p").State; s != StateStopping {
		t.Fatalf("state %v with processes left in the cgroup, want stopping", s)
	}
	g := cg.group("p")
	if sigs := g.gotSignals(); !slices.Equal(sigs, []syscall.Signal{syscall.SIGTERM, syscall.SIGCONT}) {
		t.Errorf("cgroup got %v, want the stop signal once, then SIGCONT", sigs)
	}
	drain <- nil
	h.waitState("p", StateStopped)
}

// Without a cgroup, a stop asks the launcher to keep the process group
// until its members are gone or the stop timeout passes. It asks before it
// sends the stop signal: a leader that exits of the signal at once would
// otherwise take its group down with it (the launcher SIGKILLs the group of
// a leader that exits without lingering).
func TestStopLingersWithoutCgroup(t *testing.T) {
	l := &lingerLauncher{fakeLauncher: fakeLauncher{obeyStop: true}}
	h := newHarness(t, func(c *Config) { c.Launcher = l })
	l.clock = h.clock
	h.apply(prog("p", func(p *config.Program) { p.Stop.Timeout = 7 * time.Second }))
	h.waitState("p", StateRunning)
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopped)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Equal(l.lingers, []time.Duration{7 * time.Second}) {
		t.Errorf("lingers %v, want the stop timeout once", l.lingers)
	}
	if want := []string{"linger 7s", "signal terminated", "signal continued"}; !slices.Equal(l.calls, want) {
		t.Errorf("calls %q, want %q", l.calls, want)
	}
}

type lingerLauncher struct {
	fakeLauncher
	lingers []time.Duration
	calls   []string // Linger and Signal, in order
}

type lingerProc struct {
	*fakeProc
	l *lingerLauncher
}

func (p lingerProc) Linger(d time.Duration) {
	p.l.mu.Lock()
	p.l.lingers = append(p.l.lingers, d)
	p.l.calls = append(p.l.calls, fmt.Sprintf("linger %v", d))
	p.l.mu.Unlock()
}

func (p lingerProc) Signal(sig syscall.Signal) error {
	p.l.mu.Lock()
	p.l.calls = append(p.l.calls, fmt.Sprintf("signal %v", sig))
	p.l.mu.Unlock()
	return p.fakeProc.Signal(sig)
}

func (l *lingerLauncher) Start(cmd restart.Command) (Process, error) {
	p, err := l.fakeLauncher.Start(cmd)
	if err != nil {
		return nil, err
	}
	return lingerProc{p.(*fakeProc), l}, nil
}

// One rise of a cgroup's oom_kill counter is claimed once: when the kernel
// named the main process (its exit status not in yet), the worker check
// leaves the rise to the main process's death.
func TestOOMCounterClaimedOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kmsg    bool
		exiting bool
	}{
		{"kernel report first", true, false},
		{"main process exiting", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := &fakeCgroups{}
			var dying sync.Map
			h := newHarness(t, func(c *Config) {
				c.Cgroups = cg
				c.KernelLog = tc.kmsg
				c.Exiting = func(pid int) bool { _, ok := dying.Load(pid); return ok }
			})
			max := int64(64 << 20)
			h.apply(prog("hog", func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
			st := h.waitState("hog", StateRunning)
			g := cg.group("hog")
			g.event() // the kernel raises the counter first
			if tc.kmsg {
				h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID, TaskMemcg: g.path})
			}
			if tc.exiting {
				dying.Store(st.PID, true)
			}
			// The loop has the counters and the report (if any) before the
			// window closes.
			g.waitTaken(t)
			h.routed()
			h.sync()
			// The attribution window passes, several times over, before the
			// exit status comes in (a large process takes a while to tear
			// down): each time the check for workers' kills finds the main
			// process dying and waits for another window.
			for i := range 5 {
				var p []time.Duration
				testenv.Eventually(t, "the check for workers' kills to be armed", func() bool {
					p = h.clock.pendingTimers()
					return len(p) > 0
				})
				if len(p) != 1 {
					t.Fatalf("window %d: timers %v, want the worker check alone", i, p)
				}
				waitReceived(t, h.clock.fire(p[0]))
			}
			h.launcher.last().die(sigkill)
			testenv.Eventually(t, "exit", func() bool { return len(h.rec.exitList()) == 1 })
			// The death is handled; so is the check it leaves armed.
			h.sync()
			waitReceived(t, h.clock.fire(time.Hour))
			h.sync()
			if e := h.rec.exitList()[0]; e.Reason != ReasonOOMKill {
				t.Errorf("exit %v, want oom_kill", e.Describe())
			}
			if n := h.rec.killCount("hog"); n != 1 {
				t.Errorf("oom kills counted %d, want 1", n)
			}
			for _, ev := range h.sup.Events() {
				if ev.Worker {
					t.Errorf("the main process's OOM kill was also counted as a worker's: %+v", ev)
				}
			}
		})
	}
}

// A worker's OOM kill (the main process lives on) is counted once, whether
// the counter's watcher or the kernel report comes first.
func TestWorkerOOMKillCountedOnce(t *testing.T) {
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Cgroups = cg; c.KernelLog = true })
	max := int64(64 << 20)
	h.apply(prog("p", func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
	h.waitState("p", StateRunning)
	g := cg.group("p")
	g.event()
	testenv.Eventually(t, "worker claimed after the window", func() bool {
		h.clock.Advance(500 * time.Millisecond)
		return h.rec.killCount("p") == 1
	})
	// The kernel's report of the same kill arrives late.
	h.sup.OOMKill(h.ctx, oom.Kill{PID: 4242, Comm: "worker", TaskMemcg: g.path})
	h.routed()
	h.sync() // the report is handled
	if n := h.rec.killCount("p"); n != 1 {
		t.Errorf("worker kill counted %d times, want 1", n)
	}
}

// A recorded instance that cannot be proven to be the program's (a hostile
// or stale state file) is never adopted, never signalled, even when its
// recorded definition differs.
func TestUnprovenRecordedInstanceIsLeftAlone(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	stranger := src.run(555, 42, "sshd")
	src.unproven[555] = true
	spec := prog("api", alwaysAtOnce)
	h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, ConfigHash: "stale", Generation: 3, Child: true}}))
	h.apply(spec)
	h.waitStarts(1)
	st := h.waitState("api", StateRunning)
	if st.PID == 555 {
		t.Fatal("adopted an unproven process")
	}
	if sigs := stranger.gotSignals(); len(sigs) != 0 {
		t.Errorf("an unproven process got %v", sigs)
	}
}

// Recorded instances of programs no longer in the configuration are
// stopped with their recorded stop settings, or, when asked, kept and
// listed; never silently dropped.
func TestOrphansStoppedOrKept(t *testing.T) {
	t.Run("stop", func(t *testing.T) {
		clock := newFakeClock()
		src := newFakeSource(clock)
		gone := src.run(777, 9, "old")
		h := newHarness(t, withSource(src, map[string]Instance{"old": {Program: "old", PID: 777, StartTime: 9, Child: true, StopSignal: syscall.SIGINT, StopTimeout: 4 * time.Second}}))
		h.apply(prog("api"))
		testenv.Eventually(t, "orphan signalled", func() bool { return len(gone.gotSignals()) > 0 })
		if sigs := gone.gotSignals(); sigs[0] != syscall.SIGINT {
			t.Errorf("orphan got %v, want its recorded stop signal SIGINT", sigs)
		}
		testenv.Eventually(t, "orphan's exit event", func() bool {
			return slices.ContainsFunc(h.sup.Events(), func(e Event) bool { return e.Program == "old" && e.PID == 777 })
		})
		if o := h.sup.Orphans(); len(o) != 0 {
			t.Errorf("orphans listed after they were stopped: %+v", o)
		}
	})
	t.Run("keep", func(t *testing.T) {
		clock := newFakeClock()
		src := newFakeSource(clock)
		kept := src.run(777, 9, "old")
		h := newHarness(t, withSource(src, map[string]Instance{"old": {Program: "old", PID: 777, StartTime: 9, Child: true, ConfigHash: prog("old").Hash()}}), func(c *Config) { c.KeepOrphans = true })
		h.apply(prog("api"))
		h.waitState("api", StateRunning)
		o := h.sup.Orphans()
		if len(o) != 1 || o[0].Program != "old" || o[0].PID != 777 {
			t.Fatalf("orphans %+v, want old pid 777", o)
		}
		testenv.Eventually(t, "orphan in the state file", func() bool {
			return slices.ContainsFunc(src.lastSave(), func(i Instance) bool { return i.Program == "old" && i.PID == 777 })
		})
		if sigs := kept.gotSignals(); len(sigs) != 0 {
			t.Errorf("a kept orphan got %v", sigs)
		}
		// Its program comes back: it takes the instance over.
		h.apply(prog("api"), prog("old"))
		st := h.waitState("old", StateRunning)
		if st.PID != 777 {
			t.Errorf("old runs pid %d, want the kept instance 777", st.PID)
		}
		if len(h.sup.Orphans()) != 0 {
			t.Error("still listed as an orphan")
		}
	})
}

// A supervisor that applied nothing writes no state file: the file keeps
// describing instances it never took over.
func TestNoStateWrittenWithoutApply(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	src.run(555, 42, "api")
	h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, Child: true}}))
	h.stop()
	if s := src.saves; len(s) != 0 {
		t.Errorf("state written %d times by a supervisor that applied nothing: %+v", len(s), s)
	}
}

// A panic in one program's loop is recovered, logged and counted; the
// loop and every other program go on, and the supervisor stays alive.
func TestPanicInProgramLoopIsRecovered(t *testing.T) {
	l := &panicLauncher{fakeLauncher: fakeLauncher{obeyStop: true}, panicFor: "bad"}
	h := newHarness(t, func(c *Config) { c.Launcher = l })
	l.clock = h.clock
	h.apply(prog("bad"), prog("good"))
	h.waitState("good", StateRunning)
	testenv.Eventually(t, "panic counted", func() bool { return h.sup.Panics() >= 1 })
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := h.sup.Alive(ctx); err != nil {
		t.Fatalf("supervisor not alive after a recovered panic: %v", err)
	}
	// The good program is still supervised.
	h.launcher.mu.Lock()
	h.launcher.mu.Unlock()
	l.last().die(sigkill)
	testenv.Eventually(t, "good restarted", func() bool { return l.started() >= 2 })
}

type panicLauncher struct {
	fakeLauncher
	panicFor string
}

func (l *panicLauncher) Start(cmd restart.Command) (Process, error) {
	if cmd.Name == l.panicFor {
		panic("launcher bug")
	}
	return l.fakeLauncher.Start(cmd)
}

// Alive names a program whose loop is stuck.
func TestAliveNamesStuckLoop(t *testing.T) {
	l := &blockLauncher{fakeLauncher: fakeLauncher{obeyStop: true}, blockFor: "stuck", release: make(chan struct{})}
	h := newHarness(t, func(c *Config) { c.Launcher = l; c.StuckAfter = time.Millisecond })
	l.clock = h.clock
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(l.release) }) })
	h.apply(prog("stuck"), prog("fine"))
	h.waitState("fine", StateRunning)
	testenv.Eventually(t, "the stuck loop named", func() bool {
		err := h.sup.Alive(h.ctx)
		return err != nil && strings.Contains(err.Error(), "stuck") && !strings.Contains(err.Error(), "fine")
	})
	// An idle program is never stuck, however long it waits.
	h.clock.Advance(time.Hour)
	if err := h.sup.Alive(h.ctx); err == nil || strings.Contains(err.Error(), "fine") {
		t.Errorf("Alive = %v, want only the stuck loop", err)
	}
	// Unstuck, every loop idle again: Alive is fine, and it reads one
	// counter rather than every program's.
	release.Do(func() { close(l.release) })
	testenv.Eventually(t, "no loop busy", func() bool { return h.sup.busyLoops.Load() == 0 })
	if err := h.sup.Alive(h.ctx); err != nil {
		t.Errorf("Alive = %v once the loop is released", err)
	}
}

// TestOOMCountersTakeNoWorkSlot: a loop notes its cgroup's OOM counter
// without waiting for a work slot. In an OOM storm the slots are queued for
// seconds, and a loop that queued for its counter queued again, at the
// back, for the death that followed: restarts came out of the order of the
// deaths.
func TestOOMCountersTakeNoWorkSlot(t *testing.T) {
	l := &blockLauncher{fakeLauncher: fakeLauncher{obeyStop: true}, blockFor: "stuck", release: make(chan struct{})}
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Launcher = l; c.Parallel = 1; c.StuckAfter = time.Millisecond; c.Cgroups = cg })
	l.clock = h.clock
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(l.release) }) })
	max := int64(64 << 20)
	withCgroup := func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }
	h.apply(prog("fine", withCgroup))
	h.waitState("fine", StateRunning)
	// stuck's start holds the only work slot.
	h.apply(prog("fine", withCgroup), prog("stuck"))
	testenv.Eventually(t, "the stuck loop holding the slot", func() bool {
		err := h.sup.Alive(h.ctx)
		return err != nil && strings.Contains(err.Error(), "stuck")
	})
	g := cg.group("fine")
	g.event()
	g.waitTaken(t)
	time.Sleep(20 * time.Millisecond) // 20 times StuckAfter
	if err := h.sup.Alive(h.ctx); err == nil || strings.Contains(err.Error(), "fine") {
		t.Errorf("Alive = %v: fine's loop is waiting for a work slot to note its OOM counter", err)
	}
}

type blockLauncher struct {
	fakeLauncher
	blockFor string
	release  chan struct{}
}

func (l *blockLauncher) Start(cmd restart.Command) (Process, error) {
	if cmd.Name == l.blockFor {
		<-l.release
		return nil, errors.New("released")
	}
	return l.fakeLauncher.Start(cmd)
}

// A program run as another user does not inherit respawnd's HOME, USER,
// LOGNAME or SHELL (the launcher sets the user's own); its env still wins.
func TestUserProgramsDropDaemonIdentityEnv(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Env = []string{"PATH=/bin", "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash", "LANG=C"}
	})
	h.apply(prog("p", func(p *config.Program) {
		p.User = "nobody"
		p.Env = map[string]string{"SHELL": "/bin/sh"}
	}))
	h.waitStarts(1)
	env := h.launcher.last().cmd.Env
	for _, kv := range []string{"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash"} {
		if slices.Contains(env, kv) {
			t.Errorf("env of a nobody program has respawnd's %s: %v", kv, env)
		}
	}
	for _, kv := range []string{"PATH=/bin", "LANG=C", "SHELL=/bin/sh"} {
		if !slices.Contains(env, kv) {
			t.Errorf("env lacks %s: %v", kv, env)
		}
	}
}

// An exit reports the program's own peak memory: its cgroup's peak over the
// instance's life (reset before each start), or, for an OOM kill without
// one, the victim's resident set from the kernel's report; never a figure
// of respawnd's own.
func TestExitPeakMemory(t *testing.T) {
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Cgroups = cg; c.KernelLog = true })
	h.apply(prog("p", alwaysAtOnce))
	h.waitState("p", StateRunning)
	g := cg.group("p")
	g.mu.Lock()
	g.peak, g.resets = 3<<20, 0
	g.mu.Unlock()
	h.launcher.last().die(restart.ExitStatus{Code: 1})
	testenv.Eventually(t, "exit", func() bool { return len(h.rec.exitList()) == 1 })
	if e := h.rec.exitList()[0]; e.PeakMemory != 3<<20 || e.PeakMemorySource != PeakFromCgroup {
		t.Errorf("peak %d from %q, want the cgroup's 3 MiB", e.PeakMemory, e.PeakMemorySource)
	}
	h.waitStarts(2)
	g.mu.Lock()
	resets := g.resets
	g.peak = 0
	g.mu.Unlock()
	if resets != 1 {
		t.Errorf("peak reset %d times before the restart, want 1", resets)
	}

	st := h.waitState("p", StateRunning)
	anon := int64(5 << 20)
	g.oom() // the kernel raises the counter, kills, then reports
	h.launcher.last().die(sigkill)
	h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID, AnonRSSBytes: &anon})
	testenv.Eventually(t, "the report attached to the exit", func() bool {
		e := h.status("p").LastExit
		return e != nil && e.PID == st.PID && e.OOM != nil
	})
	if e := h.status("p").LastExit; e.PeakMemory != anon || e.PeakMemorySource != PeakFromOOMReport {
		t.Errorf("peak %d from %q, want the report's %d", e.PeakMemory, e.PeakMemorySource, anon)
	}
}

// A kernel report that comes before its process's exit is noted without a
// work slot (in an OOM storm most do, and a loop that queued for a slot to
// note it would queue again, at the back, for the death); the exit that
// follows is still an OOM kill.
func TestEarlyOOMReportTakesNoWorkSlot(t *testing.T) {
	l := &blockLauncher{fakeLauncher: fakeLauncher{obeyStop: true}, blockFor: "stuck", release: make(chan struct{})}
	h := newHarness(t, func(c *Config) { c.Launcher = l; c.Parallel = 1; c.StuckAfter = time.Millisecond; c.KernelLog = true })
	l.clock = h.clock
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(l.release) }) })
	h.apply(prog("fine", alwaysAtOnce))
	h.waitState("fine", StateRunning)
	fine := l.last()
	h.apply(prog("fine", alwaysAtOnce), prog("stuck"))
	testenv.Eventually(t, "the stuck loop holding the slot", func() bool {
		err := h.sup.Alive(h.ctx)
		return err != nil && strings.Contains(err.Error(), "stuck")
	})
	h.sup.OOMKill(h.ctx, oom.Kill{PID: fine.pid, Comm: "fine"})
	h.routed()
	time.Sleep(20 * time.Millisecond) // 20 times StuckAfter
	if err := h.sup.Alive(h.ctx); err == nil || strings.Contains(err.Error(), "fine") {
		t.Errorf("Alive = %v: fine's loop is waiting for a work slot to note an OOM report", err)
	}
	release.Do(func() { close(l.release) })
	fine.die(sigkill)
	var got Exit
	testenv.Eventually(t, "fine's exit settled", func() bool {
		i := slices.IndexFunc(h.rec.exitList(), func(e Exit) bool { return e.Program == "fine" })
		if i >= 0 {
			got = h.rec.exitList()[i]
		}
		return i >= 0
	})
	if got.Reason != ReasonOOMKill {
		t.Errorf("exit %v, want oom_kill", got.Describe())
	}
}

// Deaths waiting for a work slot are handled, and their programs
// restarted, in the order they died, not the order their loops queued.
func TestDeathsTakeSlotsInDeathOrder(t *testing.T) {
	l := &blockLauncher{fakeLauncher: fakeLauncher{obeyStop: true}, blockFor: "stuck", release: make(chan struct{})}
	h := newHarness(t, func(c *Config) { c.Launcher = l; c.Parallel = 1 })
	l.clock = h.clock
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(l.release) }) })
	h.apply(prog("x", alwaysAtOnce), prog("y", alwaysAtOnce))
	h.waitState("x", StateRunning)
	h.waitState("y", StateRunning)
	procs := map[string]*fakeProc{}
	l.mu.Lock()
	for _, p := range l.procs {
		procs[p.cmd.Name] = p
	}
	l.mu.Unlock()
	h.apply(prog("x", alwaysAtOnce), prog("y", alwaysAtOnce), prog("stuck"))
	testenv.Eventually(t, "the stuck loop holding the slot", func() bool {
		h.sup.work.mu.Lock()
		defer h.sup.work.mu.Unlock()
		return h.sup.work.free == 0
	})
	t0 := h.clock.Now()
	queued := func(n int) func() bool {
		return func() bool {
			h.sup.work.mu.Lock()
			defer h.sup.work.mu.Unlock()
			return len(h.sup.work.waiters) == n
		}
	}
	procs["x"].dieAt(sigkill, t0)
	testenv.Eventually(t, "x's death queued", queued(1))
	procs["y"].dieAt(sigkill, t0.Add(-time.Millisecond)) // died first, queued last
	testenv.Eventually(t, "y's death queued", queued(2))
	release.Do(func() { close(l.release) })
	testenv.Eventually(t, "both restarted", func() bool { return l.started() == 4 })
	l.mu.Lock()
	order := []string{l.procs[2].cmd.Name, l.procs[3].cmd.Name}
	l.mu.Unlock()
	if order[0] != "y" || order[1] != "x" {
		t.Errorf("restarted %v, want y (died first) then x", order)
	}
}

// The kernel's report of a main process's OOM kill that comes after its
// exit was settled without it (the attribution window closed first), with
// the cgroup's counter risen late too, is late news of that death: not a
// worker's kill in the program's cgroup.
func TestLateReportOfTheMainProcessIsNotAWorker(t *testing.T) {
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Cgroups = cg; c.KernelLog = true; c.AttributionWindow = time.Second })
	max := int64(64 << 20)
	h.apply(prog("p", alwaysAtOnce, func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
	st := h.waitState("p", StateRunning)
	g := cg.group("p")
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	testenv.Eventually(t, "the exit settled when its window closed", func() bool {
		h.clock.Advance(500 * time.Millisecond)
		return len(h.rec.exitList()) == 1
	})
	// The kernel counts the kill after it sends SIGKILL: the counter can
	// rise after the exit was reaped and read, unseen by its watch.
	g.mu.Lock()
	g.ooms++
	g.mu.Unlock()
	h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID, Comm: "p", TaskMemcg: g.path})
	h.routed()
	h.sync()
	if n := h.rec.killCount("p"); n != 0 {
		t.Errorf("oom kills counted %d, want 0: the report is of the exited main process", n)
	}
	for _, ev := range h.sup.Events() {
		if ev.Worker {
			t.Errorf("the late report was counted as a worker's kill: %+v", ev)
		}
	}
}
