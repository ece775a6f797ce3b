package supervisor

import (
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
)

// A restart's latency is respawnd's own, from the death or from the end of
// the backoff to the new process; the backoff is reported apart, as the
// restart's wait.
func TestRestartLatencyExcludesTheBackoff(t *testing.T) {
	h := newHarness(t)
	h.apply(prog("p", func(p *config.Program) {
		p.Restart.Backoff = config.Backoff{Initial: 5 * time.Second, Max: 5 * time.Second, Multiplier: 1}
	}))
	running(h, "p")
	// The first crash restarts at once.
	h.clock.Advance(time.Second)
	h.launcher.last().die(sigkill)
	h.waitStarts(2)
	running(h, "p")
	// The second, within reset_after, waits the backoff.
	h.launcher.last().die(sigkill)
	h.waitState("p", StateBackoff)
	h.clock.Advance(5 * time.Second)
	h.waitStarts(3)
	running(h, "p")
	h.rec.mu.Lock()
	lat, waits := h.rec.latencies, h.rec.waits
	h.rec.mu.Unlock()
	if len(lat) != 2 || len(waits) != 2 {
		t.Fatalf("latencies %v waits %v, want two of each", lat, waits)
	}
	if waits[0] != 0 || waits[1] != 5*time.Second {
		t.Errorf("waits %v, want 0 then the 5s backoff", waits)
	}
	for i, l := range lat {
		if l != 0 {
			t.Errorf("latency %d = %v, want 0 on the fake clock (the backoff is not respawnd's latency)", i, l)
		}
	}
}
