package supervisor

import (
	"context"
	"log/slog"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfRequested()
	restart.RunShimIfRequested()
	goleak.VerifyTestMain(m)
}

type harness struct {
	t        *testing.T
	clock    *fakeClock
	launcher *fakeLauncher
	rec      *fakeRecorder
	cgroups  *fakeCgroups
	sup      *Supervisor
	ctx      context.Context
	stop     func()
	markers  int // reports sent by routed
}

func newHarness(t *testing.T, mod ...func(*Config)) *harness {
	t.Helper()
	clock := newFakeClock()
	h := &harness{t: t, clock: clock, launcher: &fakeLauncher{clock: clock, obeyStop: true}, rec: &fakeRecorder{}, cgroups: &fakeCgroups{}}
	cfg := Config{
		Launcher: h.launcher,
		Recorder: h.rec,
		Clock:    clock,
		Limiter:  restart.NewLimiter(1000, 1000),
	}
	for _, m := range mod {
		m(&cfg)
	}
	checks := &checkErrors{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(&statusCheck{h: h, errs: checks})
	}
	h.sup = New(cfg)
	t.Cleanup(func() { // after h.stop, which is registered later
		for _, e := range checks.list() {
			t.Error(e)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.sup.Run(ctx)
	}()
	h.stop = func() {
		cancel()
		// Stops escalate on the fake clock; keep it moving until Run returns.
		deadline := time.Now().Add(30 * time.Second)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				if time.Now().After(deadline) {
					t.Errorf("the supervisor did not stop within 30s of its cancellation")
					return
				}
				clock.Advance(time.Second)
			}
		}
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) apply(ps ...config.Program) {
	h.t.Helper()
	cfg := &config.Config{Limits: config.DefaultLimits(), Programs: ps}
	if err := h.sup.Apply(h.ctx, cfg); err != nil {
		h.t.Fatalf("apply: %v", err)
	}
}

func (h *harness) status(name string) Status {
	for _, s := range h.sup.Snapshot() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func (h *harness) waitState(name string, want State) Status {
	h.t.Helper()
	var st Status
	testenv.Eventually(h.t, name+" "+want.String(), func() bool {
		st = h.status(name)
		return st.State == want
	})
	return st
}

// sync returns once every program loop has handled what it had taken or
// been sent before: Alive's ping waits in each loop's mailbox behind the
// earlier messages and is answered between two events, never during one.
// A timer tick or an exit status not yet taken by a loop may still be
// handled after it (see waitReceived, fakeGroup.waitTaken).
func (h *harness) sync() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := h.sup.barrier(ctx); err != nil {
		h.t.Fatalf("supervisor not alive: %v", err)
	}
}

// routed returns once the supervisor has handed every kernel report sent
// before to the loop it is for: reports are routed one by one, in order,
// and this one, of a process that belongs to no program, shows as a host
// event once routed. Follow with sync to know the reports were handled.
func (h *harness) routed() {
	h.t.Helper()
	h.markers++
	pid := 900_000 + h.markers
	h.sup.OOMKill(h.ctx, oom.Kill{PID: pid, Comm: "marker", TaskMemcg: "/marker"})
	testenv.Eventually(h.t, "the marker report routed", func() bool {
		return slices.ContainsFunc(h.sup.Events(), func(e Event) bool { return e.PID == pid && e.Program == "" })
	})
}

// waitStarts waits until the launcher has started n processes and the loop
// that started the last one has published it (a loop publishes an instance
// right after its start, in the same handler).
func (h *harness) waitStarts(n int) {
	h.t.Helper()
	testenv.Eventually(h.t, "start count", func() bool { return h.launcher.started() >= n })
	h.sync()
}

// alwaysAtOnce makes every restart immediate, for tests about something else.
func alwaysAtOnce(p *config.Program) {
	p.Restart.ResetAfter = time.Nanosecond
	p.Restart.Limit.Burst = 1000
}

var sigkill = restart.ExitStatus{Signaled: true, Signal: syscall.SIGKILL}

func TestRestartAtOnceThenBackoff(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("api"))
	h.waitState("api", StateRunning)

	h.launcher.last().die(sigkill)
	// The first restart happens at once: no clock advance needed.
	h.waitStarts(2)
	h.waitState("api", StateRunning)

	// Crashes before reset_after back off: 100ms, 200ms, 400ms.
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		h.launcher.last().die(sigkill)
		st := h.waitState("api", StateBackoff)
		if got := st.NextStart.Sub(h.clock.Now()); got != want {
			t.Fatalf("crash %d: delay %v, want %v", i+2, got, want)
		}
		if n := h.launcher.started(); n != i+2 {
			t.Fatalf("started %d processes during backoff, want %d", n, i+2)
		}
		h.clock.Advance(want)
		h.waitStarts(i + 3)
		h.waitState("api", StateRunning)
	}
	if got := h.status("api").Restarts; got != 4 {
		t.Errorf("restarts = %d, want 4", got)
	}
}

