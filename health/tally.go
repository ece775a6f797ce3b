package health

import "time"

// tally counts one watch's consecutive failures. It is pure logic, owned
// by the watch's goroutine.
type tally struct {
	// limit is how many consecutive counted failures make the instance
	// unhealthy.
	limit int
	// graceEnd is the end of the startup grace: failures of probes that
	// began before it do not count until a probe has passed.
	graceEnd time.Time
	// passed says a probe has passed: Ready was reported and the grace is
	// over.
	passed bool
	// failures is the count of consecutive counted failures.
	failures int
}

// verdict is what one probe result means for the watch.
type verdict struct {
	// ready: this was the first probe that passed.
	ready bool
	// recovered is how many consecutive counted failures a passing probe
	// ended; 0 when none.
	recovered int
	// counted says a failure counted (it was not in the grace).
	counted bool
	// unhealthy says the count reached the limit.
	unhealthy bool
}

// newTally returns the tally of a watch that started at start.
func newTally(limit int, start time.Time, grace time.Duration) tally {
	return tally{limit: limit, graceEnd: start.Add(grace)}
}

// add takes the result of a probe that began at began.
func (t *tally) add(r Result, began time.Time) verdict {
	var v verdict
	if r == ResultSuccess {
		v.ready = !t.passed
		v.recovered = t.failures
		t.passed = true
		t.failures = 0
		return v
	}
	if !t.passed && began.Before(t.graceEnd) {
		return v
	}
	t.failures++
	v.counted = true
	v.unhealthy = t.failures >= t.limit
	return v
}
