package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/respawnd/respawnd/supervisor"
)

// ProgramSample is one program's state at scrape time: its supervisor
// status plus memory figures that are not always known.
type ProgramSample struct {
	supervisor.Status
	// RSSBytes is the resident set of the program's process tree; HasRSS
	// says whether it was read.
	RSSBytes uint64
	HasRSS   bool
	// MemoryUsageBytes and MemoryLimitBytes are the program's memory
	// cgroup usage and hard limit, when it has a cgroup (and a limit).
	MemoryUsageBytes uint64
	HasMemoryUsage   bool
	MemoryLimitBytes uint64
	HasMemoryLimit   bool
	// WorkingSetBytes is the cgroup's usage less its inactive page cache.
	WorkingSetBytes uint64
	HasWorkingSet   bool
	// PressureSome and PressureFull are the cgroup's memory.pressure
	// totals (cgroup v2 with PSI).
	PressureSome, PressureFull time.Duration
	HasPressure                bool
	// WarnBytes and RecycleBytes are the program's warn_above and recycle
	// thresholds in bytes, when it sets them.
	WarnBytes, RecycleBytes uint64
	HasWarn, HasRecycle     bool
	// OutputDroppedLines counts the lines of the program's output that
	// could not be written (a full disk, a failed rotation), over all its
	// instances since respawnd started.
	OutputDroppedLines uint64
}

// HostMemory is the host's memory at scrape time.
type HostMemory struct {
	// AvailableBytes is MemAvailable; Known says it was read.
	AvailableBytes uint64
	Known          bool
	// Pressure holds the host's memory pressure averages as ratios
	// (0 to 1), when the kernel has PSI.
	Pressure *HostPressure
}

// HostPressure is /proc/pressure/memory's averages as ratios.
type HostPressure struct {
	Some, Full [3]float64 // avg10, avg60, avg300
}

// ReloadStatus is the outcome of the most recent configuration load.
type ReloadStatus struct {
	// Successful is false when the last load or reload was rejected.
	Successful bool
	// LastSuccess is when a configuration was last applied.
	LastSuccess time.Time
}

// Source is what the Collector reads on every scrape. Its methods are
// called from scrapes, possibly concurrently, and should be quick.
type Source interface {
	// Programs returns every configured program's sample.
	Programs() []ProgramSample
	// OOMSources says, for each OOM evidence source (kmsg, cgroup,
	// vmstat), whether it is up.
	OOMSources() map[string]bool
	// LastReload returns the outcome of the last configuration load.
	LastReload() ReloadStatus
	// Health returns the state of the supervisor itself.
	Health() Health
	// HostMemory returns the host's memory.
	HostMemory() HostMemory
}

// Health is the state of the supervisor itself.
type Health struct {
	// Panics counts the internal errors (panics) recovered in the
	// supervisor's loops since respawnd started.
	Panics uint64
	// Healthy is false while a supervisor loop does not answer.
	Healthy bool
}

// Collector exports the state read at scrape time. It is safe for
// concurrent use if its Source is.
//
// It exports dto metric families built directly (see families.go); it is
// also a prometheus.Collector for use with any registry.
type Collector struct {
	src Source
	now func() time.Time

	mu sync.Mutex
	// labels caches the label sets of the programs last seen, so that a
	// scrape builds none for programs it has seen before.
	labels map[string]*programLabels
}

