package supervisor

import (
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// fakeProber records the probe watches the supervisor asks for.
type fakeProber struct {
	mu      sync.Mutex
	watches []*fakeProbe
}

type fakeProbe struct {
	program string
	base    restart.Command
	notify  func(ProbeEvent)
	stopped bool
}

func (f *fakeProber) Probe(program string, _ config.Health, base restart.Command, notify func(ProbeEvent)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeProbe{program: program, base: base, notify: notify}
	f.watches = append(f.watches, w)
	return func() { f.mu.Lock(); w.stopped = true; f.mu.Unlock() }
}

func (f *fakeProber) last(t *testing.T) *fakeProbe {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.watches) == 0 {
		t.Fatal("no probe watch")
	}
	return f.watches[len(f.watches)-1]
}

func (f *fakeProber) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.watches {
		if !w.stopped {
			n++
		}
	}
	return n
}

// fakeNotifier hands the test each program's deliver func and who.
type fakeNotifier struct {
	mu      sync.Mutex
	deliver map[string]func(NotifyMessage)
	who     map[string]func() (int, string)
	closed  []string
}

func newFakeNotifier() *fakeNotifier {
	return &fakeNotifier{deliver: map[string]func(NotifyMessage){}, who: map[string]func() (int, string){}}
}

func (f *fakeNotifier) Open(program string, who func() (int, string), deliver func(NotifyMessage)) (string, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deliver[program], f.who[program] = deliver, who
	return "NOTIFY_SOCKET=@test/" + program, func() { f.mu.Lock(); f.closed = append(f.closed, program); f.mu.Unlock() }, nil
}

func (f *fakeNotifier) send(t *testing.T, program string, m NotifyMessage) {
	t.Helper()
	f.mu.Lock()
	d := f.deliver[program]
	f.mu.Unlock()
	if d == nil {
		t.Fatalf("%s has no notify socket", program)
	}
	d(m)
}

func probed(p *config.Program) {
	p.Health = &config.Health{TCP: &config.TCPProbe{Address: "127.0.0.1:1"}, Period: time.Second, Timeout: time.Second, Failures: 3}
}

func notifying(ready bool, watchdog time.Duration) func(*config.Program) {
	return func(p *config.Program) {
		p.Notify = &config.Notify{Ready: ready, StartTimeout: time.Minute, Watchdog: watchdog}
	}
}

func exitsWith(h *harness, r Reason) []Exit {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	var out []Exit
	for _, e := range h.rec.exits {
		if e.Reason == r {
			out = append(out, e)
		}
	}
	return out
}

func TestUnhealthyStopsGracefullyAndRestartsWithBackoff(t *testing.T) {
	pr := &fakeProber{}
	h := newHarness(t, func(c *Config) { c.Prober = pr })
	h.apply(prog("p", probed))
	running(h, "p")
	if st := h.status("p"); st.Ready {
		t.Fatalf("ready before any health check passed: %+v", st)
	}
	first := h.launcher.last()
	w := pr.last(t)
	if w.base.Argv[0] != "/bin/p" || w.base.Name != "p" {
		t.Errorf("probe base command = %+v, want the program's", w.base)
	}
	w.notify(ProbeEvent{})
	h.sync()
	if st := h.status("p"); !st.Ready {
		t.Fatalf("not ready after the first passing check: %+v", st)
	}

	w.notify(ProbeEvent{Unhealthy: true, Failures: 3, Reason: "dial tcp: connection refused"})
	h.waitStarts(2)
	if got := first.gotSignals(); len(got) == 0 || got[0] != syscall.SIGTERM {
		t.Errorf("unhealthy instance got %v, want its stop signal first", got)
	}
	ex := exitsWith(h, ReasonHealthCheck)
	if len(ex) != 1 || ex[0].Stopped || !strings.Contains(ex[0].Err, "refused") {
		t.Fatalf("health_check exits = %+v, want one, not marked an operator's stop, saying what failed", ex)
	}
	if !slices.ContainsFunc(h.sup.Events(), func(e Event) bool {
		return e.Kind == EventUnhealthy && strings.Contains(e.Error, "refused")
	}) {
		t.Errorf("no %s event naming the failure", EventUnhealthy)
	}
	running(h, "p")
	if pr.live() != 1 || pr.last(t) == w {
		t.Errorf("live probe watches = %d, want a fresh one for the new instance only", pr.live())
	}
	if st := h.status("p"); st.Ready {
		t.Errorf("the new instance is ready before its first check: %+v", st)
	}

	// The second failure in a row goes through the backoff: a crash loop
	// of hangs is throttled like any other.
	pr.last(t).notify(ProbeEvent{Unhealthy: true, Failures: 3})
	st := h.waitState("p", StateBackoff)
	if st.NextStart.IsZero() {
		t.Fatal("no backoff after the second health check failure")
	}
	h.clock.Advance(time.Minute)
	h.waitStarts(3)
}

