package restart_test

import (
	"fmt"
	"time"

	"github.com/respawnd/respawnd/restart"
)

// A program that keeps crashing right after it starts restarts at once the
// first time, then waits Initial, doubling up to Max. Rand is fixed at the
// middle of its range so the example shows the delays without jitter.
func ExamplePolicy() {
	p := restart.NewPolicy(restart.PolicyConfig{
		Initial: time.Second,
		Max:     30 * time.Second,
		Burst:   -1, // no burst limit in this example
		Rand:    func() float64 { return 0.5 },
	})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 8 {
		p.Started(now)
		exit := now.Add(100 * time.Millisecond)
		d := p.Exited(now, exit)
		fmt.Printf("crash %d: restart after %v\n", d.Attempt, d.Delay)
		now = exit.Add(d.Delay)
	}
	// Output:
	// crash 1: restart after 0s
	// crash 2: restart after 1s
	// crash 3: restart after 2s
	// crash 4: restart after 4s
	// crash 5: restart after 8s
	// crash 6: restart after 16s
	// crash 7: restart after 30s
	// crash 8: restart after 30s
}

// An instance that ran at least ResetAfter ends the crash streak: its exit
// counts as a first exit and the program restarts at once.
func ExamplePolicy_resetAfter() {
	p := restart.NewPolicy(restart.PolicyConfig{
		Initial:    time.Second,
		ResetAfter: time.Minute,
		Burst:      -1,
		Rand:       func() float64 { return 0.5 },
	})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, ran := range []time.Duration{time.Second, time.Second, time.Second, 2 * time.Minute, time.Second} {
		p.Started(now)
		d := p.Exited(now, now.Add(ran))
		fmt.Printf("ran %v: attempt %d, restart after %v\n", ran, d.Attempt, d.Delay)
		now = now.Add(ran + d.Delay)
	}
	// Output:
	// ran 1s: attempt 1, restart after 0s
	// ran 1s: attempt 2, restart after 1s
	// ran 1s: attempt 3, restart after 2s
	// ran 2m0s: attempt 1, restart after 0s
	// ran 1s: attempt 2, restart after 1s
}

// With GiveUp, Burst starts within Interval are allowed and the program
// is given up instead of starting once more.
func ExamplePolicy_giveUp() {
	p := restart.NewPolicy(restart.PolicyConfig{
		Initial:  time.Second,
		Burst:    3,
		Interval: time.Minute,
		GiveUp:   true,
		Rand:     func() float64 { return 0.5 },
	})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; ; i++ {
		p.Started(now)
		d := p.Exited(now, now)
		if d.GiveUp {
			fmt.Printf("start %d: gave up (limited %v)\n", i, d.Limited)
			break
		}
		fmt.Printf("start %d: restart after %v\n", i, d.Delay)
		now = now.Add(d.Delay)
	}
	// Output:
	// start 1: restart after 0s
	// start 2: restart after 1s
	// start 3: gave up (limited true)
}

// Without GiveUp a tripped limit keeps the program restarting, Max apart,
// for as long as the starts keep exceeding the limit (like Kubernetes'
// CrashLoopBackOff). Once the window holds no more than Burst starts, the
// normal backoff applies again.
func ExamplePolicy_backoffAtMax() {
	p := restart.NewPolicy(restart.PolicyConfig{
		Initial:    100 * time.Millisecond,
		Max:        5 * time.Second,
		ResetAfter: time.Minute,
		Burst:      3,
		Interval:   10 * time.Second,
		Rand:       func() float64 { return 0.5 },
	})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 6 {
		p.Started(now)
		d := p.Exited(now, now)
		fmt.Printf("attempt %d: restart after %v (limited %v)\n", d.Attempt, d.Delay, d.Limited)
		now = now.Add(d.Delay)
	}
	// An operator starts it by hand: all history is forgotten.
	p.Reset()
	p.Started(now)
	d := p.Exited(now, now)
	fmt.Printf("after reset: attempt %d, restart after %v\n", d.Attempt, d.Delay)
	// Output:
	// attempt 1: restart after 0s (limited false)
	// attempt 2: restart after 100ms (limited false)
	// attempt 3: restart after 5s (limited true)
	// attempt 4: restart after 5s (limited true)
	// attempt 5: restart after 800ms (limited false)
	// attempt 6: restart after 5s (limited true)
	// after reset: attempt 1, restart after 0s
}

// The global limiter spaces out restarts of all programs; the caller's clock
// is used, never the wall clock.
func ExampleLimiter() {
	l := restart.NewLimiter(2, 2) // two restarts a second, two at once
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 4 {
		d, cancel := l.Reserve(now)
		fmt.Printf("restart %d waits %v\n", i, d)
		_ = cancel // call cancel(now) if the restart is abandoned
	}
	// Output:
	// restart 0 waits 0s
	// restart 1 waits 0s
	// restart 2 waits 500ms
	// restart 3 waits 1s
}
