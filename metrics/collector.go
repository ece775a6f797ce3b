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
	gs, err := c.generators()
	return familiesOf(gs), err
}

// generators reads the Source and returns the Collector's families as
// generators (see exposition.go), sorted by name.
func (c *Collector) generators() ([]generator, error) {
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

	// perProgram is a family with one series per program, when value
	// says it has one.
	perProgram := func(f *family, value func(p *ProgramSample) (float64, bool)) generator {
		return generator{f: f, size: n, send: func(s sink) {
			for i, p := range ps {
				if v, ok := value(p); ok {
					if f.typ == dto.MetricType_COUNTER {
						s.counter(labels[i].program(), v, nil)
					} else {
						s.gauge(labels[i].program(), v)
					}
				}
			}
		}}
	}
	known := func(v uint64, ok bool) (float64, bool) { return float64(v), ok }
	always := func(v float64) (float64, bool) { return v, true }

	gs := []generator{
		perProgram(upFamily, func(p *ProgramSample) (float64, bool) {
			return always(boolValue(p.PID != 0 && p.State == supervisor.StateRunning && p.Ready))
		}),
		perProgram(readyFamily, func(p *ProgramSample) (float64, bool) { return always(boolValue(p.PID != 0 && p.Ready)) }),
		perProgram(watchdogPingFamily, func(p *ProgramSample) (float64, bool) {
			if p.PID == 0 || p.WatchdogLastPing.IsZero() {
				return 0, false
			}
			return unixSeconds(p.WatchdogLastPing), true
		}),
		{f: stateFamily, size: n * len(sortedStates), send: func(s sink) {
			for i, p := range ps {
				cur := p.State.String()
				for j, st := range sortedStates {
					s.gauge(labels[i].state(j), boolValue(st == cur))
				}
			}
		}},
		perProgram(startTimeFamily, func(p *ProgramSample) (float64, bool) {
			if p.PID != 0 && !p.Started.IsZero() {
				return unixSeconds(p.Started), true
			}
			return 0, true
		}),
		perProgram(lastExitTimeFamily, func(p *ProgramSample) (float64, bool) {
			if p.LastExit != nil && !p.LastExit.Time.IsZero() {
				return unixSeconds(p.LastExit.Time), true
			}
			return 0, true
		}),
		perProgram(backoffFamily, func(p *ProgramSample) (float64, bool) {
			if (p.State == supervisor.StateBackoff || p.State == supervisor.StateOOMLoop) && p.NextStart.After(now) {
				return p.NextStart.Sub(now).Seconds(), true
			}
			return 0, true
		}),
		perProgram(rssFamily, func(p *ProgramSample) (float64, bool) { return known(p.RSSBytes, p.HasRSS) }),
		perProgram(memUsageFamily, func(p *ProgramSample) (float64, bool) { return known(p.MemoryUsageBytes, p.HasMemoryUsage) }),
		perProgram(memLimitFamily, func(p *ProgramSample) (float64, bool) { return known(p.MemoryLimitBytes, p.HasMemoryLimit) }),
		perProgram(workingSetFamily, func(p *ProgramSample) (float64, bool) { return known(p.WorkingSetBytes, p.HasWorkingSet) }),
		perProgram(warnFamily, func(p *ProgramSample) (float64, bool) { return known(p.WarnBytes, p.HasWarn) }),
		perProgram(recycleFamily, func(p *ProgramSample) (float64, bool) { return known(p.RecycleBytes, p.HasRecycle) }),
		// Every full series, then every some series, as a Registry sorts
		// them (kind before program).
		{f: pressureFamily, size: 2 * n, send: func(s sink) {
			for k := range 2 {
				for i, p := range ps {
					if !p.HasPressure {
						continue
					}
					v := p.PressureFull
					if k == 1 {
						v = p.PressureSome
					}
					s.counter(labels[i].kind(k), v.Seconds(), nil)
				}
			}
		}},
		perProgram(heldFamily, func(p *ProgramSample) (float64, bool) { return always(boolValue(p.State == supervisor.StateHeld)) }),
		perProgram(outputDroppedFamily, func(p *ProgramSample) (float64, bool) { return always(float64(p.OutputDroppedLines)) }),
	}

	hm := c.src.HostMemory()
	gs = append(gs,
		generator{f: hostAvailableFamily, size: 1, send: func(s sink) {
			if hm.Known {
				s.gauge(nil, float64(hm.AvailableBytes))
			}
		}},
		generator{f: hostPressureFamily, size: 6, send: func(s sink) {
			hp := hm.Pressure
			if hp == nil {
				return
			}
			for i, kind := range []*[3]float64{&hp.Full, &hp.Some} {
				for j, avg := range windowAvg {
					s.gauge(hostPressurePairs[i][j], kind[avg])
				}
			}
		}})

	srcs := c.src.OOMSources()
	names := make([]string, 0, len(srcs))
	for name := range srcs {
		if !validLabelValue(name) {
			errs = append(errs, fmt.Errorf("OOM source %q is not a valid label value", name))
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	gs = append(gs, generator{f: oomSourceUpFamily, size: len(names), send: func(s sink) {
		for i := range names {
			s.gauge([]*dto.LabelPair{{Name: &labelSource, Value: &names[i]}}, boolValue(srcs[names[i]]))
		}
	}})

	r := c.src.LastReload()
	var last float64
	if !r.LastSuccess.IsZero() {
		last = unixSeconds(r.LastSuccess)
	}
	h := c.src.Health()
	gs = append(gs,
		generator{f: reloadSuccessfulFamily, size: 1, send: func(s sink) { s.gauge(nil, boolValue(r.Successful)) }},
		generator{f: reloadSuccessTimestampFamily, size: 1, send: func(s sink) { s.gauge(nil, last) }},
		generator{f: panicsFamily, size: 1, send: func(s sink) { s.counter(nil, float64(h.Panics), nil) }},
		generator{f: healthyFamily, size: 1, send: func(s sink) { s.gauge(nil, boolValue(h.Healthy)) }})
	sortGenerators(gs)
	return gs, errors.Join(errs...)
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