func TestResetAfterRestartsAtOnce(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("api"))
	h.waitState("api", StateRunning)
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	h.waitState("api", StateRunning)
	// The second instance runs past reset_after: its crash counts as a first one.
	h.clock.Advance(config.DefaultResetAfter + time.Second)
	h.launcher.last().die(sigkill)
	h.waitStarts(3)
}

func TestLimitGiveUpReachesFatal(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("api", func(p *config.Program) {
		p.Restart.Limit = config.Limit{Burst: 3, Interval: time.Minute, Action: config.ActionGiveUp}
	}))
	for i := 1; ; i++ {
		testenv.Eventually(t, "a process", func() bool { return h.launcher.started() >= i })
		h.waitState("api", StateRunning)
		h.launcher.last().die(restart.ExitStatus{Code: 1})
		testenv.Eventually(t, "backoff or fatal", func() bool {
			s := h.status("api").State
			return s == StateBackoff || s == StateFatal || (s == StateRunning && h.launcher.started() > i)
		})
		if h.status("api").State == StateFatal {
			break
		}
		if i > 10 {
			t.Fatal("limit never tripped")
		}
		for _, d := range h.clock.pendingTimers() {
			h.clock.Advance(d)
		}
	}
	if got := h.launcher.started(); got != 3 {
		t.Errorf("started %d times, want 3 (burst)", got)
	}
	// Once the loop is done with the exit that gave up, nothing is armed
	// that could start it again, however much time passes.
	h.sync()
	if p := h.clock.pendingTimers(); len(p) != 0 {
		t.Errorf("timers armed in fatal: %v", p)
	}
	waitReceived(t, h.clock.fire(time.Hour))
	h.sync()
	if got := h.launcher.started(); got != 3 {
		t.Errorf("a fatal program was started again (%d starts)", got)
	}
	if s := h.status("api"); s.State != StateFatal || !s.NextStart.IsZero() {
		t.Errorf("status %+v an hour after giving up, want fatal with no next start", s)
	}
	// An operator start brings it back.
	if err := h.sup.Control(h.ctx, "api", ActionStart, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("api", StateRunning)
}

func TestLimitBackoffKeepsGoingAtMax(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("api", func(p *config.Program) {
		p.Restart.Backoff = config.Backoff{Initial: time.Second, Max: 5 * time.Second, Multiplier: 10}
		p.Restart.Limit = config.Limit{Burst: 2, Interval: time.Hour, Action: config.ActionBackoff}
	}))
	var delays []time.Duration
	for i := 1; i <= 6; i++ {
		testenv.Eventually(t, "a process", func() bool { return h.launcher.started() >= i })
		h.waitState("api", StateRunning)
		h.launcher.last().die(restart.ExitStatus{Code: 1})
		testenv.Eventually(t, "next", func() bool {
			return h.status("api").State == StateBackoff || h.launcher.started() > i
		})
		if st := h.status("api"); st.State == StateBackoff {
			d := st.NextStart.Sub(h.clock.Now())
			delays = append(delays, d)
			h.clock.Advance(d)
		} else {
			delays = append(delays, 0)
		}
	}
	want := []time.Duration{0, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(delays, want) {
		t.Errorf("delays %v, want %v", delays, want)
	}
	if s := h.status("api").State; s == StateFatal {
		t.Error("action backoff must never reach fatal")
	}
}

