package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/cgroup"
	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/memwatch"
	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/postmortem"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

var (
	_ supervisor.Recorder = (*metrics.Recorder)(nil)
	_ metrics.Source      = (*observer)(nil)
	_ api.Source          = apiSource{}
	_ api.OrphanSource    = apiSource{}
	_ api.Controller      = (*observer)(nil)
	_ supervisor.Cgroups  = (*trackedCgroups)(nil)
)

// reloadReq asks the daemon's loop to load the configuration again; reply,
// when not nil, receives the outcome.
type reloadReq struct {
	load  func() (*config.Config, error)
	reply chan<- error
}

// observer is what the metrics collector, the API and the control socket
// read from the daemon at request time. It is safe for concurrent use.
type observer struct {
	sup    *supervisor.Supervisor
	scan   *watch.Scanner    // nil when /proc cannot be read
	groups sync.Map          // program name -> *cgroup.Group
	health *health           // nil until the daemon runs
	deaths *postmortem.Store // nil without death records
	// dropped returns a program's dropped output lines; nil reports none.
	dropped func(program string) uint64
	// procfs is where /proc is mounted, for the host's memory.
	procfs string

	// reloadC, when not nil, takes reload requests (respawnd run).
	reloadC chan<- reloadReq
	load    func() (*config.Config, error)

	ready   atomic.Bool
	mu      sync.Mutex
	reload  metrics.ReloadStatus
	sources map[string]bool
	cfg     *config.Config // in force
	// thresh holds the watchdog thresholds of the programs in force that
	// set any, worked out once per configuration rather than per scrape.
	thresh map[string]memThresholds
}

func newObserver() *observer { return &observer{sources: map[string]bool{}} }

// setSource records whether an OOM source works.
func (o *observer) setSource(name string, up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sources[name] = up
}

// setConfig records the configuration in force.
func (o *observer) setConfig(cfg *config.Config) {
	thresh := thresholdsOf(cfg)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cfg, o.thresh = cfg, thresh
}

// config returns the configuration in force, nil before the first.
func (o *observer) config() *config.Config {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cfg
}

// applied records the outcome of a configuration load; the first success
// makes the daemon ready (its OOM sources are set up before it applies).
func (o *observer) applied(err error, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reload.Successful = err == nil
	if err == nil {
		o.reload.LastSuccess = now
		o.ready.Store(true)
	}
}

// Ready says whether the configuration is applied, every OOM source
// initialised or deliberately degraded, and the supervisor's loops answer.
func (o *observer) Ready() bool {
	return o.ready.Load() && (o.health == nil || o.health.ok())
}

// Health implements metrics.Source.
func (o *observer) Health() metrics.Health {
	h := metrics.Health{Healthy: o.health == nil || o.health.ok()}
	if o.sup != nil {
		h.Panics = o.sup.Panics()
	}
	return h
}

// LastReload implements metrics.Source.
func (o *observer) LastReload() metrics.ReloadStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reload
}

// OOMSources implements metrics.Source.
func (o *observer) OOMSources() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]bool, len(o.sources))
	for k, v := range o.sources {
		out[k] = v
	}
	return out
}

// Programs implements metrics.Source. A program whose instance runs in its
// cgroup gets its memory from the cgroup (two reads through descriptors the
// group keeps open); only the others cost a pass over /proc, one for all of
// them, for the resident set of their process trees.
func (o *observer) Programs() []metrics.ProgramSample {
	sts := o.sup.Snapshot()
	out := make([]metrics.ProgramSample, len(sts))
	o.mu.Lock()
	thresholds := o.thresh
	o.mu.Unlock()
	// The cgroup reads are system calls that wait on the kernel: a few
	// goroutines share them out, so that a scrape of a thousand programs
	// takes a fraction of the time.
	workers := min(scrapeWorkers, (len(sts)+scrapeChunk-1)/scrapeChunk)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(sts); i += workers {
				out[i] = o.sample(sts[i])
				if t, ok := thresholds[sts[i].Name]; ok {
					out[i].WarnBytes, out[i].HasWarn = t.warn, t.hasWarn
					out[i].RecycleBytes, out[i].HasRecycle = t.recycle, t.hasRecycle
				}
			}
		}()
	}
	wg.Wait()
	var roots []int
	for _, s := range out {
		if s.PID != 0 && !s.HasRSS {
			roots = append(roots, s.PID)
		}
	}
	if o.scan != nil && len(roots) > 0 {
		if rss, err := o.scan.TreeRSS(roots...); err == nil { // without it, RSS is simply not reported
			for i := range out {
				if v, ok := rss[out[i].PID]; ok && out[i].PID != 0 && !out[i].HasRSS {
					out[i].RSSBytes, out[i].HasRSS = v, true
				}
			}
		}
	}
	return out
}

// scrapeWorkers and scrapeChunk bound the goroutines that read the
// programs' cgroups for a scrape: one per scrapeChunk programs, at most
// scrapeWorkers.
const (
	scrapeWorkers = 4
	scrapeChunk   = 64
)

