package health

import (
	"context"
	"sync"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// probeFunc runs one probe within timeout. It returns ok false, and
// nothing else that matters, when ctx was done before the probe finished.
// An exec probe hands its process to w.track.
type probeFunc func(ctx context.Context, timeout time.Duration, w *watch) (r Result, reason string, ok bool)

// watch is one instance under probe. Its goroutine (run) owns the tally
// and the schedule; mu guards what stop shares with it.
type watch struct {
	c       *Checker
	program string
	h       config.Health
	kind    string // "http", "tcp" or "exec"
	probe   probeFunc
	notify  func(Event)
	ctx     context.Context
	cancel  context.CancelFunc

	// timer is the real timer of the waits between probes, made on the
	// first wait (unused with Config.After).
	timer *time.Timer

	mu      sync.Mutex
	stopped bool
	proc    *restart.Process // the exec probe in flight, nil when none
}

// stop ends the watch (see Checker.Watch).
func (w *watch) stop() {
	w.mu.Lock()
	w.stopped = true
	p := w.proc
	w.mu.Unlock()
	w.cancel()
	if p != nil {
		_ = p.Kill() // the whole group; ErrProcessDone if it just ended
	}
}

// track records p as the exec probe in flight, or nil once it was reaped.
// It reports false, after killing p, when the watch was stopped
// meanwhile: stop could not see p to kill it.
func (w *watch) track(p *restart.Process) bool {
	w.mu.Lock()
	stopped := w.stopped
	if !stopped || p == nil {
		w.proc = p
	}
	w.mu.Unlock()
	if stopped && p != nil {
		_ = p.Kill()
	}
	return !stopped
}

// report calls f (which calls notify or Observe) unless the watch was
// stopped; with the lock held, so that nothing is reported once stop has
// returned.
func (w *watch) report(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		f()
	}
}

// run probes until the watch is stopped, Run ends, or the instance is
// unhealthy. The first probe is min(Period, 1s) after start, then one at
// every period boundary after it.
func (w *watch) run(start time.Time) {
	defer w.cancel()
	defer w.stopTimer()
	log := w.c.logger.With("program", w.program, "probe", w.kind)
	t := newTally(w.h.Failures, start, w.h.StartupGrace)
	next := start.Add(min(w.h.Period, time.Second))
	for {
		if !w.sleepUntil(next) {
			return
		}
		began := w.c.now()
		r, reason, ok := w.probe(w.ctx, w.h.Timeout, w)
		if !ok {
			return
		}
		ended := w.c.now()
		w.report(func() { w.c.observe(w.program, r, ended.Sub(began)) })

		v := t.add(r, began)
		switch {
		case v.ready:
			log.Debug("health check passed for the first time")
			w.report(func() { w.notify(Event{Kind: Ready}) })
		case v.recovered > 0:
			log.Info("health check passed again", "failed_before", v.recovered)
		case r != ResultSuccess && !v.counted:
			log.Debug("health check failed during the startup grace", "result", r, "reason", reason)
		case v.counted:
			log.Warn("health check failed", "result", r, "reason", reason, "consecutive", t.failures, "failures", w.h.Failures)
		}
		if v.unhealthy {
			w.report(func() { w.notify(Event{Kind: Unhealthy, Failures: t.failures, Reason: reason}) })
			return
		}
		next = nextStart(next, ended, w.h.Period)
	}
}

// nextStart returns when the probe after the one due at prev starts, that
// one having ended at ended: the next period boundary, as a time.Ticker
// would. A probe that overran the boundary (its timeout is as long as the
// period, or killing it took a while) is followed at once by the next,
// which takes the place of the latest boundary passed; boundaries passed
// entirely during the probe are skipped. Probes never overlap.
func nextStart(prev, ended time.Time, period time.Duration) time.Time {
	next := prev.Add(period)
	if late := ended.Sub(next); late > 0 {
		next = next.Add(late / period * period)
	}
	return next
}

// sleepUntil waits until t, or until the watch ends (it returns false
// then).
func (w *watch) sleepUntil(t time.Time) bool {
	d := t.Sub(w.c.now())
	if d <= 0 {
		return w.ctx.Err() == nil
	}
	var fired <-chan time.Time
	if w.c.after != nil {
		fired = w.c.after(d)
	} else {
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		fired = w.timer.C
	}
	select {
	case <-fired:
		return w.ctx.Err() == nil
	case <-w.ctx.Done():
		return false
	}
}

func (w *watch) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
	}
}
