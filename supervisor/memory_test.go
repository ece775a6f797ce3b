package supervisor

import (
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// fakeMemory records the watches the supervisor asks for.
type fakeMemory struct {
	mu      sync.Mutex
	watches []*fakeWatch
}

type fakeWatch struct {
	program  string
	pid      int
	hasGroup bool
	notify   func(MemoryEvent)
	stopped  bool
}

func (m *fakeMemory) Watch(program string, g Group, pid int, _ config.Program, notify func(MemoryEvent)) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &fakeWatch{program: program, pid: pid, hasGroup: g != nil, notify: notify}
	m.watches = append(m.watches, w)
	return func() { m.mu.Lock(); w.stopped = true; m.mu.Unlock() }, nil
}

// last returns the newest watch, and whether it is still on.
func (m *fakeMemory) last() (*fakeWatch, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.watches) == 0 {
		return nil, false
	}
	w := m.watches[len(m.watches)-1]
	return w, !w.stopped
}

func (m *fakeMemory) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.watches)
}

// fakeGate holds programs until the test releases them.
type fakeGate struct {
	mu       sync.Mutex
	held     map[string]func(bool)
	needs    map[string]uint64
	maxes    map[string]time.Duration
	orders   map[string]int
	canceled []string
}

func newFakeGate() *fakeGate {
	return &fakeGate{held: map[string]func(bool){}, needs: map[string]uint64{}, maxes: map[string]time.Duration{}, orders: map[string]int{}}
}

func (g *fakeGate) Hold(program string, order int, need uint64, max time.Duration, release func(bool)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held[program], g.needs[program], g.maxes[program], g.orders[program] = release, need, max, order
}

func (g *fakeGate) Cancel(program string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.held, program)
	g.canceled = append(g.canceled, program)
}

func (g *fakeGate) release(t *testing.T, program string, timedOut bool) {
	t.Helper()
	g.mu.Lock()
	r := g.held[program]
	delete(g.held, program)
	g.mu.Unlock()
	if r == nil {
		t.Fatalf("%s is not held", program)
	}
	r(timedOut)
}

func (g *fakeGate) isHeld(program string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held[program] != nil
}

// procOf is the running instance of program name.
func procOf(h *harness, name string) *fakeProc {
	h.t.Helper()
	pid := h.status(name).PID
	h.launcher.mu.Lock()
	defer h.launcher.mu.Unlock()
	for _, p := range h.launcher.procs {
		if p.pid == pid {
			return p
		}
	}
	h.t.Fatalf("no process of %s (pid %d)", name, pid)
	return nil
}

// running waits until name runs and its loop is done with the start.
func running(h *harness, name string) {
	h.t.Helper()
	h.waitState(name, StateRunning)
	h.sync()
}

func recycling(p *config.Program) {
	max := int64(256 << 20)
	p.Memory = &config.Memory{Max: &max, Recycle: &config.Recycle{Above: config.Threshold{Percent: 60}, For: time.Second, Measure: config.MeasureWorkingSet}}
}

func recycleNow(t *testing.T, m *fakeMemory) {
	t.Helper()
	w, on := m.last()
	if w == nil || !on {
		t.Fatalf("no memory watch on the running instance")
	}
	w.notify(MemoryEvent{Kind: MemoryRecycle, Measure: "working_set", Value: 200 << 20, Threshold: 160 << 20})
}

