package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HealthCheckBuckets are the buckets of
// respawnd_program_health_check_duration_seconds: from 1ms (a local TCP
// connect) to 10s (a slow exec probe at a long timeout).
var HealthCheckBuckets = []float64{0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10}

// HealthResults are the result label values of
// respawnd_program_health_checks_total (the health package's results).
var HealthResults = []string{"success", "failure", "timeout"}

// NotifyRejections are the reason label values of
// respawnd_notify_rejected_total: why an sd_notify datagram was dropped.
var NotifyRejections = []string{"foreign_sender", "foreign_mainpid", "no_credentials", "malformed", "truncated"}

// RestartWaitBuckets are the buckets of respawnd_restart_wait_seconds: from
// 0 (a restart at once) to an hour, past the default backoff.max (30s) and
// oom_hold_max (2m); longer configured waits land in +Inf.
var RestartWaitBuckets = []float64{0, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3600}

// vecs holds the series kept with client_golang's vectors: health checks,
// sd_notify and restart waits. They are few (programs with checks, programs
// that restarted) and change at event rate, not at scrape rate.
type vecs struct {
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rejected *prometheus.CounterVec
	wait     *prometheus.HistogramVec
}

func newVecs() vecs {
	return vecs{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "restart_wait_seconds",
			Help:    "Time a program waited on purpose between a death and its restart: the crash backoff, a token of the global restart bucket, a hold until the host's memory recovered; 0 for a restart at once. A program's series appear with its first restart.",
			Buckets: RestartWaitBuckets,
		}, []string{"program"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "program_health_checks_total",
			Help: "Health checks of a program, by result (success, failure, timeout); the series of a program with a health section start at 0.",
		}, []string{"program", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "program_health_check_duration_seconds",
			Help:    "Time a program's health check took, up to its timeout.",
			Buckets: HealthCheckBuckets,
		}, []string{"program"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "notify_rejected_total",
			Help: "sd_notify datagrams dropped, by reason (foreign_sender: not from the program's processes; foreign_mainpid: MAINPID outside the program; no_credentials, malformed, truncated).",
		}, []string{"program", "reason"}),
	}
}

func (l vecs) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.checks, l.duration, l.rejected, l.wait}
}

// forget deletes a removed program's series.
func (l vecs) forget(program string) {
	m := prometheus.Labels{"program": program}
	l.checks.DeletePartialMatch(m)
	l.duration.DeletePartialMatch(m)
	l.rejected.DeletePartialMatch(m)
	l.wait.DeletePartialMatch(m)
}

// RestartWaited observes how long program waited on purpose before a
// restart (see RestartWaitBuckets).
func (r *Recorder) RestartWaited(program string, wait time.Duration) {
	if r.known(program) {
		r.live.wait.WithLabelValues(program).Observe(max(0, wait.Seconds()))
	}
}

// HealthCheck counts one health check of program with result (one of
// HealthResults; others are dropped) and observes how long it took.
func (r *Recorder) HealthCheck(program, result string, took time.Duration) {
	if !slices.Contains(HealthResults, result) || !r.known(program) {
		return
	}
	r.live.checks.WithLabelValues(program, result).Inc()
	r.live.duration.WithLabelValues(program).Observe(took.Seconds())
}

// NotifyRejected counts one sd_notify datagram of program dropped for
// reason, one of NotifyRejections (others are dropped).
func (r *Recorder) NotifyRejected(program, reason string) {
	if !slices.Contains(NotifyRejections, reason) || !r.known(program) {
		return
	}
	r.live.rejected.WithLabelValues(program, reason).Inc()
}

// SetLiveness starts at 0 the health check series of the programs named
// in probed (those with a health section) and the sd_notify rejection
// series of those in notifying (with a notify section), so that alerts on
// their increase see the first one. Call it after SetPrograms.
func (r *Recorder) SetLiveness(probed, notifying []string) {
	for _, n := range probed {
		if r.known(n) {
			for _, res := range HealthResults {
				r.live.checks.WithLabelValues(n, res)
			}
		}
	}
	for _, n := range notifying {
		if r.known(n) {
			for _, why := range NotifyRejections {
				r.live.rejected.WithLabelValues(n, why)
			}
		}
	}
}

// known reports whether program's events are counted (see counters).
func (r *Recorder) known(program string) bool {
	if !validLabelValue(program) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counters(program) != nil
}
