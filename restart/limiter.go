package restart

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of NewLimiter for arguments out of range.
const (
	DefaultRestartsPerSecond = 50
	DefaultRestartBurst      = 100
)

// Limiter is the global token bucket for restarts across all programs.
//
// It reads no clock: every call takes the caller's now. Reservations are
// granted in call order and none is dropped: each waits at least as long as
// the one before it. A Limiter is safe for concurrent use.
type Limiter struct {
	mu  sync.Mutex
	lim *rate.Limiter
	// last is the latest time passed in. rate.Limiter assumes time never
	// goes backwards; callers with clocks read at slightly different moments
	// are clamped to it so that call order stays grant order.
	last time.Time
	// waiting holds the Tickets whose token is not yet theirs to use.
	waiting map[*Ticket]struct{}
}

// NewLimiter returns a Limiter that refills perSecond tokens a second up to
// burst. perSecond <= 0 (or NaN) means DefaultRestartsPerSecond, +Inf means
// no limit, and burst < 1 means DefaultRestartBurst. A Limiter holds only
// these numbers and its current state, so it takes the same memory whatever
// they are.
func NewLimiter(perSecond float64, burst int) *Limiter {
	if !(perSecond > 0) { // also catches NaN
		perSecond = DefaultRestartsPerSecond
	}
	if burst < 1 {
		burst = DefaultRestartBurst
	}
	return &Limiter{lim: rate.NewLimiter(rate.Limit(perSecond), burst), waiting: map[*Ticket]struct{}{}}
}

// clamp returns t, or the latest time seen when t is earlier, and records
// it. l.mu must be held.
func (l *Limiter) clamp(t time.Time) time.Time {
	if t.Before(l.last) {
		return l.last
	}
	l.last = t
	return t
}

// Reserve takes one token at now and returns how long the caller must wait
// before starting, plus a cancel func that returns the token if the start is
// abandoned. Calling cancel more than once has no further effect; a token
// whose turn has passed, or that later reservations already depend on, is
// not returned.
func (l *Limiter) Reserve(now time.Time) (time.Duration, func(now time.Time)) {
	l.mu.Lock()
	r := l.lim.ReserveN(l.clamp(now), 1)
	l.mu.Unlock()
	// burst >= 1, so a reservation of one token is always OK.
	delay := max(r.DelayFrom(now), 0)
	var once sync.Once
	cancel := func(now time.Time) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			r.CancelAt(l.clamp(now))
		})
	}
	return delay, cancel
}

// Ticket is a token reserved for a start that became due at a moment, its
// key (the death it follows, or the end of its backoff). Its token is
// usable from its time on; until then a ticket whose start became due
// earlier but that was reserved later (an OOM storm's deaths are noticed
// in one order and settled in another) may take the earlier token, and
// leaves it the later one. Tokens thus go in the order the starts became
// due, at the bucket's rate: a swap changes who uses a token, never when.
type Ticket struct {
	l    *Limiter
	r    *rate.Reservation
	key  time.Time
	at   time.Time // when the token is usable
	wake chan struct{}
}

// ReserveTurn takes one token at now for a start that became due at key,
// as Reserve does. A wait of zero means start now (and no ticket).
// Otherwise the holder waits until now+wait, or until Wake says a swap gave
// it an earlier token, and then asks Turn; or gives the token back with
// Cancel.
func (l *Limiter) ReserveTurn(now, key time.Time) (time.Duration, *Ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.lim.ReserveN(l.clamp(now), 1)
	wait := max(r.DelayFrom(now), 0)
	if wait <= 0 {
		return 0, nil
	}
	t := &Ticket{l: l, r: r, key: key, at: now.Add(wait), wake: make(chan struct{}, 1)}
	l.waiting[t] = struct{}{}
	return wait, t
}

// Wake receives when a swap has given the ticket an earlier token: its
// holder should ask Turn now. It is nil for a nil Ticket.
func (t *Ticket) Wake() <-chan struct{} {
	if t == nil {
		return nil
	}
	return t.wake
}

// Turn is asked by the ticket's holder once its token is usable (its wait
// is over, or Wake received). If a waiting ticket's start became due
// before this one's, that ticket takes this token and is woken, and this
// one waits for that ticket's token: Turn returns the new wait. A wait of
// zero means start now; the ticket is then spent.
func (t *Ticket) Turn(now time.Time) time.Duration {
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.waiting[t]; !ok {
		return 0 // spent or cancelled: nothing to wait for
	}
	for {
		var first *Ticket
		for o := range l.waiting {
			if o != t && o.key.Before(t.key) && o.at.After(t.at) && (first == nil || o.key.Before(first.key) || o.key.Equal(first.key) && o.at.Before(first.at)) {
				first = o
			}
		}
		if first == nil {
			break
		}
		t.at, first.at = first.at, t.at
		t.r, first.r = first.r, t.r
		select {
		case first.wake <- struct{}{}:
		default:
		}
		if t.at.After(now) {
			return t.at.Sub(now)
		}
		// The later token is usable already (a loop that ran late): look
		// again from it.
	}
	if t.at.After(now) {
		return t.at.Sub(now)
	}
	delete(l.waiting, t)
	return 0
}

// Cancel gives the ticket's token back, as Reserve's cancel does. It may
// be called more than once, and on a nil Ticket.
func (t *Ticket) Cancel(now time.Time) {
	if t == nil {
		return
	}
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.waiting[t]; !ok {
		return
	}
	delete(l.waiting, t)
	t.r.CancelAt(l.clamp(now))
}
