package supervisor

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// ownCounter is the oom_kill counter of respawnd's own cgroup, as the test
// sets it.
type ownCounter struct {
	mu sync.Mutex
	n  uint64
}

func (c *ownCounter) read() (uint64, error) { c.mu.Lock(); defer c.mu.Unlock(); return c.n, nil }
func (c *ownCounter) add(d uint64)          { c.mu.Lock(); c.n += d; c.mu.Unlock() }

// The rows judge adds for an instance in respawnd's own cgroup: the counter
// decides a SIGKILL, final at once, whatever the host's counter or the
// kernel log; the program cgroup's rows stay as they were.
func TestJudgeOwnCgroup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ev     evidence
		reason Reason
		final  bool
	}{
		{"rose", evidence{status: sigkill, ownKnown: true, ownOOMs: 1}, ReasonOOMKill, true},
		{"rose, kernel log live", evidence{status: sigkill, ownKnown: true, ownOOMs: 1, kernelLog: true}, ReasonOOMKill, true},
		{"still, host counter moved", evidence{status: sigkill, ownKnown: true, hostKnown: true, hostOOMs: 3}, ReasonSignal, true},
		{"still, host counter moved, kernel log live", evidence{status: sigkill, ownKnown: true, hostKnown: true, hostOOMs: 3, kernelLog: true}, ReasonSignal, true},
		{"SIGTERM, rose", evidence{status: restart.ExitStatus{Signaled: true, Signal: syscall.SIGTERM}, ownKnown: true, ownOOMs: 1}, ReasonSignal, true},
		{"exit 1, rose", evidence{status: restart.ExitStatus{Code: 1}, ownKnown: true, ownOOMs: 1}, ReasonExitError, true},
		{"unknown counter, host counter moved, no kernel log", evidence{status: sigkill, hostKnown: true, hostOOMs: 1}, ReasonUnknown, true},
	} {
		r, final := judge(tc.ev)
		if r != tc.reason || final != tc.final {
			t.Errorf("%s: %v final=%v, want %v final=%v", tc.name, r, final, tc.reason, tc.final)
		}
	}
}

func TestOwnLedgerClaimsEachRiseOnce(t *testing.T) {
	var l ownLedger
	for i, step := range []struct {
		what             string
		counter, base, n uint64
	}{
		// Two instances started at 5; one OOM kill (6): the first death
		// takes it, the second finds nothing.
		{"first claim", 6, 5, 1},
		{"second claim of the same rise", 6, 5, 0},
		// Two kills in one OOM (8): both deaths get one.
		{"claim of a double rise", 8, 5, 2},
		{"claim of its second kill", 8, 5, 1},
		{"a third death", 8, 5, 0},
		// A rise before an instance's start is not its own.
		{"rise before the start", 9, 9, 0},
	} {
		if got := l.claim(step.counter, step.base); got != step.n {
			t.Errorf("step %d, %s: claim(%d, %d) = %d, want %d", i, step.what, step.counter, step.base, got, step.n)
		}
	}
}

// A program without a cgroup of its own (none could be made: a restricted
// pod) is judged by the counter of respawnd's own cgroup: a SIGKILL with a
// rise is an OOM kill, without one a plain signal, even though the host's
// counter moved and there is no kernel log.
func TestOwnCgroupCounterDecidesSIGKILL(t *testing.T) {
	own, host := &ownCounter{n: 7}, &ownCounter{n: 100}
	h := newHarness(t, func(c *Config) {
		c.OwnOOMKills = own.read
		c.HostOOMKills = host.read
	})
	h.apply(prog("p", alwaysAtOnce))
	h.waitState("p", StateRunning)

	own.add(1)
	host.add(1)
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "first exit", func() bool { return len(h.rec.exitList()) == 1 })
	if e := h.rec.exitList()[0]; e.Reason != ReasonOOMKill || !e.Settled.Equal(e.Time) {
		t.Fatalf("OOM kill in the own cgroup: %s settled %v after the death, want oom_kill at once", e.Describe(), e.Settled.Sub(e.Time))
	}
	if n := h.rec.killCount("p"); n != 1 {
		t.Errorf("oom kills recorded = %d, want 1", n)
	}

	// Restarted; someone else on the host is OOM-killed, then a kill -9.
	h.waitStarts(2)
	h.waitState("p", StateRunning)
	host.add(5)
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "second exit", func() bool { return len(h.rec.exitList()) == 2 })
	if e := h.rec.exitList()[1]; e.Reason != ReasonSignal || e.Signal != syscall.SIGKILL {
		t.Fatalf("kill -9 with the host's counter risen: %s, want signal SIGKILL", e.Describe())
	}
	if n := h.rec.killCount("p"); n != 1 {
		t.Errorf("oom kills recorded = %d, want still 1", n)
	}
}

