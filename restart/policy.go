package restart

import (
	"math"
	"math/rand/v2"
	"time"
)

// Defaults for the zero values of PolicyConfig.
const (
	DefaultInitial    = 100 * time.Millisecond
	DefaultMax        = 30 * time.Second
	DefaultMultiplier = 2.0
	DefaultJitter     = 0.2
	DefaultResetAfter = 60 * time.Second
	DefaultBurst      = 5
	DefaultInterval   = 60 * time.Second
)

// PolicyConfig configures a Policy. Zero values mean defaults.
type PolicyConfig struct {
	// Initial is the first non-zero delay, given to the second consecutive
	// crash; default 100ms.
	Initial time.Duration
	// Max caps every delay, jitter included; default 30s. Any positive
	// value works: delays are computed in floating point and never
	// overflow.
	Max time.Duration
	// Multiplier grows the delay from one crash to the next; default 2.
	// Values between 0 and 1 are treated as 1 (a constant delay).
	Multiplier float64
	// Jitter is the fraction (0..1) by which a delay is spread at random in
	// both directions; default 0.2. A negative value disables jitter; values
	// above 1 are treated as 1.
	Jitter float64
	// ResetAfter is how long an instance must run for its exit to count as
	// a first exit again (the crash streak resets); default 60s.
	ResetAfter time.Duration
	// Burst is how many starts any Interval may hold: more than Burst
	// starts within Interval trips the limit; default 5. A negative value
	// disables the limit. Nothing is set aside for Burst in advance: the
	// Policy remembers actual starts, at most Burst of them.
	Burst int
	// Interval is the length of the sliding window of the burst limit;
	// default 60s.
	Interval time.Duration
	// GiveUp chooses what happens when the limit trips: true means give up,
	// false means keep restarting with a delay of Max for as long as the
	// starts keep exceeding the limit.
	GiveUp bool
	// Rand returns a number in [0,1); nil means math/rand/v2.
	Rand func() float64
}

// withDefaults returns cfg with every zero value replaced by its default.
func (cfg PolicyConfig) withDefaults() PolicyConfig {
	if cfg.Initial <= 0 {
		cfg.Initial = DefaultInitial
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Initial > cfg.Max {
		cfg.Initial = cfg.Max
	}
	switch {
	case cfg.Multiplier == 0 || math.IsNaN(cfg.Multiplier) || cfg.Multiplier < 0:
		cfg.Multiplier = DefaultMultiplier
	case cfg.Multiplier < 1:
		cfg.Multiplier = 1
	}
	switch {
	case cfg.Jitter == 0 || math.IsNaN(cfg.Jitter):
		cfg.Jitter = DefaultJitter
	case cfg.Jitter < 0:
		cfg.Jitter = 0
	case cfg.Jitter > 1:
		cfg.Jitter = 1
	}
	if cfg.ResetAfter <= 0 {
		cfg.ResetAfter = DefaultResetAfter
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return cfg
}

// Decision is what a Policy says after an exit.
type Decision struct {
	// Delay is how long to wait before the next start; 0 means at once.
	Delay time.Duration
	// Limited says the burst limit has tripped.
	Limited bool
	// GiveUp says not to start again (the limit tripped with GiveUp set).
	GiveUp bool
	// Attempt counts the consecutive crashes so far, 1 for the first.
	Attempt int
}

// Policy is the backoff and burst limit of one program.
//
// The first exit after a start (or after an instance that ran at least
// ResetAfter) restarts at once. The n-th consecutive exit of instances that
// each ran less than ResetAfter waits Initial × Multiplier^(n-2), spread by
// ±Jitter and capped at Max. When more than Burst starts fall within the
// Interval before an exit, the limit trips: the program is given up, or
// restarted after Max for as long as the starts keep exceeding the limit.
//
// A Policy reads no clock: times come from the caller. It is not safe for
// concurrent use; the goroutine that owns the program's state owns its
// Policy.
type Policy struct {
	cfg    PolicyConfig
	streak int
	// starts holds the most recent start times, at most Burst of them:
	// enough to tell whether another start would make more than Burst
	// within one Interval. It grows with actual starts, never ahead of
	// them, since Burst comes from a configuration. Once it holds Burst
	// times it is a ring, and oldest indexes the oldest; before that the
	// oldest is first and oldest is 0.
	starts []time.Time
	oldest int
}

// NewPolicy returns a Policy with cfg, zero values replaced by defaults. It
// allocates the same whatever cfg says.
func NewPolicy(cfg PolicyConfig) *Policy {
	return &Policy{cfg: cfg.withDefaults()}
}

// Started records that an instance started at t.
func (p *Policy) Started(t time.Time) {
	if p.cfg.Burst < 0 {
		return
	}
	if n := len(p.starts); n < p.cfg.Burst {
		if n == cap(p.starts) {
			// Grow as append would, but never beyond Burst.
			grown := make([]time.Time, n, min(p.cfg.Burst, max(4, 2*n)))
			copy(grown, p.starts)
			p.starts = grown
		}
		p.starts = append(p.starts, t)
		return
	}
	p.starts[p.oldest] = t
	p.oldest = (p.oldest + 1) % len(p.starts)
}

// Exited records an exit at t of the instance that started at started and
// returns when to start the next one.
func (p *Policy) Exited(started, t time.Time) Decision {
	if t.Sub(started) >= p.cfg.ResetAfter {
		p.streak = 1
	} else {
		p.streak++
	}
	d := Decision{Attempt: p.streak}
	if p.limited(t) {
		d.Limited = true
		if p.cfg.GiveUp {
			d.GiveUp = true
			return d
		}
		d.Delay = p.cfg.Max
		return d
	}
	d.Delay = p.delay(p.streak)
	return d
}

// limited reports whether Burst starts already fall within the Interval
// that ends at t, so that one more would exceed the limit. As with
// systemd's StartLimitBurst, Burst starts are allowed and the next is not.
func (p *Policy) limited(t time.Time) bool {
	if p.cfg.Burst < 0 || len(p.starts) < p.cfg.Burst {
		return false
	}
	// starts holds exactly Burst times; all of them are in the window when
	// the oldest is.
	return t.Sub(p.starts[p.oldest]) < p.cfg.Interval
}

// delay is the backoff for the n-th consecutive exit, jitter included.
//
// It computes in float64, where Initial × Multiplier^(n-2) may grow to
// +Inf but never wraps, and converts back only a value below Max: float64
// rounds a Max near the largest Duration up to 2^63, which has no
// Duration, so Max itself is returned instead of converted.
func (p *Policy) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	maxD := float64(p.cfg.Max)
	d := float64(p.cfg.Initial) * math.Pow(p.cfg.Multiplier, float64(n-2))
	if !(d < maxD) { // also +Inf and NaN
		d = maxD
	}
	if j := p.cfg.Jitter; j > 0 {
		d *= 1 + j*(2*p.cfg.Rand()-1)
	}
	switch {
	case !(d < maxD): // also NaN from a Rand out of range
		return p.cfg.Max
	case !(d > 0):
		return 0
	}
	return time.Duration(d)
}

// Reset forgets all history, as when an operator starts the program by
// hand.
func (p *Policy) Reset() {
	p.streak = 0
	p.starts = p.starts[:0]
	p.oldest = 0
}