func TestProbeNewsOfAnEarlierInstanceIsIgnored(t *testing.T) {
	pr := &fakeProber{}
	h := newHarness(t, func(c *Config) { c.Prober = pr })
	h.apply(prog("p", probed))
	running(h, "p")
	old := pr.last(t)
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	running(h, "p")
	if !old.stopped {
		t.Error("the dead instance's probes still run")
	}
	old.notify(ProbeEvent{Unhealthy: true, Failures: 3})
	h.sync()
	if got := h.launcher.last().gotSignals(); len(got) != 0 {
		t.Errorf("new instance got %v from the old instance's failed checks", got)
	}
}

func TestProbesStopWhileStopped(t *testing.T) {
	pr := &fakeProber{}
	h := newHarness(t, func(c *Config) { c.Prober = pr })
	h.apply(prog("p", probed))
	running(h, "p")
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopped)
	if n := pr.live(); n != 0 {
		t.Errorf("%d probe watches run on a stopped program", n)
	}
	if ex := exitsWith(h, ReasonHealthCheck); len(ex) != 0 {
		t.Errorf("an operator's stop was recorded as %+v", ex)
	}
}

func TestNotifyReadyAndWatchdog(t *testing.T) {
	nf := newFakeNotifier()
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Notifier = nf; c.Cgroups = cg })
	h.apply(prog("p", notifying(true, 10*time.Second)))
	h.waitStarts(1)
	h.sync()
	proc := h.launcher.last()
	if !slices.Contains(proc.cmd.Env, "NOTIFY_SOCKET=@test/p") || !slices.Contains(proc.cmd.Env, "WATCHDOG_USEC=10000000") {
		t.Fatalf("env = %v, want NOTIFY_SOCKET and WATCHDOG_USEC", proc.cmd.Env)
	}
	if st := h.status("p"); st.State != StateStarting || st.Ready {
		t.Fatalf("before READY=1: %+v, want starting, not ready", st)
	}
	nf.mu.Lock()
	who := nf.who["p"]
	nf.mu.Unlock()
	if pid, group := who(); pid != proc.pid || group != cg.group("p").path {
		t.Errorf("who = %d %q, want the instance %d in %q", pid, group, proc.pid, cg.group("p").path)
	}

	// Nothing counts the watchdog before READY=1.
	h.clock.Advance(30 * time.Second)
	h.sync()
	if got := proc.gotSignals(); len(got) != 0 {
		t.Fatalf("signalled %v while starting", got)
	}
	nf.send(t, "p", NotifyMessage{PID: proc.pid, Time: h.clock.Now(), Ready: true, HasStatus: true, Status: "serving"})
	st := h.waitState("p", StateRunning)
	h.sync()
	st = h.status("p")
	if !st.Ready || st.NotifyStatus != "serving" || st.WatchdogLastPing.IsZero() {
		t.Fatalf("after READY=1: %+v", st)
	}

	// Pings keep it alive past its watchdog period.
	for range 3 {
		h.clock.Advance(6 * time.Second)
		nf.send(t, "p", NotifyMessage{PID: proc.pid, Time: h.clock.Now(), Watchdog: true})
		h.sync()
	}
	if got := proc.gotSignals(); len(got) != 0 {
		t.Fatalf("signalled %v while pinging", got)
	}
	// Silence: SIGABRT, then the restart.
	fired := h.clock.fire(11 * time.Second)
	waitReceived(t, fired)
	h.waitStarts(2)
	if got := proc.gotSignals(); len(got) == 0 || got[0] != syscall.SIGABRT {
		t.Errorf("hung instance got %v, want SIGABRT first", got)
	}
	if ex := exitsWith(h, ReasonWatchdog); len(ex) != 1 {
		t.Errorf("watchdog exits = %+v, want one", ex)
	}
	if st := h.status("p"); st.State != StateStarting || st.Ready || st.NotifyStatus != "" {
		t.Errorf("new instance: %+v, want starting afresh", st)
	}
}

