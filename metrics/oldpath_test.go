package metrics

// This file keeps the metrics code as it was before the per-program
// families were built directly (the client_golang CounterVec, HistogramVec
// and MustNewConstMetric path), as the reference that
// TestFamiliesMatchOldPath compares the direct families with.
//
// It shares nothing with the code under test: the namespace, the buckets,
// the reason and state label values, every name and help text are written
// out here, from the metrics issue and the README, so that a wrong name,
// help text, label or bucket in the code shows up as a difference.

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

const oldNamespace = "respawnd"

// oldRestartBuckets span 1 ms to 10 s (README: "buckets 1 ms … 10 s").
var oldRestartBuckets = []float64{0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10}

// oldReasons and oldStates are the label values the metrics issue fixes.
var (
	oldReasons     = []string{"oom_kill", "signal", "exit_error", "exit_success", "start_failure", "memory_recycle", "health_check", "watchdog", "unknown"}
	oldHookResults = []string{"success", "failure", "timeout", "start_failure", "skipped"}
	oldStates      = []string{"starting", "running", "backoff", "stopping", "stopped", "exited", "fatal", "held_for_memory", "oom_loop"}
)

// oldRecorder counts the events the supervisor reports. It satisfies
// supervisor.oldRecorder. Its methods never block for long and are safe for
// concurrent use.
type oldRecorder struct {
	exits          *prometheus.CounterVec
	oomKills       *prometheus.CounterVec
	restarts       *prometheus.CounterVec
	recycles       *prometheus.CounterVec
	recycleLoops   *prometheus.CounterVec
	hookRuns       *prometheus.CounterVec
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

// newOldRecorder returns a oldRecorder; register it with a prometheus.Registerer.
func newOldRecorder() *oldRecorder {
	return &oldRecorder{
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "program_exits_total",
			Help:      "Exits of a program's main process, by final reason (oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown).",
		}, []string{"program", "reason"}),
		oomKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "program_oom_kills_total",
			Help:      "OOM kills of a program's processes, workers included.",
		}, []string{"program"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "program_restarts_total",
			Help:      "Restarts of a program after an exit.",
		}, []string{"program"}),
		recycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "program_memory_recycles_total",
			Help:      "Graceful restarts of a program because its memory stayed above its recycle threshold (memory.recycle).",
		}, []string{"program"}),
		recycleLoops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "program_memory_recycle_loops_total",
			Help:      "Times a program recycled for memory more than 3 times within restart.reset_after, after which its restarts go through the crash backoff; a program's series appears with its first.",
		}, []string{"program"}),
		hookRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "hook_runs_total",
			Help:      "Runs of a program's on_exit hook, by result (success, failure, timeout, start_failure, skipped); a program's series appear with its first.",
		}, []string{"program", "result"}),
		restartLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: oldNamespace,
			Name:      "restart_duration_seconds",
			Help:      "Time from a program's death being detected to its new process running, less the wait on purpose (backoff, restart bucket, memory hold) that respawnd_restart_wait_seconds counts; a program's series appear with its first restart.",
			Buckets:   oldRestartBuckets,
		}, []string{"program"}),
		hostOOMKills: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: oldNamespace,
			Name:      "host_oom_kills_total",
			Help:      "OOM kills on the host seen by respawnd, those of programs' processes included.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (r *oldRecorder) Describe(ch chan<- *prometheus.Desc) {
	r.exits.Describe(ch)
	r.oomKills.Describe(ch)
	r.restarts.Describe(ch)
	r.recycles.Describe(ch)
	r.recycleLoops.Describe(ch)
	r.hookRuns.Describe(ch)
	r.restartLatency.Describe(ch)
	r.hostOOMKills.Describe(ch)
}

// Collect implements prometheus.Collector.
func (r *oldRecorder) Collect(ch chan<- prometheus.Metric) {
	r.exits.Collect(ch)
	r.oomKills.Collect(ch)
	r.restarts.Collect(ch)
	r.recycles.Collect(ch)
	r.recycleLoops.Collect(ch)
	r.hookRuns.Collect(ch)
	r.restartLatency.Collect(ch)
	r.hostOOMKills.Collect(ch)
}