func TestPolicies(t *testing.T) {
	// Without a cgroup, a kernel log or the host's counter, nothing tells
	// a SIGKILL apart from an OOM kill: unknown, and final at once.
	for _, tc := range []struct {
		policy  config.Policy
		exit    restart.ExitStatus
		reason  Reason
		restart bool
	}{
		{config.PolicyNever, restart.ExitStatus{Code: 1}, ReasonExitError, false},
		{config.PolicyOnFailure, restart.ExitStatus{Code: 0}, ReasonExitSuccess, false},
		{config.PolicyOnFailure, restart.ExitStatus{Code: 3}, ReasonExitError, true},
		{config.PolicyOnFailure, sigkill, ReasonUnknown, true},
		{config.PolicyAlways, restart.ExitStatus{Code: 0}, ReasonExitSuccess, true},
		{config.PolicyOnOOM, restart.ExitStatus{Code: 3}, ReasonExitError, false},
		{config.PolicyOnOOM, sigkill, ReasonUnknown, false},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			h := newHarness(t)
			h.apply(prog("p", func(p *config.Program) { p.Restart.Policy = tc.policy }))
			st := h.waitState("p", StateRunning)
			h.launcher.last().die(tc.exit)
			if tc.restart {
				h.waitStarts(2)
			} else {
				h.waitState("p", StateExited)
			}
			testenv.Eventually(t, "the exit", func() bool { return len(h.rec.exitList()) == 1 })
			if e := h.rec.exitList()[0]; e.Reason != tc.reason || e.PID != st.PID || e.Code != tc.exit.Code || e.Signal != tc.exit.Signal {
				t.Errorf("exit %s of pid %d, want %v of pid %d", e.Describe(), e.PID, tc.reason, st.PID)
			}
			if tc.restart {
				return
			}
			h.sync()
			if n := h.launcher.started(); n != 1 {
				t.Errorf("started %d times, want 1", n)
			}
		})
	}
}

func TestOnOOMRestartsAfterOOMKill(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Cgroups = &fakeCgroups{} })
	h.apply(prog("p", func(p *config.Program) {
		p.Restart.Policy = config.PolicyOnOOM
		max := int64(64 << 20)
		p.Memory = &config.Memory{Max: &max}
	}))
	h.waitState("p", StateRunning)
	g := h.sup.cfg.Cgroups.(*fakeCgroups).groups["p"]
	g.oom()
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	exits := h.rec.exitList()
	if len(exits) != 1 || exits[0].Reason != ReasonOOMKill {
		t.Fatalf("exits = %+v, want one oom_kill", exits)
	}
}

func TestAttributionByCgroupCounter(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Cgroups = &fakeCgroups{} })
	max := int64(64 << 20)
	h.apply(prog("p", func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
	h.waitState("p", StateRunning)
	g := h.sup.cfg.Cgroups.(*fakeCgroups).groups["p"]

	g.oom() // the kernel raises the counter before it sends SIGKILL
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	h.waitState("p", StateRunning)
	h.launcher.last().die(sigkill) // a plain kill -9: the counter did not move
	testenv.Eventually(t, "two exits", func() bool { return len(h.rec.exitList()) == 2 })
	exits := h.rec.exitList()
	if exits[0].Reason != ReasonOOMKill || exits[1].Reason != ReasonSignal || exits[1].Signal != syscall.SIGKILL {
		t.Fatalf("reasons %v %v, want oom_kill then signal SIGKILL", exits[0].Describe(), exits[1].Describe())
	}
	if n := h.rec.killCount("p"); n != 1 {
		t.Errorf("oom kills recorded = %d, want 1", n)
	}
}

func TestAttributionByKernelLog(t *testing.T) {
	host := uint64(10)
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	readHost := func() (uint64, error) { <-mu; defer func() { mu <- struct{}{} }(); return host, nil }
	bump := func() { <-mu; host++; mu <- struct{}{} }
	h := newHarness(t, func(c *Config) {
		c.KernelLog = true
		c.HostOOMKills = readHost
		c.AttributionWindow = 2 * time.Second
	})
	h.apply(prog("p", alwaysAtOnce))
	st := h.waitState("p", StateRunning)

	// An OOM kill: vmstat rose, the record comes after the exit status.
	bump()
	h.launcher.last().die(sigkill)
	h.waitStarts(2) // restarted at once, before attribution is final
	if n := len(h.rec.exitList()); n != 0 {
		t.Fatalf("exit recorded before evidence: %d", n)
	}
	h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID, Comm: "p"})
	testenv.Eventually(t, "oom exit", func() bool { return len(h.rec.exitList()) == 1 })
	if r := h.rec.exitList()[0].Reason; r != ReasonOOMKill {
		t.Fatalf("reason %v, want oom_kill", r)
	}

	// A kill -9 while another process was OOM-killed: no record for us, so
	// the window closes as unknown (it may have been ours, its report lost).
	st = h.waitState("p", StateRunning)
	bump()
	h.launcher.last().die(sigkill)
	// Move the clock in steps until the window closes; the loop sees the
	// death at its own pace.
	testenv.Eventually(t, "second exit", func() bool {
		h.clock.Advance(100 * time.Millisecond)
		return len(h.rec.exitList()) == 2
	})
	if e := h.rec.exitList()[1]; e.Reason != ReasonUnknown || e.PID != st.PID {
		t.Fatalf("second exit %v pid %d, want unknown of %d", e.Describe(), e.PID, st.PID)
	}

	// No OOM anywhere since start: a plain signal, final at once (the
	// clock does not move, so no window could close).
	h.waitStarts(3)
	st = h.waitState("p", StateRunning)
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "third exit", func() bool { return len(h.rec.exitList()) == 3 })
	if e := h.rec.exitList()[2]; e.Reason != ReasonSignal || e.Signal != syscall.SIGKILL || e.PID != st.PID || !e.Settled.Equal(e.Time) {
		t.Fatalf("third exit %v of pid %d settled %v after the death, want signal SIGKILL of %d, final at once", e.Describe(), e.PID, e.Settled.Sub(e.Time), st.PID)
	}

	// A report that beats the exit status.
	st = h.waitState("p", StateRunning)
	bump()
	// Whichever the loop sees first, the report or the exit status, the
	// reason is the same.
	h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID})
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "fourth exit", func() bool { return len(h.rec.exitList()) == 4 })
	if r := h.rec.exitList()[3].Reason; r != ReasonOOMKill {
		t.Errorf("early report: reason %v, want oom_kill", r)
	}
}

