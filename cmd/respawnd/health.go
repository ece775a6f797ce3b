package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/respawnd/respawnd/supervisor"
)

// Health checking: the supervisor's loop and every program's loop must
// answer a ping. A stuck loop makes /-/ready answer 503 and withholds the
// systemd watchdog's WATCHDOG=1, so that systemd restarts a wedged
// respawnd (which then takes its programs back from the state file).
const (
	// healthPeriod is the time between two checks.
	healthPeriod = 5 * time.Second
	// healthTimeout is how long a loop may take to answer. Loops block for
	// seconds at most (a start, killing what is left in a cgroup), so a
	// loop that is silent this long is stuck.
	healthTimeout = 20 * time.Second
	// healthStale is how old the last good check may be while the daemon
	// still counts as healthy.
	healthStale = healthPeriod + healthTimeout
)

// health runs the checks and keeps their outcome. It is safe for concurrent
// use.
type health struct {
	sup *supervisor.Supervisor
	log *slog.Logger

	mu     sync.Mutex
	lastOK time.Time
	failed bool
	now    func() time.Time
}

func newHealth(sup *supervisor.Supervisor, logger *slog.Logger) *health {
	return &health{sup: sup, log: logger, lastOK: time.Now(), now: time.Now}
}

// run checks every healthPeriod until ctx is done; it returns nil.
func (h *health) run(ctx context.Context) error {
	t := time.NewTicker(healthPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := h.sup.Alive(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		h.record(err)
	}
}

func (h *health) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if !h.failed {
			h.log.Error("supervisor unhealthy: a loop does not answer; not ready, systemd watchdog withheld", "err", err)
		}
		h.failed = true
		return
	}
	if h.failed {
		h.log.Info("supervisor healthy again")
	}
	h.failed = false
	h.lastOK = h.now()
}

// ok says whether the last check passed and is recent.
func (h *health) ok() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.failed && h.now().Sub(h.lastOK) <= healthStale
}