func TestNotifyStartTimeoutIsAStartFailure(t *testing.T) {
	nf := newFakeNotifier()
	h := newHarness(t, func(c *Config) { c.Notifier = nf })
	h.apply(prog("p", notifying(true, 0)))
	h.waitStarts(1)
	h.sync()
	proc := h.launcher.last()
	// EXTEND_TIMEOUT_USEC moves the deadline.
	nf.send(t, "p", NotifyMessage{PID: proc.pid, Time: h.clock.Now(), ExtendTimeout: 2 * time.Minute})
	h.sync()
	waitReceived(t, h.clock.fire(time.Minute+time.Second))
	h.sync()
	if got := proc.gotSignals(); len(got) != 0 {
		t.Fatalf("stopped at %v despite EXTEND_TIMEOUT_USEC", got)
	}
	h.clock.Advance(time.Minute)
	h.waitStarts(2)
	ex := exitsWith(h, ReasonStartFailure)
	if len(ex) != 1 || !strings.Contains(ex[0].Err, "READY=1") {
		t.Fatalf("start failures = %+v, want one about READY=1", ex)
	}
}

func TestNotifyWatchdogTrigger(t *testing.T) {
	nf := newFakeNotifier()
	h := newHarness(t, func(c *Config) { c.Notifier = nf })
	h.apply(prog("p", notifying(false, 0)))
	running(h, "p")
	proc := h.launcher.last()
	if st := h.status("p"); !st.Ready {
		t.Errorf("a program that does not wait for READY=1 is not ready: %+v", st)
	}
	nf.send(t, "p", NotifyMessage{PID: proc.pid, Time: h.clock.Now(), WatchdogTrigger: true})
	h.waitStarts(2)
	if got := proc.gotSignals(); len(got) == 0 || got[0] != syscall.SIGABRT {
		t.Errorf("got %v, want SIGABRT", got)
	}
	if ex := exitsWith(h, ReasonWatchdog); len(ex) != 1 {
		t.Errorf("watchdog exits = %+v, want one", ex)
	}
}

func TestNotifySocketClosedWithTheProgram(t *testing.T) {
	nf := newFakeNotifier()
	h := newHarness(t, func(c *Config) { c.Notifier = nf })
	h.apply(prog("p", notifying(false, time.Minute)))
	running(h, "p")
	h.apply(prog("q"))
	h.waitStarts(2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		nf.mu.Lock()
		closed := slices.Contains(nf.closed, "p")
		nf.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the removed program's socket is still open")
		}
		time.Sleep(time.Millisecond)
	}
}

// Probes stop the moment a stop begins, not when the instance is gone: a
// program slow to stop is not probed (nor restarted for it) meanwhile.
func TestProbesStopWhenTheStopBegins(t *testing.T) {
	pr := &fakeProber{}
	h := newHarness(t, func(c *Config) { c.Prober = pr })
	h.launcher.obeyStop = false
	h.apply(prog("p", probed))
	running(h, "p")
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopping)
	h.sync()
	if n := pr.live(); n != 0 {
		t.Errorf("%d probe watches run on a stopping program", n)
	}
}

