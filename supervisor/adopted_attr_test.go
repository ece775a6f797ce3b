package supervisor

import (
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
)

// A process adopted by match lives in a cgroup of its own choosing: the
// program's own (empty) cgroup's counter says nothing about its death, and
// the kernel's report decides.
func TestAdoptedDeathNotJudgedByEmptyCgroup(t *testing.T) {
	clock := newFakeClock()
	src := newFakeSource(clock)
	outside := src.run(700, 50, "worker")
	cg := &fakeCgroups{}
	h := newHarness(t, withSource(src, nil), func(c *Config) {
		c.Cgroups = cg
		c.KernelLog = true
	})
	h.apply(prog("w", func(p *config.Program) { p.Match = &config.Match{Comm: "worker"} }))
	if st := h.waitState("w", StateRunning); st.PID != 700 {
		t.Fatalf("adopted %d, want 700", st.PID)
	}
	outside.die(sigkill) // OOM-killed in its own memory cgroup: ours did not move
	// The exit status is handled first, then the report comes.
	testenv.Eventually(t, "the exit status handled", func() bool {
		e := h.status("w").LastExit
		return e != nil && e.PID == 700
	})
	h.sup.OOMKill(h.ctx, oom.Kill{PID: 700, Comm: "worker", TaskMemcg: "/elsewhere"})
	testenv.Eventually(t, "the exit settled", func() bool {
		e := h.status("w").LastExit
		return e != nil && e.PID == 700 && !e.Settled.IsZero()
	})
	if e := h.status("w").LastExit; e.Reason != ReasonOOMKill {
		t.Errorf("adopted process's OOM kill judged %v", e.Describe())
	}
	h.clock.Advance(5 * time.Second)
}