func TestWorkerAndHostOOMKills(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Cgroups = &fakeCgroups{}; c.KernelLog = true })
	max := int64(64 << 20)
	h.apply(prog("p", func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
	st := h.waitState("p", StateRunning)
	// The kernel raises the cgroup's counter before it prints the report.
	h.sup.cfg.Cgroups.(*fakeCgroups).groups["p"].oom()
	h.sup.OOMKill(h.ctx, oom.Kill{PID: 99999, Comm: "worker", TaskMemcg: "/respawnd/p"})
	h.sup.OOMKill(h.ctx, oom.Kill{PID: 88888, Comm: "stranger", TaskMemcg: "/other"})
	testenv.Eventually(t, "two events", func() bool { return len(h.sup.Events()) == 2 })
	for _, ev := range h.sup.Events() {
		ok := ev.PID == 99999 && ev.Program == "p" && ev.Worker ||
			ev.PID == 88888 && ev.Program == "" && ev.Comm == "stranger" && !ev.Worker
		if !ok || ev.Reason != ReasonOOMKill {
			t.Errorf("event %+v", ev)
		}
	}
	if h.rec.killCount("p") != 1 || h.rec.killCount("") != 1 {
		t.Errorf("kills p=%d host=%d, want 1 and 1", h.rec.killCount("p"), h.rec.killCount(""))
	}
	if got := h.status("p"); got.PID != st.PID || got.State != StateRunning {
		t.Errorf("a worker's OOM kill touched the main process: %+v", got)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	h := newHarness(t)
	h.launcher.obeyStop = false
	h.apply(prog("p", func(p *config.Program) { p.Stop.Timeout = 3 * time.Second }))
	h.waitState("p", StateRunning)
	proc := h.launcher.last()
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopping)
	h.clock.Advance(3 * time.Second)
	h.waitState("p", StateStopped)
	h.sync()
	if got := proc.gotSignals(); len(got) < 3 || !slices.Equal(got[:3], []syscall.Signal{syscall.SIGTERM, syscall.SIGCONT, syscall.SIGKILL}) {
		t.Errorf("signals %v, want SIGTERM, SIGCONT (for a stopped process) then SIGKILL", got)
	}
	if n := h.launcher.started(); n != 1 {
		t.Errorf("a stopped program restarted (%d starts)", n)
	}
}

func TestReloadKeepsUnchanged(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("a"), prog("b"))
	a := h.waitState("a", StateRunning)
	b := h.waitState("b", StateRunning)

	changed := prog("b", func(p *config.Program) { p.Command = []string{"/bin/b", "--new"} })
	h.apply(prog("a"), changed, prog("c"))
	h.waitState("c", StateRunning)
	testenv.Eventually(t, "b restarted", func() bool {
		s := h.status("b")
		return s.State == StateRunning && s.PID != b.PID
	})
	if s := h.status("a"); s.PID != a.PID {
		t.Errorf("unchanged program restarted: pid %d -> %d", a.PID, s.PID)
	}
	nb := h.status("b")
	for _, p := range h.launcher.procs {
		if p.pid == nb.PID && !slices.Contains(p.cmd.Argv, "--new") {
			t.Errorf("b runs %v, not its new definition", p.cmd.Argv)
		}
	}

	h.apply(prog("a"))
	testenv.Eventually(t, "b and c gone", func() bool { return len(h.sup.Snapshot()) == 1 })
}

