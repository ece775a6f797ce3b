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
	upFamily = newFamily("program_up", "Whether the program's main process is running (1) or not (0).",
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
		rssFamily, memUsageFamily, memLimitFamily, oomSourceUpFamily, reloadSuccessfulFamily, reloadSuccessTimestampFamily,
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
	a := newArena(n*(len(sortedStates)+7) + 8)
	up, state := upFamily.start(n), stateFamily.start(n*len(sortedStates))
	startTime, lastExitTime, backoff := startTimeFamily.start(n), lastExitTimeFamily.start(n), backoffFamily.start(n)
	rss, memUsage, memLimit := rssFamily.start(n), memUsageFamily.start(n), memLimitFamily.start(n)
	for i, p := range ps {
		l := labels[i]
		up.Metric = append(up.Metric, a.gauge(l.program, boolValue(p.PID != 0 && p.State == supervisor.StateRunning)))
		cur := p.State.String()
		for j, s := range sortedStates {
			state.Metric = append(state.Metric, a.gauge(l.states[j], boolValue(s == cur)))
		}
		var start float64
		if p.PID != 0 && !p.Started.IsZero() {
			start = unixSeconds(p.Started)
		}
		startTime.Metric = append(startTime.Metric, a.gauge(l.program, start))
		var lastExit float64
		if p.LastExit != nil && !p.LastExit.Time.IsZero() {
			lastExit = unixSeconds(p.LastExit.Time)
		}
		lastExitTime.Metric = append(lastExitTime.Metric, a.gauge(l.program, lastExit))
		var wait float64
		if p.State == supervisor.StateBackoff && p.NextStart.After(now) {
			wait = p.NextStart.Sub(now).Seconds()
		}
		backoff.Metric = append(backoff.Metric, a.gauge(l.program, wait))
		if p.HasRSS {
			rss.Metric = append(rss.Metric, a.gauge(l.program, float64(p.RSSBytes)))
		}
		if p.HasMemoryUsage {
			memUsage.Metric = append(memUsage.Metric, a.gauge(l.program, float64(p.MemoryUsageBytes)))
		}
		if p.HasMemoryLimit {
			memLimit.Metric = append(memLimit.Metric, a.gauge(l.program, float64(p.MemoryLimitBytes)))
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

	mfs := []*dto.MetricFamily{up, state, startTime, lastExitTime, backoff, rss, memUsage, memLimit, oomUp, ok, lastOK, panics, healthy}
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