// sample is one program's status with the memory figures of its cgroup,
// when its instance runs in one.
func (o *observer) sample(st supervisor.Status) metrics.ProgramSample {
	s := metrics.ProgramSample{Status: st}
	if o.dropped != nil {
		s.OutputDroppedLines = o.dropped(st.Name)
	}
	g, ok := o.groups.Load(st.Name)
	if !ok || st.Cgroup == "" || g.(*cgroup.Group).Path() != st.Cgroup {
		return s
	}
	grp := g.(*cgroup.Group)
	if m, err := grp.Memory(); err == nil {
		s.MemoryUsageBytes, s.HasMemoryUsage = m.Usage, true
		s.WorkingSetBytes, s.HasWorkingSet = m.WorkingSet, true
		s.PressureSome, s.PressureFull, s.HasPressure = m.PressureSome, m.PressureFull, m.HasPressure
		if st.PID != 0 {
			s.RSSBytes, s.HasRSS = m.RSS, true
		}
	}
	s.MemoryLimitBytes, s.HasMemoryLimit = grp.Limit()
	return s
}

// apiPrograms is Programs in the API's terms.
func (o *observer) apiPrograms() []api.Program {
	now := time.Now()
	samples := o.Programs()
	out := make([]api.Program, len(samples))
	for i, s := range samples {
		var m api.Memory
		if s.HasRSS {
			m.RSSBytes = &s.RSSBytes
		}
		if s.HasMemoryUsage {
			m.UsageBytes = &s.MemoryUsageBytes
		}
		if s.HasMemoryLimit {
			m.LimitBytes = &s.MemoryLimitBytes
		}
		out[i] = api.NewProgram(s.Status, m, now)
	}
	return out
}

// Events implements api.Source.
func (o *observer) Events() []supervisor.Event { return o.sup.Events() }

// Subscribe implements api.Source.
func (o *observer) Subscribe() (<-chan supervisor.Event, func()) { return o.sup.Subscribe() }

// Control implements api.Controller.
func (o *observer) Control(ctx context.Context, name string, a supervisor.Action, sig syscall.Signal) error {
	return o.sup.Control(ctx, name, a, sig)
}

// Reload implements api.Controller: it loads and applies the configuration
// file as SIGHUP does and returns why it was rejected.
func (o *observer) Reload(ctx context.Context) error {
	if o.reloadC == nil {
		return errors.New("this respawnd has no configuration file to reload")
	}
	reply := make(chan error, 1)
	select {
	case o.reloadC <- reloadReq{load: o.load, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apiSource adapts the observer to api.Source, whose Programs returns the
// API's type.
type apiSource struct{ *observer }

func (a apiSource) Programs() []api.Program { return a.apiPrograms() }

// Orphans implements api.OrphanSource.
func (a apiSource) Orphans() []api.Orphan {
	var out []api.Orphan
	for _, o := range a.sup.Orphans() {
		out = append(out, api.Orphan{Name: o.Program, PID: o.PID, Generation: o.Generation})
	}
	return out
}

// trackedCgroups remembers each program's memory cgroup, so that scrapes
// can read its usage and limit.
type trackedCgroups struct {
	*cgroupsAdapter
	o      *observer
	deaths deathsAdapter // zero without death records
}

func (t *trackedCgroups) Create(program string, l supervisor.Limits) (supervisor.Group, error) {
	g, err := t.cgroupsAdapter.Create(program, l)
	if err != nil {
		return nil, err
	}
	if ga, ok := g.(groupAdapter); ok {
		t.o.groups.Store(program, ga.Group)
	}
	if t.deaths.k != nil {
		t.deaths.baseline(program, g)
	}
	return g, nil
}

// forget drops the cgroups of programs not in cfg.
func (o *observer) forget(cfg *config.Config) {
	keep := map[string]bool{}
	for _, p := range cfg.Programs {
		keep[p.Name] = true
	}
	o.groups.Range(func(k, _ any) bool {
		if !keep[k.(string)] {
			o.groups.Delete(k)
		}
		return true
	})
}

// programNames lists cfg's program names.
func programNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Programs))
	for i, p := range cfg.Programs {
		names[i] = p.Name
	}
	return names
}

// memThresholds are a program's watchdog thresholds in bytes.
type memThresholds struct {
	warn, recycle       uint64
	hasWarn, hasRecycle bool
}

// thresholdsOf returns the watchdog thresholds of the programs of cfg
// that set any.
func thresholdsOf(cfg *config.Config) map[string]memThresholds {
	if cfg == nil {
		return nil
	}
	var out map[string]memThresholds
	for _, p := range cfg.Programs {
		var t memThresholds
		if v, ok := p.WarnAbove(); ok {
			t.warn, t.hasWarn = uint64(v), true
		}
		if v, ok := p.RecycleAbove(); ok {
			t.recycle, t.hasRecycle = uint64(v), true
		}
		if t.hasWarn || t.hasRecycle {
			if out == nil {
				out = map[string]memThresholds{}
			}
			out[p.Name] = t
		}
	}
	return out
}

// HostMemory implements metrics.Source: /proc/meminfo and
// /proc/pressure/memory, read at each scrape.
func (o *observer) HostMemory() metrics.HostMemory {
	h, err := memwatch.ReadHost(o.procfs)
	if err != nil {
		return metrics.HostMemory{}
	}
	out := metrics.HostMemory{AvailableBytes: h.MemAvailable, Known: true}
	if p := h.Pressure; p != nil {
		out.Pressure = &metrics.HostPressure{
			Some: [3]float64{p.Some.Avg10 / 100, p.Some.Avg60 / 100, p.Some.Avg300 / 100},
			Full: [3]float64{p.Full.Avg10 / 100, p.Full.Avg60 / 100, p.Full.Avg300 / 100},
		}
	}
	return out
}
