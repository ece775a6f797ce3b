package main

import (
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

// The memory of a burst is given back once, after the burst has been quiet
// for a while; a few changes are no burst.
func TestSettlerFreesAfterBurst(t *testing.T) {
	var freed atomic.Int32
	s := &settler{quiet: 20 * time.Millisecond, min: 3, free: func() { freed.Add(1) }}
	defer s.stop()
	for range 5 {
		s.changed()
	}
	testenv.Eventually(t, "memory given back after a burst", func() bool { return freed.Load() > 0 })
	s.changed() // one change: no burst
	s.changed()
	s.mu.Lock()
	pending := s.changes
	s.mu.Unlock()
	if pending != 2 {
		t.Fatalf("changes %d, want 2 counted afresh", pending)
	}
	s.fire()
	if n := freed.Load(); n != 1 {
		t.Errorf("freed %d times, want once: two changes are no burst", n)
	}
}

// One scrape is a burst of its own: its memory is given back once scrapes
// have paused for the quiet period.
func TestSettlerFreesAfterScrape(t *testing.T) {
	var freed atomic.Int32
	s := &settler{quiet: 20 * time.Millisecond, min: 32, free: func() { freed.Add(1) }}
	defer s.stop()
	s.scraped()
	testenv.Eventually(t, "memory given back after a scrape", func() bool { return freed.Load() > 0 })
	s.changed() // a state change alone is still no burst
	s.fire()
	if n := freed.Load(); n != 1 {
		t.Errorf("freed %d times, want once", n)
	}
}

// A health check that stopped coming is not health: ok turns false once
// the last good check is older than healthStale.
func TestHealthGoesStale(t *testing.T) {
	now := time.Unix(1000, 0)
	h := &health{lastOK: now, now: func() time.Time { return now }}
	if !h.ok() {
		t.Fatal("not ok right after a good check")
	}
	now = now.Add(healthStale + time.Second)
	if h.ok() {
		t.Error("still ok long after the last good check")
	}
	h.record(nil)
	if !h.ok() {
		t.Error("not ok after a fresh good check")
	}
	h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	h.record(errors.New("stuck"))
	if h.ok() {
		t.Error("ok after a failed check")
	}
}
