package memwatch

import (
	"fmt"
	"strconv"
	"time"
)

// Spec is what one program's memory is judged against.
type Spec struct {
	// Above is the recycle threshold in bytes; 0 means no recycle.
	Above uint64
	// For is how long the measure must stay at or above Above before a
	// Recycle is reported; 0 reports at the first check that sees it.
	For time.Duration
	// Measure is the figure compared with the thresholds. For a Target
	// with a Sample function it only labels the function's value.
	Measure Measure
	// WarnAbove is the warning threshold in bytes; 0 means no warning.
	WarnAbove uint64
}

func (s Spec) validate() error {
	switch {
	case !s.Measure.valid():
		return fmt.Errorf("%w spec: unknown measure %d", ErrInvalid, int(s.Measure))
	case s.For < 0:
		return fmt.Errorf("%w spec: negative for %s", ErrInvalid, s.For)
	case s.Above == 0 && s.WarnAbove == 0:
		return fmt.Errorf("%w spec: neither above nor warn_above is set, nothing to watch", ErrInvalid)
	}
	return nil
}

// Kind is what an Event reports.
type Kind int

const (
	// Recycle: the measure stayed at or above Spec.Above for Spec.For.
	// Reported once; it re-arms only after a check sees the measure below
	// Above again, or when the program is added anew (a new instance).
	Recycle Kind = iota + 1
	// Warn: the measure reached Spec.WarnAbove. Reported once, until a
	// WarnCleared.
	Warn
	// WarnCleared: after a Warn, the measure fell below the clear level,
	// WarnAbove less 5 % (see ClearLevel), or the warning was turned off.
	WarnCleared
)

// String returns "recycle", "warn" or "warn_cleared", the words used in
// logs and events.
func (k Kind) String() string {
	switch k {
	case Recycle:
		return "recycle"
	case Warn:
		return "warn"
	case WarnCleared:
		return "warn_cleared"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one report about one program.
type Event struct {
	Program string
	Kind    Kind
	Measure Measure
	// Value is the measure at the check that made the report.
	Value uint64
	// Threshold is Spec.Above (Recycle) or Spec.WarnAbove (Warn,
	// WarnCleared; 0 if the warning was turned off).
	Threshold uint64
	// Since is when a check first saw the measure at or above the
	// threshold, in this stretch above it.
	Since time.Time
	// At is the time of the check that made the report.
	At time.Time
}

// ClearLevel is the value below which a Warn clears: 95 % of warnAbove. The
// 5 % of hysteresis keeps a program that hovers at its warning level from
// reporting a Warn and a WarnCleared at every check; the recycle threshold
// has none, because a Recycle is reported once per stretch above it anyway
// and must re-arm as soon as the program is below it.
func ClearLevel(warnAbove uint64) uint64 {
	return warnAbove - warnAbove/20
}

// judge is one program's decision state. It is pure: the caller gives it
// the time and the measure of each check.
type judge struct {
	spec      Spec
	above     bool // the last check saw the measure at or above spec.Above
	fired     bool // a Recycle was reported in this stretch above
	warned    bool
	since     time.Time // when this stretch above spec.Above began
	warnSince time.Time
}

// setSpec installs a new spec. A changed threshold or measure ends the
// stretch above (and re-arms the Recycle), since the old one was measured
// against something else; a changed For applies to the stretch in
// progress. The warning state is kept: the next check compares it with
// the new WarnAbove and clears it if needed.
func (j *judge) setSpec(s Spec) {
	if s.Above != j.spec.Above || s.Measure != j.spec.Measure {
		j.above, j.fired = false, false
	}
	j.spec = s
}

// quiet reports whether a measure of at most bound can change nothing:
// below both thresholds, with no stretch above and no warning to clear.
// The Watcher then skips reading memory.stat, bound being the usage.
func (j *judge) quiet(bound uint64) bool {
	s := j.spec
	return !j.above && !j.warned &&
		(s.Above == 0 || bound < s.Above) &&
		(s.WarnAbove == 0 || bound < s.WarnAbove)
}

// observe takes one check's measure v at now and appends the events it
// causes to out.
func (j *judge) observe(now time.Time, v uint64, out []Event) []Event {
	s := j.spec
	if s.Above > 0 && v >= s.Above {
		if !j.above {
			j.above, j.since = true, now
		}
		if !j.fired && now.Sub(j.since) >= s.For {
			j.fired = true
			out = append(out, Event{Kind: Recycle, Measure: s.Measure, Value: v, Threshold: s.Above, Since: j.since, At: now})
		}
	} else {
		j.above, j.fired = false, false
	}
	switch {
	case !j.warned && s.WarnAbove > 0 && v >= s.WarnAbove:
		j.warned, j.warnSince = true, now
		out = append(out, Event{Kind: Warn, Measure: s.Measure, Value: v, Threshold: s.WarnAbove, Since: now, At: now})
	case j.warned && (s.WarnAbove == 0 || v < ClearLevel(s.WarnAbove)):
		j.warned = false
		out = append(out, Event{Kind: WarnCleared, Measure: s.Measure, Value: v, Threshold: s.WarnAbove, Since: j.warnSince, At: now})
	}
	return out
}

// due returns when a check must come to report a pending Recycle: the end
// of For in a stretch above that has not fired yet.
func (j *judge) due() (time.Time, bool) {
	if j.above && !j.fired {
		return j.since.Add(j.spec.For), true
	}
	return time.Time{}, false
}