// SetPrograms makes names the configured programs: each gets every series
// at 0 if it has none yet, and the series of programs no longer named are
// deleted. Call it with every configuration about to be applied. Events of
// programs not named are dropped from then on.
func (r *oldRecorder) SetPrograms(names []string) {
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
			r.recycles.DeleteLabelValues(n)
			r.recycleLoops.DeleteLabelValues(n)
			r.hookRuns.DeletePartialMatch(prometheus.Labels{"program": n})
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
func (r *oldRecorder) initProgram(name string) {
	for _, reason := range oldReasons {
		r.exits.WithLabelValues(name, reason)
	}
	r.oomKills.WithLabelValues(name)
	r.restarts.WithLabelValues(name)
	r.recycles.WithLabelValues(name)
}

func (r *oldRecorder) HookRun(program, result string) {
	if !slices.Contains(oldHookResults, result) || !r.known(program) {
		return
	}
	for _, res := range oldHookResults {
		r.hookRuns.WithLabelValues(program, res)
	}
	r.hookRuns.WithLabelValues(program, result).Inc()
}

func (r *oldRecorder) RecycleLoop(program string) {
	if r.known(program) {
		r.recycleLoops.WithLabelValues(program).Inc()
	}
}

// known says whether events of the program are counted. Before the first
// SetPrograms call every program is, and its series are created on its
// first event.
func (r *oldRecorder) known(name string) bool {
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
func (r *oldRecorder) Exited(e supervisor.Exit) {
	if !r.known(e.Program) {
		return
	}
	if e.Reason == supervisor.ReasonMemoryRecycle {
		r.recycles.WithLabelValues(e.Program).Inc()
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
func (r *oldRecorder) Restarted(program string, latency time.Duration) {
	if !r.known(program) {
		return
	}
	r.restarts.WithLabelValues(program).Inc()
	r.restartLatency.WithLabelValues(program).Observe(latency.Seconds())
}

// OOMKill counts one OOM kill on the host, and against program unless
// program is "" (a process that belongs to no program).
func (r *oldRecorder) OOMKill(program string, _ oom.Kill) {
	r.hostOOMKills.Inc()
	if program != "" && r.known(program) {
		r.oomKills.WithLabelValues(program).Inc()
	}
}

// oldCollector exports the state read at scrape time. It is safe for
// concurrent use if its Source is.
type oldCollector struct {
	src Source
	now func() time.Time

	up, state, startTime, lastExitTime, backoff  *prometheus.Desc
	rss, memUsage, memLimit, oomSourceUp         *prometheus.Desc
	reloadSuccessful, reloadSuccessTimestampSecs *prometheus.Desc
	panics, healthy                              *prometheus.Desc
	workingSet, warn, recycle, pressure, held    *prometheus.Desc
	dropped, ready, ping                         *prometheus.Desc
	hostAvailable, hostPressure                  *prometheus.Desc
}

// oldCollectorConfig configures a Collector. Source is required; a nil Now
// means time.Now.
type oldCollectorConfig struct {
	Source Source
	Now    func() time.Time
}

// newOldCollector returns a Collector reading from cfg.Source.
func newOldCollector(cfg oldCollectorConfig) *oldCollector {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	program := []string{"program"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(oldNamespace, "", name), help, labels, nil)
	}
	return &oldCollector{
		src:          cfg.Source,
		now:          cfg.Now,
		up:           d("program_up", "Whether the program's main process is running and ready (1) or not (0); a program with a health check or notify.ready is ready once it passed a check or sent READY=1.", program...),
		state:        d("program_state", "The program's current state: 1 for the state it is in, 0 for the others.", "program", "state"),
		startTime:    d("program_start_time_seconds", "Start time of the program's current process since the Unix epoch in seconds.", program...),
		lastExitTime: d("program_last_exit_time_seconds", "Time of the program's most recent exit since the Unix epoch in seconds.", program...),
		backoff:      d("program_backoff_seconds", "Delay before the program's next start, 0 when none is pending.", program...),
		rss:          d("program_memory_rss_bytes", "Resident set size of the program's process tree in bytes.", program...),
		memUsage:     d("program_memory_usage_bytes", "Memory usage of the program's memory cgroup in bytes.", program...),
		memLimit:     d("program_memory_limit_bytes", "Hard memory limit of the program's memory cgroup in bytes.", program...),
		oomSourceUp:  d("oom_source_up", "Whether an OOM evidence source (kmsg, cgroup, vmstat) is working.", "source"),
		reloadSuccessful: d("config_last_reload_successful",
			"Whether the last configuration load or reload was successful."),
		reloadSuccessTimestampSecs: d("config_last_reload_success_timestamp_seconds",
			"Time of the last successful configuration load or reload since the Unix epoch in seconds."),
		panics:        d("internal_panics_total", "Internal errors (panics) recovered in the supervisor's loops; each is logged with its stack."),
		healthy:       d("supervisor_healthy", "Whether every supervisor loop answers its health check (1) or one is stuck (0)."),
		workingSet:    d("program_memory_working_set_bytes", "Memory usage of the program's memory cgroup less its inactive page cache in bytes, as kubelet computes the working set.", program...),
		warn:          d("program_memory_warn_bytes", "The program's memory warning threshold (memory.warn_above) in bytes.", program...),
		recycle:       d("program_memory_recycle_bytes", "The program's memory recycle threshold (memory.recycle.above) in bytes.", program...),
		pressure:      d("program_memory_pressure_seconds_total", "Time in which some (kind=\"some\") or all (kind=\"full\") of the program's tasks stalled on memory (memory.pressure of its cgroup, cgroup v2 only) in seconds.", "program", "kind"),
		ready:         d("program_ready", "Whether the program is ready (1) or not (0): it sent READY=1 (notify.ready) or passed a health check (health); a running program with neither is ready.", program...),
		ping:          d("program_watchdog_last_ping_timestamp_seconds", "Time the program last sent WATCHDOG=1 (or its watchdog started) since the Unix epoch in seconds, for a program with notify.watchdog.", program...),
		dropped:       d("program_output_dropped_lines_total", "Lines of the program's output that could not be written to its output file or to respawnd's output (a full disk, an I/O error, a failed rotation) and were dropped.", program...),
		held:          d("program_restart_held", "Whether the program's restart is held (1) until the host's memory recovers from an OOM, or not (0).", program...),
		hostAvailable: d("host_memory_available_bytes", "Memory available on the host for new allocations without swapping (MemAvailable in /proc/meminfo) in bytes."),
		hostPressure:  d("host_memory_pressure_ratio", "Share of time in which some (kind=\"some\") or all (kind=\"full\") non-idle tasks of the host stalled on memory, averaged over the window (avg10, avg60 and avg300 of /proc/pressure/memory, as a ratio).", "kind", "window"),
	}
}

// Describe implements prometheus.Collector.
func (c *oldCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.state, c.startTime, c.lastExitTime, c.backoff, c.rss, c.memUsage, c.memLimit, c.oomSourceUp, c.reloadSuccessful, c.reloadSuccessTimestampSecs, c.panics, c.healthy, c.workingSet, c.warn, c.recycle, c.pressure, c.held, c.ready, c.ping, c.dropped, c.hostAvailable, c.hostPressure} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *oldCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, p := range c.src.Programs() {
		c.collectProgram(ch, p, now)
	}
	for name, up := range c.src.OOMSources() {
		ch <- prometheus.MustNewConstMetric(c.oomSourceUp, prometheus.GaugeValue, oldBoolValue(up), name)
	}
	r := c.src.LastReload()
	ch <- prometheus.MustNewConstMetric(c.reloadSuccessful, prometheus.GaugeValue, oldBoolValue(r.Successful))
	var last float64
	if !r.LastSuccess.IsZero() {
		last = oldUnixSeconds(r.LastSuccess)
	}
	ch <- prometheus.MustNewConstMetric(c.reloadSuccessTimestampSecs, prometheus.GaugeValue, last)
	hm := c.src.HostMemory()
	if hm.Known {
		ch <- prometheus.MustNewConstMetric(c.hostAvailable, prometheus.GaugeValue, float64(hm.AvailableBytes))
	}
	if hp := hm.Pressure; hp != nil {
		for i, w := range []string{"10s", "60s", "300s"} {
			ch <- prometheus.MustNewConstMetric(c.hostPressure, prometheus.GaugeValue, hp.Some[i], "some", w)
			ch <- prometheus.MustNewConstMetric(c.hostPressure, prometheus.GaugeValue, hp.Full[i], "full", w)
		}
	}
	h := c.src.Health()
	ch <- prometheus.MustNewConstMetric(c.panics, prometheus.CounterValue, float64(h.Panics))
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, oldBoolValue(h.Healthy))
}

func (c *oldCollector) collectProgram(ch chan<- prometheus.Metric, p ProgramSample, now time.Time) {
	name := p.Name
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	state := p.State.String()
	gauge(c.up, oldBoolValue(p.PID != 0 && state == "running" && p.Ready))
	gauge(c.ready, oldBoolValue(p.PID != 0 && p.Ready))
	if p.PID != 0 && !p.WatchdogLastPing.IsZero() {
		gauge(c.ping, oldUnixSeconds(p.WatchdogLastPing))
	}
	for _, s := range oldStates {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, oldBoolValue(s == state), name, s)
	}
	var start float64
	if p.PID != 0 && !p.Started.IsZero() {
		start = oldUnixSeconds(p.Started)
	}
	gauge(c.startTime, start)
	var lastExit float64
	if p.LastExit != nil && !p.LastExit.Time.IsZero() {
		lastExit = oldUnixSeconds(p.LastExit.Time)
	}
	gauge(c.lastExitTime, lastExit)
	var backoff float64
	if (state == "backoff" || state == "oom_loop") && p.NextStart.After(now) {
		backoff = p.NextStart.Sub(now).Seconds()
	}
	gauge(c.backoff, backoff)
	if p.HasRSS {
		gauge(c.rss, float64(p.RSSBytes))
	}
	if p.HasMemoryUsage {
		gauge(c.memUsage, float64(p.MemoryUsageBytes))
	}
	if p.HasMemoryLimit {
		gauge(c.memLimit, float64(p.MemoryLimitBytes))
	}
	if p.HasWorkingSet {
		gauge(c.workingSet, float64(p.WorkingSetBytes))
	}
	if p.HasWarn {
		gauge(c.warn, float64(p.WarnBytes))
	}
	if p.HasRecycle {
		gauge(c.recycle, float64(p.RecycleBytes))
	}
	if p.HasPressure {
		ch <- prometheus.MustNewConstMetric(c.pressure, prometheus.CounterValue, p.PressureSome.Seconds(), name, "some")
		ch <- prometheus.MustNewConstMetric(c.pressure, prometheus.CounterValue, p.PressureFull.Seconds(), name, "full")
	}
	gauge(c.held, oldBoolValue(state == "held_for_memory"))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(p.OutputDroppedLines), name)
}

func oldBoolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func oldUnixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