func TestStartFailureBacksOff(t *testing.T) {
	h := newHarness(t)
	h.launcher.fail = &restart.StartError{Program: "p", Op: "lookup command", Err: errTest}
	h.apply(prog("p"))
	h.waitState("p", StateBackoff)
	testenv.Eventually(t, "exit", func() bool { return len(h.rec.exitList()) >= 1 })
	e := h.rec.exitList()[0]
	if e.Reason != ReasonStartFailure || e.Err == "" {
		t.Fatalf("exit %+v, want start_failure with an error", e)
	}
	if st := h.status("p"); st.Error == "" {
		t.Error("status carries no error")
	}
	h.launcher.mu.Lock()
	h.launcher.fail = nil
	h.launcher.mu.Unlock()
	for _, d := range h.clock.pendingTimers() {
		h.clock.Advance(d)
	}
	h.waitState("p", StateRunning)
}

func TestGlobalLimiterQueuesInOrder(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limiter = restart.NewLimiter(1, 2) })
	names := []string{"a", "b", "c", "d"}
	var ps []config.Program
	for _, n := range names {
		ps = append(ps, prog(n))
	}
	h.apply(ps...)
	// First starts take no token: all four run at once.
	for _, n := range names {
		h.waitState(n, StateRunning)
	}
	h.waitStarts(4)
	// Four deaths against a bucket of two: two restart, two wait in order.
	h.launcher.mu.Lock()
	first := slices.Clone(h.launcher.procs[:4])
	h.launcher.mu.Unlock()
	for _, p := range first {
		p.die(sigkill)
	}
	testenv.Eventually(t, "two restarted, two queued", func() bool {
		run, wait := 0, 0
		for _, s := range h.sup.Snapshot() {
			switch s.State {
			case StateRunning:
				run++
			case StateBackoff:
				wait++
			}
		}
		return run == 2 && wait == 2 && h.launcher.started() == 6
	})
	var delays []time.Duration
	for _, s := range h.sup.Snapshot() {
		if s.State == StateBackoff {
			delays = append(delays, s.NextStart.Sub(h.clock.Now()))
		}
	}
	slices.Sort(delays)
	if !slices.Equal(delays, []time.Duration{time.Second, 2 * time.Second}) {
		t.Errorf("queued delays %v, want 1s and 2s", delays)
	}
	h.clock.Advance(2 * time.Second)
	testenv.Eventually(t, "all running", func() bool {
		for _, s := range h.sup.Snapshot() {
			if s.State != StateRunning {
				return false
			}
		}
		return h.launcher.started() == 8
	})
}

func TestShutdownStopsEverything(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("a"), prog("b"))
	h.waitState("a", StateRunning)
	h.waitState("b", StateRunning)
	h.stop()
	for _, p := range h.launcher.procs {
		if sigs := p.gotSignals(); len(sigs) == 0 || sigs[0] != syscall.SIGTERM {
			t.Errorf("pid %d got %v, want SIGTERM first", p.pid, sigs)
		}
	}
}