func TestRecycleStopsGracefullyAndStartsAtOnce(t *testing.T) {
	mem := &fakeMemory{}
	h := newHarness(t, func(c *Config) { c.Memory = mem; c.Cgroups = &fakeCgroups{} })
	h.apply(prog("p", recycling))
	running(h, "p")
	first := h.launcher.last()
	if w, on := mem.last(); w == nil || !on || !w.hasGroup || w.pid != first.pid {
		t.Fatalf("watch = %+v (on %v), want one on the instance's cgroup", w, on)
	}

	recycleNow(t, mem)
	h.waitStarts(2)
	if got := first.gotSignals(); len(got) == 0 || got[0] != syscall.SIGTERM {
		t.Errorf("recycled instance got %v, want its stop signal (SIGTERM) first", got)
	}
	exits := h.rec.exitList()
	if len(exits) != 1 || exits[0].Reason != ReasonMemoryRecycle || exits[0].Recycle {
		t.Fatalf("exits = %+v, want one memory_recycle", exits)
	}
	if _, on := mem.last(); !on || mem.count() != 2 {
		t.Errorf("watches = %d, want a fresh one for the new instance", mem.count())
	}
	if h.rec.restarts != 1 {
		t.Errorf("restarts recorded = %d, want 1 (a recycle is a restart)", h.rec.restarts)
	}

	// The crash backoff did not advance: a crash now restarts at once.
	running(h, "p")
	h.launcher.last().die(sigkill)
	h.waitStarts(3)
}

func TestRecycleTakesAToken(t *testing.T) {
	mem := &fakeMemory{}
	h := newHarness(t, func(c *Config) {
		c.Memory = mem
		c.Cgroups = &fakeCgroups{}
		c.Limiter = restart.NewLimiter(1, 1) // one token, one more a second
	})
	h.apply(prog("p", recycling))
	running(h, "p")
	recycleNow(t, mem) // takes the bucket's only token
	h.waitStarts(2)
	running(h, "p")
	recycleNow(t, mem)
	st := h.waitState("p", StateBackoff)
	if n := h.launcher.started(); n != 2 || st.NextStart.IsZero() {
		t.Fatalf("started %d, next start %v: the second recycle should wait for a token", n, st.NextStart)
	}
	h.clock.Advance(time.Second)
	h.waitStarts(3)
}

func TestRecycleLoopFallsBackToBackoff(t *testing.T) {
	mem := &fakeMemory{}
	h := newHarness(t, func(c *Config) { c.Memory = mem; c.Cgroups = &fakeCgroups{} })
	h.apply(prog("p", recycling))
	// maxRecycles+1 recycles within reset_after: a leak. From then on a
	// recycle is a crash: the first restarts at once, the next waits.
	for i := 1; i <= maxRecycles+1; i++ {
		running(h, "p")
		recycleNow(t, mem)
		h.waitStarts(i + 1)
	}
	running(h, "p")
	recycleNow(t, mem)
	st := h.waitState("p", StateBackoff)
	if st.NextStart.IsZero() {
		t.Fatalf("no backoff after %d recycles", maxRecycles+2)
	}
	h.sync()
	h.rec.mu.Lock()
	loops := h.rec.loops
	h.rec.mu.Unlock()
	if loops != 1 {
		t.Errorf("recycle loops recorded = %d, want 1", loops)
	}
	if !slices.ContainsFunc(h.sup.Events(), func(e Event) bool { return e.Kind == EventRecycleLoop }) {
		t.Errorf("no %s event", EventRecycleLoop)
	}
}

func TestRecycleOfAnEarlierInstanceIsIgnored(t *testing.T) {
	mem := &fakeMemory{}
	h := newHarness(t, func(c *Config) { c.Memory = mem; c.Cgroups = &fakeCgroups{} })
	h.apply(prog("p", recycling))
	running(h, "p")
	old, _ := mem.last()
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	running(h, "p")
	old.notify(MemoryEvent{Kind: MemoryRecycle, Value: 1, Threshold: 1})
	h.sync()
	if got := h.launcher.last().gotSignals(); len(got) != 0 {
		t.Errorf("new instance got %v from the old instance's crossing", got)
	}
}

func TestOOMKillDuringRecycleStaysOOMKill(t *testing.T) {
	mem := &fakeMemory{}
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Memory = mem; c.Cgroups = cg })
	h.launcher.obeyStop = false // the instance ignores SIGTERM
	h.apply(prog("p", recycling))
	running(h, "p")
	recycleNow(t, mem)
	h.waitState("p", StateStopping)
	cg.group("p").oom()
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	exits := h.rec.exitList()
	if len(exits) != 1 || exits[0].Reason != ReasonOOMKill || !exits[0].Recycle {
		t.Fatalf("exits = %+v, want oom_kill flagged as during a recycle", exits)
	}
}

