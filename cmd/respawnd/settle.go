package main

import (
	"runtime/debug"
	"sync"
	"time"
)

// settler gives the memory of a burst of starts (a thousand programs
// coming up, an OOM storm's restarts) back to the operating system once
// the burst is over: an idle daemon would otherwise keep the burst's
// garbage in its resident set until the runtime's next forced collection,
// minutes later. It is safe for concurrent use.
type settler struct {
	quiet time.Duration // how long without a state change ends a burst
	min   int           // fewer changes than this are no burst
	free  func()        // debug.FreeOSMemory; replaced by tests

	mu      sync.Mutex
	changes int
	timer   *time.Timer
}

func newSettler() *settler {
	return &settler{quiet: 5 * time.Second, min: 32, free: debug.FreeOSMemory}
}

// changed notes one program state change; called from program loops, it
// never blocks.
func (s *settler) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes++
	if s.timer == nil {
		s.timer = time.AfterFunc(s.quiet, s.fire)
		return
	}
	s.timer.Reset(s.quiet)
}

func (s *settler) fire() {
	s.mu.Lock()
	n := s.changes
	s.changes = 0
	s.mu.Unlock()
	if n >= s.min {
		s.free()
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