func TestWorkerOOMFromCgroupCounters(t *testing.T) {
	// No kernel log: the cgroup watcher alone tells a worker's OOM kill.
	h := newHarness(t, func(c *Config) { c.Cgroups = &fakeCgroups{} })
	max := int64(64 << 20)
	h.apply(prog("p", alwaysAtOnce, func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
	st := h.waitState("p", StateRunning)
	g := h.sup.cfg.Cgroups.(*fakeCgroups).groups["p"]

	g.event() // a worker dies; the main process lives on
	testenv.Eventually(t, "worker oom counted", func() bool {
		h.clock.Advance(100 * time.Millisecond)
		return h.rec.killCount("p") == 1
	})
	if s := h.status("p"); s.PID != st.PID || len(h.rec.exitList()) != 0 {
		t.Fatalf("a worker's OOM kill touched the main process: %+v", s)
	}

	// The main process's own OOM kill: the watcher sees the rise too, but
	// the death explains it, so it is counted once, as the exit.
	g.event()
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "oom exit", func() bool { return len(h.rec.exitList()) == 1 })
	// Every piece of evidence is handled (the counters, whichever came
	// first), and so is every check for workers' kills that they armed.
	g.waitTaken(t)
	h.sync()
	waitReceived(t, h.clock.fire(time.Hour))
	h.sync()
	if e := h.rec.exitList()[0]; e.Reason != ReasonOOMKill {
		t.Errorf("exit %s, want oom_kill", e.Describe())
	}
	if n := h.rec.killCount("p"); n != 2 {
		t.Errorf("oom kills = %d, want 2 (one worker, one main)", n)
	}
}

func TestStatusShowsLastExitAfterImmediateRestart(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("p"))
	h.waitState("p", StateRunning)
	h.launcher.last().die(restart.ExitStatus{Code: 3})
	h.waitStarts(2)
	testenv.Eventually(t, "last exit published", func() bool {
		e := h.status("p").LastExit
		return e != nil && e.Reason == ReasonExitError && e.Code == 3
	})
}

func TestEventsNewestFirstByTime(t *testing.T) {
	r := newEventRing(4)
	t0 := time.Unix(1000, 0)
	// Filed out of order, as an exit waiting for the kernel's report is.
	for _, d := range []time.Duration{2, 1, 4, 3, 5} {
		r.add(Event{Time: t0.Add(d * time.Second), PID: int(d)})
	}
	var pids []int
	for _, e := range r.list() {
		pids = append(pids, e.PID)
	}
	if !slices.Equal(pids, []int{5, 4, 3, 1}) {
		t.Errorf("events %v, want the 4 kept newest first by time: [5 4 3 1]", pids)
	}
}

// TestBucketTokensGoInDeathOrder: a death handled after a later one (its
// loop was busy) still gets the bucket's next token before it; the later
// death takes the token after. The bucket's rate is kept.
func TestBucketTokensGoInDeathOrder(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limiter = restart.NewLimiter(1, 1) })
	h.apply(prog("a", alwaysAtOnce), prog("x", alwaysAtOnce), prog("y", alwaysAtOnce))
	for _, n := range []string{"a", "x", "y"} {
		h.waitState(n, StateRunning)
	}
	h.waitStarts(3)
	t0 := h.clock.Now()
	exit1 := restart.ExitStatus{Code: 1}
	procOf(h, "a").die(exit1) // the burst's token: back at once
	h.waitStarts(4)
	x, y := procOf(h, "x"), procOf(h, "y")
	x.dieAt(exit1, t0)
	h.waitState("x", StateBackoff)            // the next token, a second from now
	y.dieAt(exit1, t0.Add(-time.Millisecond)) // died first, handled last
	h.waitState("y", StateBackoff)
	next := func(name string) time.Duration {
		for _, s := range h.sup.Snapshot() {
			if s.Name == name {
				return s.NextStart.Sub(h.clock.Now())
			}
		}
		t.Fatalf("no program %s", name)
		return 0
	}
	if dx, dy := next("x"), next("y"); dx != time.Second || dy != 2*time.Second {
		t.Fatalf("reserved: x in %v, y in %v; want 1s and 2s", dx, dy)
	}
	h.clock.Advance(time.Second)
	h.waitState("y", StateRunning)
	h.sync()
	if st := h.sup.Snapshot(); st[slices.IndexFunc(st, func(s Status) bool { return s.Name == "x" })].State != StateBackoff {
		t.Fatal("x started on the token that y's earlier death was owed")
	}
	if d := next("x"); d != time.Second {
		t.Fatalf("x waits %v for y's token, want 1s", d)
	}
	if n := h.launcher.started(); n != 5 {
		t.Fatalf("%d starts, want 5: one token a second", n)
	}
	h.clock.Advance(time.Second)
	h.waitState("x", StateRunning)
	h.waitStarts(6)
}
