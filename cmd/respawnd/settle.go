package main

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// settler gives the memory of a burst of starts (a thousand programs
// coming up, an OOM storm's restarts) or of a scrape back to the operating
// system once the burst is over: an idle daemon would otherwise keep the
// burst's garbage in its resident set until the runtime's next forced
// collection, minutes later. It is safe for concurrent use.
type settler struct {
	quiet time.Duration // how long without a state change or scrape ends a burst
	min   int           // fewer changes than this are no burst
	free  func()        // debug.FreeOSMemory; replaced by tests
	log   *slog.Logger

	mu      sync.Mutex
	changes int
	scrapes int
	timer   *time.Timer
}

func newSettler(log *slog.Logger) *settler {
	return &settler{quiet: 5 * time.Second, min: 32, free: debug.FreeOSMemory, log: log}
}

// changed notes one program state change; called from program loops, it
// never blocks.
func (s *settler) changed() { s.note(&s.changes) }

// scraped notes one scrape of /metrics, which counts as a burst on its
// own: a scrape of a thousand programs builds and drops megabytes of
// series, and the collection it triggers sets the heap's next goal at
// twice its peak, a resident set the daemon would keep between scrapes.
// The price is one collection per scrape interval (Prometheus scrapes every
// 15 s to 1 min), milliseconds of CPU.
func (s *settler) scraped() { s.note(&s.scrapes) }

func (s *settler) note(count *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*count++
	if s.timer == nil {
		s.timer = time.AfterFunc(s.quiet, s.fire)
		return
	}
	s.timer.Reset(s.quiet)
}

func (s *settler) fire() {
	s.mu.Lock()
	changes, scrapes := s.changes, s.scrapes
	s.changes, s.scrapes = 0, 0
	s.mu.Unlock()
	if changes >= s.min || scrapes > 0 {
		s.free()
		if s.log != nil {
			s.log.Debug("memory given back to the system", "state_changes", changes, "scrapes", scrapes)
		}
	}
}

// stop ends the pending timer.
func (s *settler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
}
