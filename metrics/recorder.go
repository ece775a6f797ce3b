package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

// Namespace prefixes every metric respawnd exports.
const Namespace = "respawnd"

// RestartBuckets are the buckets of respawnd_restart_duration_seconds: from
// 1ms (a fork/exec on an idle host) to 10s (a restart held up by the global
// token bucket during an OOM storm), in half-decade steps. Few buckets keep
// a scrape of a thousand programs cheap.
var RestartBuckets = []float64{0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10}

// Recorder counts the events the supervisor reports. It satisfies
// supervisor.Recorder. Its methods never block for long and are safe for
// concurrent use.
type Recorder struct {
	exits          *prometheus.CounterVec
	oomKills       *prometheus.CounterVec
	restarts       *prometheus.CounterVec
	restartLatency *prometheus.HistogramVec
	hostOOMKills   prometheus.Counter

	mu sync.Mutex
	// programs is the set of configured programs; nil until SetPrograms is
	// first called, after which events of other programs are dropped (they
	// are the last words of programs removed by a reload).
	programs map[string]bool
	// seen are the programs whose series exist before SetPrograms is first
	// called.
	seen map[string]bool
}

// NewRecorder returns a Recorder; register it with a prometheus.Registerer.
func NewRecorder() *Recorder {
	return &Recorder{
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "program_exits_total",
			Help:      "Exits of a program's main process, by final reason (oom_kill, signal, exit_error, exit_success, start_failure, unknown).",
		}, []string{"program", "reason"}),
		oomKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "program_oom_kills_total",
			Help:      "OOM kills of a program's processes, workers included.",
		}, []string{"program"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "program_restarts_total",
			Help:      "Restarts of a program after an exit.",
		}, []string{"program"}),
		restartLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "restart_duration_seconds",
			Help:      "Time from a program's death being detected to its new process running.",
			Buckets:   RestartBuckets,
		}, []string{"program"}),
		hostOOMKills: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "host_oom_kills_total",
			Help:      "OOM kills on the host seen by respawnd, those of programs' processes included.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	r.exits.Describe(ch)
	r.oomKills.Describe(ch)
	r.restarts.Describe(ch)
	r.restartLatency.Describe(ch)
	r.hostOOMKills.Describe(ch)
}

// Collect implements prometheus.Collector.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	r.exits.Collect(ch)
	r.oomKills.Collect(ch)
	r.restarts.Collect(ch)
	r.restartLatency.Collect(ch)
	r.hostOOMKills.Collect(ch)
}

// SetPrograms makes names the configured programs: each gets every series
// at 0 if it has none yet, and the series of programs no longer named are
// deleted. Call it with every configuration about to be applied. Events of
// programs not named are dropped from then on.
func (r *Recorder) SetPrograms(names []string) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.programs
	if old == nil {
		old = r.seen
		r.seen = nil
	}
	for n := range old {
		if !want[n] {
			r.exits.DeletePartialMatch(prometheus.Labels{"program": n})
			r.oomKills.DeleteLabelValues(n)
			r.restarts.DeleteLabelValues(n)
			r.restartLatency.DeleteLabelValues(n)
		}
	}
	for n := range want {
		if !old[n] {
			r.initProgram(n)
		}
	}
	r.programs = want
}

// initProgram creates every series of a program at 0. The caller holds mu.
func (r *Recorder) initProgram(name string) {
	for _, reason := range supervisor.Reasons {
		r.exits.WithLabelValues(name, reason.String())
	}
	r.oomKills.WithLabelValues(name)
	r.restarts.WithLabelValues(name)
	r.restartLatency.WithLabelValues(name)
}

// known says whether events of the program are counted. Before the first
// SetPrograms call every program is, and its series are created on its
// first event.
func (r *Recorder) known(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.programs != nil {
		return r.programs[name]
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[name] {
		r.seen[name] = true
		r.initProgram(name)
	}
	return true
}

// Exited counts one exit of a program's main process, with its pid as an
// exemplar.
func (r *Recorder) Exited(e supervisor.Exit) {
	if !r.known(e.Program) {
		return
	}
	c := r.exits.WithLabelValues(e.Program, e.Reason.String())
	if e.PID == 0 {
		c.Inc()
		return
	}
	c.(prometheus.ExemplarAdder).AddWithExemplar(1, prometheus.Labels{"pid": strconv.Itoa(e.PID)})
}

// Restarted observes the time from a program's death being detected to its
// new process running.
func (r *Recorder) Restarted(program string, latency time.Duration) {
	if !r.known(program) {
		return
	}
	r.restarts.WithLabelValues(program).Inc()
	r.restartLatency.WithLabelValues(program).Observe(latency.Seconds())
}

// OOMKill counts one OOM kill on the host, and against program unless
// program is "" (a process that belongs to no program).
func (r *Recorder) OOMKill(program string, _ oom.Kill) {
	r.hostOOMKills.Inc()
	if program != "" && r.known(program) {
		r.oomKills.WithLabelValues(program).Inc()
	}
}
