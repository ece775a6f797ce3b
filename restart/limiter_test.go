package restart_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/respawnd/respawnd/restart"
)

func TestLimiter(t *testing.T) {
	l := restart.NewLimiter(10, 2) // a token every 100ms, two at once
	now := epoch
	var got []time.Duration
	for range 5 {
		d, _ := l.Reserve(now)
		got = append(got, d)
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	// A second later the bucket holds 10-3 tokens... capped at the burst.
	now = now.Add(time.Second)
	for i, w := range []time.Duration{0, 0, 100 * time.Millisecond} {
		if d, _ := l.Reserve(now); d != w {
			t.Fatalf("after refill, reservation %d: delay %v, want %v", i, d, w)
		}
	}
}

func TestLimiterCancel(t *testing.T) {
	l := restart.NewLimiter(10, 1)
	d0, _ := l.Reserve(epoch)
	d1, cancel1 := l.Reserve(epoch)
	if d0 != 0 || d1 != 100*time.Millisecond {
		t.Fatalf("delays %v, %v; want 0, 100ms", d0, d1)
	}
	// Returning the last token lets the next caller take its place.
	cancel1(epoch)
	cancel1(epoch) // a second call returns nothing more
	if d, _ := l.Reserve(epoch); d != 100*time.Millisecond {
		t.Fatalf("after cancel: delay %v, want 100ms", d)
	}
	if d, _ := l.Reserve(epoch); d != 200*time.Millisecond {
		t.Fatalf("after double cancel: delay %v, want 200ms (only one token returned)", d)
	}
}

func TestLimiterCancelKeepsLaterReservations(t *testing.T) {
	l := restart.NewLimiter(10, 1)
	l.Reserve(epoch)
	_, cancelMiddle := l.Reserve(epoch)
	d2, _ := l.Reserve(epoch)
	cancelMiddle(epoch)
	// The token of the middle reservation is not handed out again: the
	// third reservation already counts on the time after it.
	if d, _ := l.Reserve(epoch); d <= d2 {
		t.Fatalf("reservation after cancelled middle: delay %v, want more than %v", d, d2)
	}
}

func TestLimiterClockGoingBack(t *testing.T) {
	l := restart.NewLimiter(10, 1)
	l.Reserve(epoch.Add(time.Second))
	// A caller whose clock was read a little earlier still queues behind.
	if d, _ := l.Reserve(epoch); d != 1100*time.Millisecond {
		t.Fatalf("delay %v, want 1.1s", d)
	}
}

func TestLimiterDefaults(t *testing.T) {
	for _, tt := range []struct {
		perSecond float64
		burst     int
	}{{0, 0}, {-1, -5}} {
		l := restart.NewLimiter(tt.perSecond, tt.burst)
		for i := range restart.DefaultRestartBurst {
			if d, _ := l.Reserve(epoch); d != 0 {
				t.Fatalf("NewLimiter(%v, %v): reservation %d delayed %v within the default burst", tt.perSecond, tt.burst, i, d)
			}
		}
		if d, _ := l.Reserve(epoch); d != time.Second/restart.DefaultRestartsPerSecond {
			t.Fatalf("NewLimiter(%v, %v): delay after the burst %v, want %v", tt.perSecond, tt.burst, d, time.Second/restart.DefaultRestartsPerSecond)
		}
	}
}

func TestLimiterConcurrentFIFO(t *testing.T) {
	l := restart.NewLimiter(1000, 1)
	const n = 200
	var wg sync.WaitGroup
	delays := make(chan time.Duration, n) // one per reservation
	for range n {
		wg.Go(func() {
			d, _ := l.Reserve(epoch)
			delays <- d
		})
	}
	wg.Wait()
	close(delays)
	seen := make(map[time.Duration]bool)
	for d := range delays {
		if seen[d] {
			t.Fatalf("two reservations got the same slot %v", d)
		}
		seen[d] = true
	}
	for i := range n {
		if !seen[time.Duration(i)*time.Millisecond] {
			t.Fatalf("slot %v missing: a reservation was dropped", time.Duration(i)*time.Millisecond)
		}
	}
}

// TestLimiterExtremes checks that no rate or burst, however large or
// small, makes a reservation panic or wait a negative time.
func TestLimiterExtremes(t *testing.T) {
	for _, tt := range []struct {
		perSecond float64
		burst     int
	}{
		{math.MaxFloat64, math.MaxInt},
		{math.Inf(1), 1},
		{math.NaN(), math.MaxInt},
		{math.SmallestNonzeroFloat64, 1},
		{1e-3, 1},
		{1e4, 1e4},
	} {
		l := restart.NewLimiter(tt.perSecond, tt.burst)
		now := epoch
		for i := range 100 {
			d, cancel := l.Reserve(now)
			if d < 0 {
				t.Fatalf("NewLimiter(%v, %v): reservation %d delayed %v", tt.perSecond, tt.burst, i, d)
			}
			if i%3 == 0 {
				cancel(now)
			}
			now = now.Add(time.Millisecond)
		}
	}
}