// The Collector's metric families.
var (
	upFamily = newFamily("program_up", "Whether the program's main process is running and ready (1) or not (0); a program with a health check or notify.ready is ready once it passed a check or sent READY=1.",
		dto.MetricType_GAUGE, "program")
	stateFamily = newFamily("program_state", "The program's current state: 1 for the state it is in, 0 for the others.",
		dto.MetricType_GAUGE, "program", "state")
	startTimeFamily = newFamily("program_start_time_seconds", "Start time of the program's current process since the Unix epoch in seconds.",
		dto.MetricType_GAUGE, "program")
	lastExitTimeFamily = newFamily("program_last_exit_time_seconds", "Time of the program's most recent exit since the Unix epoch in seconds.",
		dto.MetricType_GAUGE, "program")
	backoffFamily = newFamily("program_backoff_seconds", "Delay before the program's next start, 0 when none is pending.",
		dto.MetricType_GAUGE, "program")
	rssFamily = newFamily("program_memory_rss_bytes", "Resident set size of the program's process tree in bytes.",
		dto.MetricType_GAUGE, "program")
	memUsageFamily = newFamily("program_memory_usage_bytes", "Memory usage of the program's memory cgroup in bytes.",
		dto.MetricType_GAUGE, "program")
	memLimitFamily = newFamily("program_memory_limit_bytes", "Hard memory limit of the program's memory cgroup in bytes.",
		dto.MetricType_GAUGE, "program")
	workingSetFamily = newFamily("program_memory_working_set_bytes", "Memory usage of the program's memory cgroup less its inactive page cache in bytes, as kubelet computes the working set.",
		dto.MetricType_GAUGE, "program")
	warnFamily = newFamily("program_memory_warn_bytes", "The program's memory warning threshold (memory.warn_above) in bytes.",
		dto.MetricType_GAUGE, "program")
	recycleFamily = newFamily("program_memory_recycle_bytes", "The program's memory recycle threshold (memory.recycle.above) in bytes.",
		dto.MetricType_GAUGE, "program")
	pressureFamily = newFamily("program_memory_pressure_seconds_total", "Time in which some (kind=\"some\") or all (kind=\"full\") of the program's tasks stalled on memory (memory.pressure of its cgroup, cgroup v2 only) in seconds.",
		dto.MetricType_COUNTER, "program", "kind")
	outputDroppedFamily = newFamily("program_output_dropped_lines_total", "Lines of the program's output that could not be written to its output file or to respawnd's output (a full disk, an I/O error, a failed rotation) and were dropped.",
		dto.MetricType_COUNTER, "program")
	readyFamily = newFamily("program_ready", "Whether the program is ready (1) or not (0): it sent READY=1 (notify.ready) or passed a health check (health); a running program with neither is ready.",
		dto.MetricType_GAUGE, "program")
	watchdogPingFamily = newFamily("program_watchdog_last_ping_timestamp_seconds", "Time the program last sent WATCHDOG=1 (or its watchdog started) since the Unix epoch in seconds, for a program with notify.watchdog.",
		dto.MetricType_GAUGE, "program")
	heldFamily = newFamily("program_restart_held", "Whether the program's restart is held (1) until the host's memory recovers from an OOM, or not (0).",
		dto.MetricType_GAUGE, "program")
	hostAvailableFamily = newFamily("host_memory_available_bytes", "Memory available on the host for new allocations without swapping (MemAvailable in /proc/meminfo) in bytes.",
		dto.MetricType_GAUGE)
	hostPressureFamily = newFamily("host_memory_pressure_ratio", "Share of time in which some (kind=\"some\") or all (kind=\"full\") non-idle tasks of the host stalled on memory, averaged over the window (avg10, avg60 and avg300 of /proc/pressure/memory, as a ratio).",
		dto.MetricType_GAUGE, "kind", "window")
	oomSourceUpFamily = newFamily("oom_source_up", "Whether an OOM evidence source (kmsg, cgroup, vmstat) is working.",
		dto.MetricType_GAUGE, "source")
	reloadSuccessfulFamily = newFamily("config_last_reload_successful",
		"Whether the last configuration load or reload was successful.", dto.MetricType_GAUGE)
	reloadSuccessTimestampFamily = newFamily("config_last_reload_success_timestamp_seconds",
		"Time of the last successful configuration load or reload since the Unix epoch in seconds.", dto.MetricType_GAUGE)
	panicsFamily = newFamily("internal_panics_total",
		"Internal errors (panics) recovered in the supervisor's loops; each is logged with its stack.", dto.MetricType_COUNTER)
	healthyFamily = newFamily("supervisor_healthy",
		"Whether every supervisor loop answers its health check (1) or one is stuck (0).", dto.MetricType_GAUGE)

	collectorFamilyList = []*family{upFamily, stateFamily, startTimeFamily, lastExitTimeFamily, backoffFamily,
		rssFamily, memUsageFamily, memLimitFamily, workingSetFamily, warnFamily, recycleFamily, pressureFamily, heldFamily,
		readyFamily, watchdogPingFamily, outputDroppedFamily, hostAvailableFamily, hostPressureFamily, oomSourceUpFamily, reloadSuccessfulFamily, reloadSuccessTimestampFamily,
		panicsFamily, healthyFamily}
	collectorFamilies = familyIndex(collectorFamilyList...)
)

