package restart_test

import (
	"math"
	"math/rand/v2"
	"slices"
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

func TestTicketGoesToTheEarlierDeath(t *testing.T) {
	l := restart.NewLimiter(10, 1) // a token every 100ms
	if d, tk := l.ReserveTurn(epoch, epoch); d != 0 || tk != nil {
		t.Fatalf("the burst's token: wait %v, ticket %v", d, tk)
	}
	dLate, late := l.ReserveTurn(epoch, epoch.Add(5*time.Millisecond)) // died later, reserved first
	dEarly, early := l.ReserveTurn(epoch.Add(time.Millisecond), epoch) // died first, reserved second
	if dLate != 100*time.Millisecond || dEarly != 199*time.Millisecond {
		t.Fatalf("waits %v and %v, want 100ms and 199ms", dLate, dEarly)
	}
	select {
	case <-early.Wake():
		t.Fatal("woken before any turn")
	default:
	}
	at := epoch.Add(100 * time.Millisecond)
	if d := late.Turn(at); d != 100*time.Millisecond {
		t.Fatalf("the later death's turn: wait %v, want 100ms (it gives its token away)", d)
	}
	select {
	case <-early.Wake():
	default:
		t.Fatal("the earlier death was not woken")
	}
	if d := early.Turn(at); d != 0 {
		t.Fatalf("the earlier death: wait %v, want 0", d)
	}
	if d := early.Turn(at); d != 0 {
		t.Fatalf("a spent ticket: wait %v, want 0", d)
	}
	// The later death now holds the 200ms token: cancelling it returns
	// that one, which the next reservation gets.
	late.Cancel(at)
	late.Cancel(at)
	if d, _ := l.ReserveTurn(at, at); d != 100*time.Millisecond {
		t.Fatalf("after cancelling the swapped ticket: wait %v, want 100ms", d)
	}
	if d := late.Turn(at.Add(time.Second)); d != 0 {
		t.Fatalf("a cancelled ticket's turn: %v", d)
	}
	var none *restart.Ticket
	none.Cancel(at)
	if none.Wake() != nil {
		t.Fatal("a nil ticket's Wake is not nil")
	}
}

// TestTicketsKeepRateAndOrder runs random storms: tickets reserved in an
// order that is not their deaths', each taking its turn when its token is
// due or it is woken, interleaved in time. Tokens go out at the bucket's
// rate, never faster, and each goes to the earliest death among the
// tickets waiting for it.
func TestTicketsKeepRateAndOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	for round := range 50 {
		const perSecond, burst = 50.0, 5
		l := restart.NewLimiter(perSecond, burst)
		type holder struct {
			key time.Time
			tk  *restart.Ticket
			due time.Time
		}
		type arrival struct{ at, key time.Time }
		var arrivals []arrival
		at := epoch
		for range 60 {
			at = at.Add(time.Duration(rnd.IntN(30)) * time.Millisecond)
			arrivals = append(arrivals, arrival{at, at.Add(-time.Duration(rnd.IntN(500)) * time.Millisecond)})
		}
		var waiting []*holder
		var grants []time.Time
		now := epoch
		for len(arrivals) > 0 || len(waiting) > 0 {
			// A woken ticket turns at once; otherwise the next of an
			// arrival and the earliest due ticket.
			var h *holder
			for _, o := range waiting {
				select {
				case <-o.tk.Wake():
					h = o
				default:
				}
				if h != nil {
					break
				}
			}
			if h == nil {
				for _, o := range waiting {
					if h == nil || o.due.Before(h.due) {
						h = o
					}
				}
				if len(arrivals) > 0 && (h == nil || !arrivals[0].at.After(h.due)) {
					a := arrivals[0]
					arrivals = arrivals[1:]
					now = a.at
					d, tk := l.ReserveTurn(now, a.key)
					switch {
					case tk == nil:
						grants = append(grants, now)
					case rnd.IntN(10) == 0:
						tk.Cancel(now)
					default:
						waiting = append(waiting, &holder{key: a.key, tk: tk, due: now.Add(d)})
					}
					continue
				}
				if h.due.After(now) {
					now = h.due
				}
			}
			if d := h.tk.Turn(now); d > 0 {
				h.due = now.Add(d)
				continue
			}
			for _, o := range waiting {
				if o != h && o.key.Before(h.key) && o.due.After(now) {
					t.Fatalf("round %d: a ticket of a death at %v started at %v before one of a death at %v", round, h.key.Sub(epoch), now.Sub(epoch), o.key.Sub(epoch))
				}
			}
			grants = append(grants, now)
			waiting = slices.DeleteFunc(waiting, func(o *holder) bool { return o == h })
		}
		slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
		for i := range grants {
			for j := i; j < len(grants); j++ {
				allowed := burst + perSecond*grants[j].Sub(grants[i]).Seconds()
				if float64(j-i+1) > allowed+1e-6 {
					t.Fatalf("round %d: %d tokens between %v and %v, the bucket allows %.1f", round, j-i+1, grants[i].Sub(epoch), grants[j].Sub(epoch), allowed)
				}
			}
		}
		if len(grants) < 40 {
			t.Fatalf("round %d: only %d starts", round, len(grants))
		}
	}
}