func TestHostWideOOMHoldsTheRestart(t *testing.T) {
	gate := newFakeGate()
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Gate = gate; c.Cgroups = cg })
	h.apply(prog("p"), prog("q")) // no memory.max: only the host can run out
	running(h, "p")
	g := cg.group("p")
	g.mu.Lock()
	g.peak = 300 << 20
	g.mu.Unlock()
	g.oom()
	procOf(h, "p").die(sigkill)
	h.waitState("p", StateHeld)
	h.sync()
	if n := h.launcher.started(); n != 2 {
		t.Fatalf("started %d, want the held program not restarted", n)
	}
	gate.mu.Lock()
	need, max, order := gate.needs["p"], gate.maxes["p"], gate.orders["p"]
	gate.mu.Unlock()
	if need != 300<<20 || max != config.DefaultOOMHoldMax || order != 0 {
		t.Errorf("hold need %d max %v order %d, want the peak, oom_hold_max's default, 0", need, max, order)
	}
	gate.release(t, "p", false)
	h.waitStarts(3)
	running(h, "p")
}

func TestHoldEndsWithAnOperatorStop(t *testing.T) {
	gate := newFakeGate()
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Gate = gate; c.Cgroups = cg })
	h.apply(prog("p"))
	running(h, "p")
	cg.group("p").oom()
	h.launcher.last().die(sigkill)
	h.waitState("p", StateHeld)
	if err := h.sup.Control(h.ctx, "p", ActionStop, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState("p", StateStopped)
	gate.mu.Lock()
	canceled := slices.Contains(gate.canceled, "p")
	gate.mu.Unlock()
	if !canceled || gate.isHeld("p") {
		t.Errorf("the stop did not take p out of the gate's queue")
	}
}

func TestRestartNotHeld(t *testing.T) {
	off := false
	for name, mod := range map[string]func(*config.Program){
		"own limit":    func(p *config.Program) { max := int64(64 << 20); p.Memory = &config.Memory{Max: &max} },
		"oom_hold off": func(p *config.Program) { p.Restart.OOMHold = &off },
	} {
		t.Run(name, func(t *testing.T) {
			gate := newFakeGate()
			cg := &fakeCgroups{}
			h := newHarness(t, func(c *Config) { c.Gate = gate; c.Cgroups = cg })
			h.apply(prog("p", mod))
			running(h, "p")
			cg.group("p").oom()
			h.launcher.last().die(sigkill)
			h.waitStarts(2)
			if gate.isHeld("p") {
				t.Errorf("held")
			}
		})
	}
}

func TestOOMLoopState(t *testing.T) {
	cg := &fakeCgroups{}
	h := newHarness(t, func(c *Config) { c.Cgroups = cg })
	h.apply(prog("p", func(p *config.Program) {
		max := int64(64 << 20)
		p.Memory = &config.Memory{Max: &max}
		p.Restart.OOMLoop = 3
		p.Restart.ResetAfter = time.Minute
	}))
	kill := func() {
		running(h, "p")
		cg.group("p").oom()
		h.launcher.last().die(sigkill)
	}
	kill()
	h.waitStarts(2) // the first restart is at once
	kill()
	h.waitState("p", StateBackoff)
	h.clock.Advance(time.Second)
	h.waitStarts(3)
	kill() // the third within reset_after
	h.waitState("p", StateOOMLoop)
	if !slices.ContainsFunc(h.sup.Events(), func(e Event) bool { return e.Kind == EventOOMLoop }) {
		t.Errorf("no %s event", EventOOMLoop)
	}
	h.clock.Advance(5 * time.Second)
	h.waitStarts(4)
	running(h, "p")
	// An instance that outlives reset_after ends the loop: its next OOM
	// kill is a plain backoff.
	h.clock.Advance(2 * time.Minute)
	kill()
	h.waitStarts(5)
}