// CollectorConfig configures a Collector. Source is required; a nil Now
// means time.Now.
type CollectorConfig struct {
	Source Source
	Now    func() time.Time
}

// NewCollector returns a Collector reading from cfg.Source.
func NewCollector(cfg CollectorConfig) *Collector {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Collector{src: cfg.Source, now: cfg.Now, labels: map[string]*programLabels{}}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range collectorFamilyList {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := c.families()
	collectFamilies(ch, collectorFamilies, mfs)
}

// programLabels returns the label sets of the programs of ps, in order,
// and forgets those of programs no longer there.
func (c *Collector) programLabels(ps []*ProgramSample) []*programLabels {
	out := make([]*programLabels, len(ps))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range ps {
		l := c.labels[p.Name]
		if l == nil {
			l = newProgramLabels(p.Name)
			c.labels[p.Name] = l
		}
		out[i] = l
	}
	if len(c.labels) > 2*len(ps)+16 {
		c.labels = make(map[string]*programLabels, len(ps))
		for _, l := range out {
			c.labels[l.name] = l
		}
	}
	return out
}

// families returns the Collector's metric families, sorted by name, each
// with its metrics in the order a Registry would sort them into. Programs
// whose name is not a valid label value, and all but the first of
// programs with the same name, are left out with an error.
func (c *Collector) families() ([]*dto.MetricFamily, error) {
	now := c.now()
	samples := c.src.Programs()
	ps := make([]*ProgramSample, 0, len(samples))
	var errs []error
	for i := range samples {
		if !validLabelValue(samples[i].Name) {
			errs = append(errs, fmt.Errorf("program name %q is not a valid label value", samples[i].Name))
			continue
		}
		ps = append(ps, &samples[i])
	}
	byName := func(a, b *ProgramSample) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(ps, byName) {
		slices.SortStableFunc(ps, byName)
	}
	ps = slices.CompactFunc(ps, func(a, b *ProgramSample) bool {
		if a.Name != b.Name {
			return false
		}
		errs = append(errs, fmt.Errorf("program %q reported twice", b.Name))
		return true
	})
	labels := c.programLabels(ps)

	n := len(ps)
	a := newArena(n*(len(sortedStates)+17) + 16)
	up, state := upFamily.start(n), stateFamily.start(n*len(sortedStates))
	startTime, lastExitTime, backoff := startTimeFamily.start(n), lastExitTimeFamily.start(n), backoffFamily.start(n)
	rss, memUsage, memLimit := rssFamily.start(n), memUsageFamily.start(n), memLimitFamily.start(n)
	var pressureSome []*dto.Metric // after every full series, as a Registry sorts them
	workingSet, warn, recycle, pressure, held := workingSetFamily.start(n), warnFamily.start(0), recycleFamily.start(0), pressureFamily.start(0), heldFamily.start(n)
	dropped := outputDroppedFamily.start(n)
	ready, ping := readyFamily.start(n), watchdogPingFamily.start(0)
	for i, p := range ps {
		l := labels[i]
		up.Metric = append(up.Metric, a.gauge(l.program(), boolValue(p.PID != 0 && p.State == supervisor.StateRunning && p.Ready)))
		ready.Metric = append(ready.Metric, a.gauge(l.program(), boolValue(p.PID != 0 && p.Ready)))
		if p.PID != 0 && !p.WatchdogLastPing.IsZero() {
			ping.Metric = append(ping.Metric, a.gauge(l.program(), unixSeconds(p.WatchdogLastPing)))
		}
		cur := p.State.String()
		for j, s := range sortedStates {
			state.Metric = append(state.Metric, a.gauge(l.state(j), boolValue(s == cur)))
		}
		var start float64
		if p.PID != 0 && !p.Started.IsZero() {
			start = unixSeconds(p.Started)
		}
		startTime.Metric = append(startTime.Metric, a.gauge(l.program(), start))
		var lastExit float64
		if p.LastExit != nil && !p.LastExit.Time.IsZero() {
			lastExit = unixSeconds(p.LastExit.Time)
		}
		lastExitTime.Metric = append(lastExitTime.Metric, a.gauge(l.program(), lastExit))
		var wait float64
		if (p.State == supervisor.StateBackoff || p.State == supervisor.StateOOMLoop) && p.NextStart.After(now) {
			wait = p.NextStart.Sub(now).Seconds()
		}
		backoff.Metric = append(backoff.Metric, a.gauge(l.program(), wait))
		a.gaugeIf(rss, l.program(), p.HasRSS, p.RSSBytes)
		a.gaugeIf(memUsage, l.program(), p.HasMemoryUsage, p.MemoryUsageBytes)
		a.gaugeIf(memLimit, l.program(), p.HasMemoryLimit, p.MemoryLimitBytes)
		a.gaugeIf(workingSet, l.program(), p.HasWorkingSet, p.WorkingSetBytes)
		a.gaugeIf(warn, l.program(), p.HasWarn, p.WarnBytes)
		a.gaugeIf(recycle, l.program(), p.HasRecycle, p.RecycleBytes)
		if p.HasPressure {
			pressure.Metric = append(pressure.Metric, a.counter(l.kind(0), p.PressureFull.Seconds(), nil))
			pressureSome = append(pressureSome, a.counter(l.kind(1), p.PressureSome.Seconds(), nil))
		}
		held.Metric = append(held.Metric, a.gauge(l.program(), boolValue(p.State == supervisor.StateHeld)))
		dropped.Metric = append(dropped.Metric, a.counter(l.program(), float64(p.OutputDroppedLines), nil))
	}

	pressure.Metric = append(pressure.Metric, pressureSome...)

	hm := c.src.HostMemory()
	hostAvail := hostAvailableFamily.start(1)
	if hm.Known {
		hostAvail.Metric = append(hostAvail.Metric, a.gauge(nil, float64(hm.AvailableBytes)))
	}
	hostPressure := hostPressureFamily.start(6)
	if hp := hm.Pressure; hp != nil {
		for i, kind := range []*[3]float64{&hp.Full, &hp.Some} {
			for j, avg := range windowAvg {
				hostPressure.Metric = append(hostPressure.Metric, a.gauge(hostPressurePairs[i][j], kind[avg]))
			}
		}
	}

	srcs := c.src.OOMSources()
	oomUp := oomSourceUpFamily.start(len(srcs))
	names := make([]string, 0, len(srcs))
	for name := range srcs {
		if !validLabelValue(name) {
			errs = append(errs, fmt.Errorf("OOM source %q is not a valid label value", name))
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for i := range names {
		lp := []*dto.LabelPair{{Name: &labelSource, Value: &names[i]}}
		oomUp.Metric = append(oomUp.Metric, a.gauge(lp, boolValue(srcs[names[i]])))
	}

	r := c.src.LastReload()
	ok := reloadSuccessfulFamily.start(1)
	ok.Metric = append(ok.Metric, a.gauge(nil, boolValue(r.Successful)))
	var last float64
	if !r.LastSuccess.IsZero() {
		last = unixSeconds(r.LastSuccess)
	}
	lastOK := reloadSuccessTimestampFamily.start(1)
	lastOK.Metric = append(lastOK.Metric, a.gauge(nil, last))

	h := c.src.Health()
	panics := panicsFamily.start(1)
	panics.Metric = append(panics.Metric, a.counter(nil, float64(h.Panics), nil))
	healthy := healthyFamily.start(1)
	healthy.Metric = append(healthy.Metric, a.gauge(nil, boolValue(h.Healthy)))

	mfs := []*dto.MetricFamily{up, state, startTime, lastExitTime, backoff, rss, memUsage, memLimit, workingSet, warn, recycle, pressure, held, ready, ping, dropped, hostAvail, hostPressure, oomUp, ok, lastOK, panics, healthy}
	mfs = slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return len(mf.Metric) == 0 })
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, errors.Join(errs...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// windowPairs are the {window} label pairs, sorted as a Registry sorts
// them, and windowAvg the index in HostPressure's arrays of each;
// hostPressurePairs are the {kind, window} sets of the host's pressure
// ratios (full, then some).
var (
	windowPairs       = labelPairs(&labelWindow, []string{"10s", "300s", "60s"})
	windowAvg         = [3]int{0, 2, 1}
	hostPressurePairs = func() [2][3][]*dto.LabelPair {
		var out [2][3][]*dto.LabelPair
		for i := range kindPairs {
			for j := range windowPairs {
				out[i][j] = []*dto.LabelPair{kindPairs[i], windowPairs[j]}
			}
		}
		return out
	}()
)
