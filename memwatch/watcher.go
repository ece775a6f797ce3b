package memwatch

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Watcher. Zero values mean defaults.
type Config struct {
	// SampleInterval is how often every program is measured whatever the
	// kernel signals; default 1s.
	SampleInterval time.Duration
	// Now is the clock the decisions use (Event.Since and Event.At, and
	// Spec.For); default time.Now. Wake-ups are timed by the kernel's
	// monotonic clock.
	Now func() time.Time
	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
	// Notify receives every Event, on the goroutine of Run, with no lock
	// held: it may call Add, Update and the remove functions, but it must
	// not block, or every program's checks wait. nil drops the events.
	Notify func(Event)
	// SampleOnly turns the kernel's signals off (memory.events, PSI
	// triggers, v1 usage thresholds): programs are measured every
	// SampleInterval only. For comparison and for kernels where the
	// signals misbehave.
	SampleOnly bool
}

func (c Config) withDefaults() (Config, error) {
	if c.SampleInterval < 0 {
		return c, fmt.Errorf("%w config: negative sample interval %s", ErrInvalid, c.SampleInterval)
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Notify == nil {
		c.Notify = func(Event) {}
	}
	return c, nil
}

// Target is what a program's memory is read from: its cgroup (Dir and V2),
// or, for an adopted process without a cgroup of its own, a Sample
// function. Exactly one of Dir and Sample is set.
type Target struct {
	// Dir is the cgroup's directory on the cgroup filesystem.
	Dir string
	// V2 says Dir is on a cgroup v2 hierarchy; otherwise it is in the v1
	// memory hierarchy.
	V2 bool
	// Sample returns the program's measure in bytes (respawnd passes the
	// summed RSS of the process tree). It is called on the Watcher's
	// goroutine every SampleInterval, so it must be quick and must not call
	// the Watcher.
	Sample func() (uint64, error)
}

func (t Target) validate() error {
	switch {
	case t.Dir == "" && t.Sample == nil:
		return fmt.Errorf("%w target: neither a cgroup directory nor a sample function", ErrInvalid)
	case t.Dir != "" && t.Sample != nil:
		return fmt.Errorf("%w target: both a cgroup directory and a sample function", ErrInvalid)
	}
	return nil
}