// A program with a cgroup of its own keeps its cgroup's rules: a rise of
// respawnd's own counter says nothing about it.
func TestOwnCgroupCounterLeavesProgramCgroupsAlone(t *testing.T) {
	own := &ownCounter{}
	h := newHarness(t, func(c *Config) {
		c.OwnOOMKills = own.read
		c.Cgroups = &fakeCgroups{}
	})
	max := int64(64 << 20)
	h.apply(prog("p", alwaysAtOnce, func(p *config.Program) { p.Memory = &config.Memory{Max: &max} }))
	h.waitState("p", StateRunning)
	own.add(1)
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "exit", func() bool { return len(h.rec.exitList()) == 1 })
	if e := h.rec.exitList()[0]; e.Reason != ReasonSignal {
		t.Errorf("program cgroup counter still, own counter rose: %s, want signal", e.Describe())
	}
}

// One rise of the own counter is claimed once. A worker OOM-killed while
// the main process lives leaves one rise; the main process's later OOM
// kill makes it two, and the death is one oom_kill, not two. Then one
// more OOM kill in the cgroup and two programs killed with SIGKILL: one
// of them takes it, the other is a plain signal.
func TestOwnCgroupRiseIsClaimedOnce(t *testing.T) {
	own := &ownCounter{}
	h := newHarness(t, func(c *Config) { c.OwnOOMKills = own.read })
	h.apply(prog("a", alwaysAtOnce))
	h.waitState("a", StateRunning)

	own.add(1) // a's worker
	own.add(1) // a's main process
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "a's exit", func() bool { return len(h.rec.exitList()) == 1 })
	if e := h.rec.exitList()[0]; e.Reason != ReasonOOMKill {
		t.Fatalf("a: %s, want oom_kill", e.Describe())
	}
	if n := h.rec.killCount("a"); n != 1 {
		t.Errorf("a: %d oom kills recorded for one death, want 1", n)
	}
	h.waitStarts(2)
	a := h.waitState("a", StateRunning)
	// The new instance does not inherit the worker's rise.
	h.launcher.last().die(sigkill)
	testenv.Eventually(t, "a's second exit", func() bool { return len(h.rec.exitList()) == 2 })
	if e := h.rec.exitList()[1]; e.Reason != ReasonSignal || e.PID != a.PID {
		t.Fatalf("a's next instance, kill -9: %s, want signal", e.Describe())
	}

	// The second restart in a row waits for its backoff.
	testenv.Eventually(t, "a's third start", func() bool {
		h.clock.Advance(100 * time.Millisecond)
		return h.launcher.started() >= 3
	})
	h.apply(prog("a", alwaysAtOnce), prog("b", alwaysAtOnce))
	h.waitStarts(4)
	pa, pb := h.waitState("a", StateRunning), h.waitState("b", StateRunning)
	var procA, procB *fakeProc
	h.launcher.mu.Lock()
	for _, p := range h.launcher.procs {
		switch p.pid {
		case pa.PID:
			procA = p
		case pb.PID:
			procB = p
		}
	}
	h.launcher.mu.Unlock()
	own.add(1)
	procA.die(sigkill)
	procB.die(sigkill)
	testenv.Eventually(t, "two more exits", func() bool { return len(h.rec.exitList()) == 4 })
	reasons := map[Reason]int{}
	for _, e := range h.rec.exitList()[2:] {
		reasons[e.Reason]++
	}
	if reasons[ReasonOOMKill] != 1 || reasons[ReasonSignal] != 1 {
		t.Errorf("one OOM kill, two SIGKILLs: reasons %v, want one oom_kill and one signal", reasons)
	}
	if n := h.rec.killCount("a") + h.rec.killCount("b"); n != 2 {
		t.Errorf("oom kills recorded = %d, want 2 in all", n)
	}
}
