package supervisor

import (
	"errors"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
)

// fakeSource is a /proc with processes the test puts there.
type fakeSource struct {
	mu    sync.Mutex
	clock *fakeClock
	procs map[int]*fakeProc
	ticks map[int]uint64
	comm  map[int]string
	// unproven marks processes whose identity Verify cannot prove.
	unproven map[int]bool
	saves    [][]Instance
}

func newFakeSource(clock *fakeClock) *fakeSource {
	return &fakeSource{clock: clock, procs: map[int]*fakeProc{}, ticks: map[int]uint64{}, comm: map[int]string{}, unproven: map[int]bool{}}
}

// run puts a process that respawnd did not start on the fake host.
func (f *fakeSource) run(pid int, ticks uint64, comm string) *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &fakeProc{pid: pid, done: make(chan struct{}), clock: f.clock, obey: true}
	f.procs[pid], f.ticks[pid], f.comm[pid] = p, ticks, comm
	return p
}

func (f *fakeSource) Find(spec config.Program) ([]Found, error) {
	m := spec.Match
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Found
	for pid, c := range f.comm {
		select {
		case <-f.procs[pid].done:
			continue
		default:
		}
		if c == m.Comm {
			out = append(out, Found{PID: pid, StartTime: f.ticks[pid]})
		}
	}
	return out, nil
}

var errGone = errors.New("no such process")

func (f *fakeSource) FindTagged(string) ([]Found, error) { return nil, nil }

func (f *fakeSource) Watch(pid int, ticks uint64, _ bool) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[pid]
	if !ok || f.ticks[pid] != ticks {
		return nil, errGone
	}
	return p, nil
}

func (f *fakeSource) Verify(inst Instance, _ *config.Program, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[inst.PID]
	if !ok || f.ticks[inst.PID] != inst.StartTime {
		return ErrGone
	}
	select {
	case <-p.done:
		return ErrGone
	default:
	}
	if f.unproven[inst.PID] {
		return errors.New("not proven")
	}
	return nil
}

func (f *fakeSource) Identify(pid int) (Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.ticks[pid]; ok {
		return Instance{PID: pid, StartTime: t, BootID: "boot"}, nil
	}
	return Instance{PID: pid, StartTime: 1000 + uint64(pid), BootID: "boot"}, nil // a child of the fake launcher
}

func (f *fakeSource) Started(ticks uint64) time.Time { return time.Unix(int64(ticks), 0) }

func (f *fakeSource) save(in []Instance) error {
	f.mu.Lock()
	f.saves = append(f.saves, in)
	f.mu.Unlock()
	return nil
}

func (f *fakeSource) lastSave() []Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.saves) == 0 {
		return nil
	}
	return f.saves[len(f.saves)-1]
}

func withSource(src *fakeSource, adopt map[string]Instance) func(*Config) {
	return func(c *Config) {
		c.Processes = src
		c.Adopt = adopt
		c.SaveState = src.save
	}
}

func TestAdoptFromStateFile(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	old := src.run(555, 42, "api")
	spec := prog("api", alwaysAtOnce)
	h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, ConfigHash: spec.Hash(), Generation: 7, Restarts: 3, Child: true}}))
	h.apply(spec)
	st := h.waitState("api", StateRunning)
	if st.PID != 555 || st.Generation != 7 || st.Restarts != 3 {
		t.Fatalf("status %+v, want pid 555 generation 7 restarts 3 taken over", st)
	}
	if n := h.launcher.started(); n != 0 {
		t.Fatalf("started %d processes, want 0", n)
	}
	testenv.Eventually(t, "state saved", func() bool {
		s := src.lastSave()
		return len(s) == 1 && s[0].PID == 555 && s[0].StartTime == 42 && s[0].ConfigHash == spec.Hash()
	})
	// Its death is noticed and it is restarted as a child.
	old.die(sigkill)
	h.waitStarts(1)
	st = h.waitState("api", StateRunning)
	if st.Generation != 8 || st.Restarts != 4 {
		t.Errorf("after restart: generation %d restarts %d, want 8 and 4", st.Generation, st.Restarts)
	}
	testenv.Eventually(t, "state has the child", func() bool {
		s := src.lastSave()
		return len(s) == 1 && s[0].PID == st.PID && s[0].Child
	})
}

func TestAdoptRejectsReusedPID(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	src.run(555, 99, "api") // the pid now belongs to another process
	spec := prog("api", alwaysAtOnce)
	h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, ConfigHash: spec.Hash(), Generation: 7}}))
	h.apply(spec)
	h.waitStarts(1)
	st := h.waitState("api", StateRunning)
	if st.PID == 555 {
		t.Fatal("adopted a reused pid")
	}
	testenv.Eventually(t, "unknown exit", func() bool { return len(h.rec.exitList()) == 1 })
	if e := h.rec.exitList()[0]; e.Reason != ReasonUnknown || e.PID != 555 {
		t.Errorf("exit %+v, want unknown for pid 555", e)
	}
}

func TestAdoptChangedDefinitionRestartsOnce(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	old := src.run(555, 42, "api")
	spec := prog("api", alwaysAtOnce)
	h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, ConfigHash: "an older definition", Generation: 1}}))
	h.apply(spec)
	h.waitStarts(1)
	h.waitState("api", StateRunning)
	if sigs := old.gotSignals(); len(sigs) == 0 || sigs[0] != syscall.SIGTERM {
		t.Errorf("adopted instance got %v, want SIGTERM", sigs)
	}
	// The loop is done with the adopted instance's stop and the start that
	// followed, and schedules no other start.
	h.sync()
	if st := h.status("api"); st.State != StateRunning || !st.NextStart.IsZero() {
		t.Errorf("status %+v after the restart onto the new definition, want running, nothing scheduled", st)
	}
	if n := h.launcher.started(); n != 1 {
		t.Errorf("started %d times, want exactly 1", n)
	}
}

func TestAdoptByMatch(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	src.run(700, 50, "worker")
	src.run(600, 20, "worker") // the oldest
	src.run(800, 10, "other")
	h := newHarness(t, withSource(src, nil))
	h.apply(prog("w", func(p *config.Program) { p.Match = &config.Match{Comm: "worker"} }))
	st := h.waitState("w", StateRunning)
	if st.PID != 600 {
		t.Errorf("adopted pid %d, want the oldest match 600", st.PID)
	}
	if n := h.launcher.started(); n != 0 {
		t.Errorf("started %d processes, want 0", n)
	}
}

func TestOnMissingWait(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	h := newHarness(t, withSource(src, nil))
	h.apply(prog("w", func(p *config.Program) {
		p.Match = &config.Match{Comm: "worker"}
		p.OnMissing = config.OnMissingWait
	}))
	st := h.waitState("w", StateStopped)
	if st.Error == "" {
		t.Error("a waiting program says nothing about why")
	}
	src.run(900, 5, "worker")
	testenv.Eventually(t, "adopted once it appears", func() bool {
		h.clock.Advance(rescanInterval)
		return h.status("w").PID == 900
	})
	h.sync()
	if n := h.launcher.started(); n != 0 {
		t.Errorf("started %d processes, want 0", n)
	}
}

func TestOnMissingStart(t *testing.T) {
	h := newHarness(t, withSource(newFakeSource(newFakeClock()), nil))
	h.apply(prog("w", func(p *config.Program) { p.Match = &config.Match{Comm: "worker"} }))
	h.waitStarts(1)
	if argv := h.launcher.last().cmd.Argv; !slices.Equal(argv, []string{"/bin/w"}) {
		t.Errorf("started %v", argv)
	}
}
