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
	return &Limiter{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
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