// A program is ready only while it runs: not while it stops.
func TestNotReadyWhileStopping(t *testing.T) {
	h := newHarness(t)
	h.launcher.obeyStop = false
	h.apply(prog("p"))
	running(h, "p")
	if st := h.status("p"); !st.Ready {
		t.Fatalf("a running program without checks is not ready: %+v", st)
	}
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	if st := h.waitState("p", StateStopping); st.Ready {
		t.Errorf("ready while stopping: %+v", st)
	}
}

// A program whose restart policy is never stays down after a failed check.
func TestUnhealthyWithPolicyNeverStaysDown(t *testing.T) {
	pr := &fakeProber{}
	h := newHarness(t, func(c *Config) { c.Prober = pr })
	h.apply(prog("p", probed, func(p *config.Program) { p.Restart.Policy = config.PolicyNever }))
	running(h, "p")
	pr.last(t).notify(ProbeEvent{Unhealthy: true, Failures: 3})
	h.waitState("p", StateExited)
	h.sync()
	if n := h.launcher.started(); n != 1 {
		t.Errorf("started %d times, want once", n)
	}
	if ex := exitsWith(h, ReasonHealthCheck); len(ex) != 1 {
		t.Errorf("health_check exits = %+v, want one", ex)
	}
}

// An instance adopted from respawnd's earlier life counts as ready and
// keeps its watchdog (it has the same NOTIFY_SOCKET); one found by match
// may never have had a NOTIFY_SOCKET: its watchdog waits for its next
// start, rather than kill a program that cannot ping.
func TestAdoptedNotifyPrograms(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	mine := src.run(555, 42, "api")
	found := src.run(600, 20, "worker")
	nf := newFakeNotifier()
	api := prog("api", notifying(true, 10*time.Second))
	h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, ConfigHash: api.Hash(), Generation: 7, Child: true}}),
		func(c *Config) { c.Notifier = nf; c.Clock = clock })
	h.clock = clock
	h.apply(api, prog("w", notifying(true, 10*time.Second), func(p *config.Program) { p.Match = &config.Match{Comm: "worker"} }))
	for _, name := range []string{"api", "w"} {
		if st := h.waitState(name, StateRunning); !st.Ready {
			t.Errorf("adopted %s: %+v, want running and ready", name, st)
		}
	}
	h.sync()
	waitReceived(t, h.clock.fire(11*time.Second))
	h.sync()
	if got := mine.gotSignals(); len(got) == 0 || got[0] != syscall.SIGABRT {
		t.Errorf("silent instance of respawnd's earlier life got %v, want SIGABRT", got)
	}
	if got := found.gotSignals(); len(got) != 0 {
		t.Errorf("instance adopted by match got %v; it never had a NOTIFY_SOCKET", got)
	}
}

// RELOADING=1 shows until the next READY=1, STOPPING=1 from then on, and
// the last ERRNO= with them.
func TestNotifyStates(t *testing.T) {
	nf := newFakeNotifier()
	h := newHarness(t, func(c *Config) { c.Notifier = nf })
	h.apply(prog("p", notifying(false, time.Minute)))
	running(h, "p")
	pid := h.launcher.last().pid
	send := func(m NotifyMessage) {
		m.PID, m.Time = pid, h.clock.Now()
		nf.send(t, "p", m)
		h.sync()
	}
	send(NotifyMessage{Reloading: true})
	if st := h.status("p"); st.NotifyState != "reloading" {
		t.Errorf("after RELOADING=1: %q, want reloading", st.NotifyState)
	}
	send(NotifyMessage{Ready: true})
	if st := h.status("p"); st.NotifyState != "" || !st.Ready {
		t.Errorf("after READY=1: %q ready %v, want none, ready", st.NotifyState, st.Ready)
	}
	send(NotifyMessage{Stopping: true, Errno: 5, HasErrno: true})
	if st := h.status("p"); st.NotifyState != "stopping" || st.NotifyErrno != 5 {
		t.Errorf("after STOPPING=1 ERRNO=5: %q %d", st.NotifyState, st.NotifyErrno)
	}
}
