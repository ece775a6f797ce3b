package supervisor

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// judge is the whole decision table of an exit's reason; every branch is
// one row, so that changing any of them fails a row.
func TestJudge(t *testing.T) {
	kill := &oom.Kill{PID: 1}
	sigkill := restart.ExitStatus{Signaled: true, Signal: syscall.SIGKILL}
	unknown := restart.ExitStatus{Unknown: true, Code: -1}
	for _, tc := range []struct {
		name   string
		ev     evidence
		reason Reason
		final  bool
	}{
		{"exit 0", evidence{status: restart.ExitStatus{Code: 0}}, ReasonExitSuccess, true},
		{"exit 3", evidence{status: restart.ExitStatus{Code: 3}}, ReasonExitError, true},
		{"exit 3 with cgroup ooms (a worker's)", evidence{status: restart.ExitStatus{Code: 3}, ownCgroup: true, cgroupOOMs: 1}, ReasonExitError, true},
		{"SIGSEGV", evidence{status: restart.ExitStatus{Signaled: true, Signal: syscall.SIGSEGV}, kernelLog: true}, ReasonSignal, true},
		{"SIGKILL with a report", evidence{status: sigkill, kill: kill}, ReasonOOMKill, true},
		{"SIGKILL, cgroup counter rose", evidence{status: sigkill, ownCgroup: true, cgroupOOMs: 1, kernelLog: true}, ReasonOOMKill, true},
		{"SIGKILL, cgroup counter still", evidence{status: sigkill, ownCgroup: true, kernelLog: true}, ReasonSignal, true},
		{"SIGKILL, no OOM on the host", evidence{status: sigkill, hostKnown: true, kernelLog: true}, ReasonSignal, true},
		{"SIGKILL, host counter moved, kernel log live", evidence{status: sigkill, hostKnown: true, hostOOMs: 1, kernelLog: true}, ReasonUnknown, false},
		{"SIGKILL, host unknown, kernel log live", evidence{status: sigkill, kernelLog: true}, ReasonSignal, false},
		{"SIGKILL, no evidence at all", evidence{status: sigkill}, ReasonUnknown, true},
		{"SIGKILL, host counter moved, no kernel log", evidence{status: sigkill, hostKnown: true, hostOOMs: 2}, ReasonUnknown, true},
		{"unknown status with a report", evidence{status: unknown, kill: kill}, ReasonOOMKill, true},
		{"unknown status, cgroup counter rose", evidence{status: unknown, ownCgroup: true, cgroupOOMs: 1}, ReasonOOMKill, true},
		{"unknown status, cgroup counter still", evidence{status: unknown, ownCgroup: true}, ReasonUnknown, true},
		{"unknown status, kernel log may still report", evidence{status: unknown, kernelLog: true}, ReasonUnknown, false},
		{"unknown status, no OOM on the host", evidence{status: unknown, kernelLog: true, hostKnown: true}, ReasonUnknown, true},
	} {
		r, final := judge(tc.ev)
		if r != tc.reason || final != tc.final {
			t.Errorf("%s: %v final=%v, want %v final=%v", tc.name, r, final, tc.reason, tc.final)
		}
	}
}

// An exit waiting for the kernel's report settles when its own window
// closes: not before (a later exit's window is its own), and surely once
// the clock is past it, however late the timer fires.
func TestPendingExitsSettleAtTheirOwnDeadline(t *testing.T) {
	host := uint64(0)
	var mu sync.Mutex
	h := newHarness(t, func(c *Config) {
		c.KernelLog = true
		c.AttributionWindow = 2 * time.Second
		c.HostOOMKills = func() (uint64, error) { mu.Lock(); defer mu.Unlock(); return host, nil }
	})
	h.apply(prog("p", alwaysAtOnce))
	h.waitState("p", StateRunning)
	kill := func() {
		mu.Lock()
		host++ // an OOM kill somewhere: each SIGKILL waits for a report
		mu.Unlock()
		h.launcher.last().die(sigkill)
	}
	kill()
	h.waitStarts(2)
	h.waitState("p", StateRunning)
	h.sync() // the exit is filed (after the restart) before the clock moves
	h.clock.Advance(time.Second)
	kill() // its window closes a second after the first one's
	h.waitStarts(3)
	h.sync()
	h.clock.Advance(time.Second) // the first window closes
	testenv.Eventually(t, "the first exit settled", func() bool { return len(h.rec.exitList()) == 1 })
	h.sync()
	if n := len(h.rec.exitList()); n != 1 {
		t.Fatalf("%d exits settled, want only the first: the second's window is still open", n)
	}
	h.clock.Advance(10 * time.Second) // well past the second window
	testenv.Eventually(t, "the second exit settled", func() bool { return len(h.rec.exitList()) == 2 })
	for _, e := range h.rec.exitList() {
		if e.Reason != ReasonUnknown {
			t.Errorf("exit %v, want unknown (no report came)", e.Describe())
		}
	}
}
