package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
}

// Collector exports the state read at scrape time. It is safe for
// concurrent use if its Source is.
type Collector struct {
	src Source
	now func() time.Time

	up, state, startTime, lastExitTime, backoff  *prometheus.Desc
	rss, memUsage, memLimit, oomSourceUp         *prometheus.Desc
	reloadSuccessful, reloadSuccessTimestampSecs *prometheus.Desc
}

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
	program := []string{"program"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	return &Collector{
		src:          cfg.Source,
		now:          cfg.Now,
		up:           d("program_up", "Whether the program's main process is running (1) or not (0).", program...),
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
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.state, c.startTime, c.lastExitTime, c.backoff, c.rss, c.memUsage, c.memLimit, c.oomSourceUp, c.reloadSuccessful, c.reloadSuccessTimestampSecs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, p := range c.src.Programs() {
		c.collectProgram(ch, p, now)
	}
	for name, up := range c.src.OOMSources() {
		ch <- prometheus.MustNewConstMetric(c.oomSourceUp, prometheus.GaugeValue, boolValue(up), name)
	}
	r := c.src.LastReload()
	ch <- prometheus.MustNewConstMetric(c.reloadSuccessful, prometheus.GaugeValue, boolValue(r.Successful))
	var last float64
	if !r.LastSuccess.IsZero() {
		last = unixSeconds(r.LastSuccess)
	}
	ch <- prometheus.MustNewConstMetric(c.reloadSuccessTimestampSecs, prometheus.GaugeValue, last)
}

func (c *Collector) collectProgram(ch chan<- prometheus.Metric, p ProgramSample, now time.Time) {
	name := p.Name
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	gauge(c.up, boolValue(p.PID != 0 && p.State == supervisor.StateRunning))
	for _, s := range supervisor.States {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(s == p.State), name, s.String())
	}
	var start float64
	if p.PID != 0 && !p.Started.IsZero() {
		start = unixSeconds(p.Started)
	}
	gauge(c.startTime, start)
	var lastExit float64
	if p.LastExit != nil && !p.LastExit.Time.IsZero() {
		lastExit = unixSeconds(p.LastExit.Time)
	}
	gauge(c.lastExitTime, lastExit)
	var backoff float64
	if p.State == supervisor.StateBackoff && p.NextStart.After(now) {
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
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
