package supervisor

import (
	"errors"
	"sync"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
)

type died struct {
	program    string
	generation uint64
	pid        int
	group      Group
	startsThen int // launcher starts when Died was called
}

// fakeDeaths records what the supervisor hands the post-mortem keeper.
type fakeDeaths struct {
	launcher *fakeLauncher
	mu       sync.Mutex
	died     []died
	settled  []Exit
}

func (d *fakeDeaths) Died(program string, generation uint64, proc Process, group Group) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.died = append(d.died, died{program, generation, proc.PID(), group, d.launcher.started()})
}

func (d *fakeDeaths) Settled(e Exit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settled = append(d.settled, e)
}

func (d *fakeDeaths) snapshot() ([]died, []Exit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]died(nil), d.died...), append([]Exit(nil), d.settled...)
}

func withDeaths(d *fakeDeaths) func(*Config) {
	return func(c *Config) { c.Deaths = d }
}

// Died comes before the restart, with the program's cgroup; Settled once,
// with the final reason.
func TestDeathsAreHandedOverBeforeTheRestart(t *testing.T) {
	d := &fakeDeaths{}
	cg := &fakeCgroups{}
	h := newHarness(t, withDeaths(d), func(c *Config) { c.Cgroups = cg; d.launcher = c.Launcher.(*fakeLauncher) })
	h.apply(prog("p"))
	st := h.waitState("p", StateRunning)
	cg.group("p").oom() // the cgroup saw the OOM kill
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	testenv.Eventually(t, "the exit settled", func() bool { _, s := d.snapshot(); return len(s) == 1 })
	ds, ss := d.snapshot()
	if len(ds) != 1 {
		t.Fatalf("Died called %d times, want 1", len(ds))
	}
	if got := ds[0]; got.program != "p" || got.generation != st.Generation || got.pid != st.PID || got.group != Group(cg.group("p")) || got.startsThen != 1 {
		t.Errorf("Died(%+v), want p, generation %d, pid %d, its cgroup, before the second start", got, st.Generation, st.PID)
	}
	if e := ss[0]; e.Reason != ReasonOOMKill || e.Program != "p" || e.Generation != st.Generation || e.PID != st.PID {
		t.Errorf("Settled(%v gen %d pid %d), want oom_kill of generation %d pid %d", e.Describe(), e.Generation, e.PID, st.Generation, st.PID)
	}
}

// An exit whose reason waits for the kernel's report is settled once,
// with the reason the report gives.
func TestDeathsSettleAfterTheKernelReport(t *testing.T) {
	d := &fakeDeaths{}
	host := uint64(0)
	h := newHarness(t, withDeaths(d), func(c *Config) {
		d.launcher = c.Launcher.(*fakeLauncher)
		c.KernelLog = true
		c.HostOOMKills = func() (uint64, error) { return host, nil }
	})
	h.apply(prog("p"))
	st := h.waitState("p", StateRunning)
	host = 1
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "Died", func() bool { ds, _ := d.snapshot(); return len(ds) == 1 })
	h.sync()
	if _, ss := d.snapshot(); len(ss) != 0 {
		t.Fatalf("settled before the report: %v", ss[0].Describe())
	}
	h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID, Comm: "p"})
	testenv.Eventually(t, "the exit settled", func() bool { _, s := d.snapshot(); return len(s) == 1 })
	h.sync()
	_, ss := d.snapshot()
	if len(ss) != 1 || ss[0].Reason != ReasonOOMKill || ss[0].OOM == nil || ss[0].OOM.Comm != "p" {
		t.Fatalf("settled %d times, first %+v; want once, oom_kill with the report", len(ss), ss[0])
	}
	ds, _ := d.snapshot()
	if ds[0].group != nil {
		t.Errorf("Died with a group for a program without cgroups")
	}
}

// A start that fails is settled (start_failure) without a death.
func TestDeathsOfStartFailures(t *testing.T) {
	d := &fakeDeaths{}
	h := newHarness(t, withDeaths(d), func(c *Config) { d.launcher = c.Launcher.(*fakeLauncher) })
	h.launcher.mu.Lock()
	h.launcher.fail = errors.New("exec: no such file")
	h.launcher.mu.Unlock()
	h.apply(prog("p"))
	testenv.Eventually(t, "the start failure settled", func() bool { _, s := d.snapshot(); return len(s) >= 1 })
	ds, ss := d.snapshot()
	if len(ds) != 0 || ss[0].Reason != ReasonStartFailure || ss[0].Err == "" {
		t.Fatalf("died %d, settled %+v", len(ds), ss[0])
	}
}

// An adopted instance (not started in the program's cgroup by respawnd)
// dies without its group: the cgroup's figures are not its own.
func TestDeathsOfAdoptedInstancesHaveNoGroup(t *testing.T) {
	d := &fakeDeaths{}
	clock := newFakeClock()
	src := newFakeSource(clock)
	old := src.run(555, 42, "api")
	spec := prog("api", alwaysAtOnce)
	cg := &fakeCgroups{}
	h := newHarness(t, withDeaths(d), withSource(src, map[string]Instance{"api": {Program: "api", PID: 555, StartTime: 42, ConfigHash: spec.Hash(), Generation: 7}}), func(c *Config) {
		d.launcher = c.Launcher.(*fakeLauncher)
		c.Cgroups = cg
	})
	h.apply(spec)
	h.waitState("api", StateRunning)
	old.die(sigkill)
	testenv.Eventually(t, "Died", func() bool { ds, _ := d.snapshot(); return len(ds) == 1 })
	ds, _ := d.snapshot()
	if ds[0].group != nil || ds[0].pid != 555 || ds[0].generation != 7 {
		t.Fatalf("Died(%+v): want pid 555 generation 7 without a group", ds[0])
	}
}

// An OOM kill the cgroup counter proves is final at once (the restart does
// not wait), but its record waits for the kernel's report to carry it.
func TestDeathsOfProvenOOMKillsCarryTheReport(t *testing.T) {
	d := &fakeDeaths{}
	cg := &fakeCgroups{}
	h := newHarness(t, withDeaths(d), func(c *Config) {
		d.launcher = c.Launcher.(*fakeLauncher)
		c.Cgroups = cg
		c.KernelLog = true
	})
	h.apply(prog("p"))
	st := h.waitState("p", StateRunning)
	cg.group("p").oom()
	h.launcher.last().die(sigkill)
	h.waitStarts(2) // restarted without waiting for the report
	h.sync()
	if _, ss := d.snapshot(); len(ss) != 0 {
		t.Fatalf("settled before the kernel's report: %+v", ss[0])
	}
	h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID, Comm: "p", MemcgStats: map[string]uint64{"anon": 1}})
	testenv.Eventually(t, "the exit settled", func() bool { _, s := d.snapshot(); return len(s) == 1 })
	_, ss := d.snapshot()
	if e := ss[0]; e.Reason != ReasonOOMKill || e.OOM == nil || e.OOM.MemcgStats["anon"] != 1 {
		t.Fatalf("settled %+v, want oom_kill with the report", e)
	}
}
