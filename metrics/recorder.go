package metrics

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// The Recorder's metric families.
var (
	exitsFamily = newFamily("program_exits_total",
		"Exits of a program's main process, by final reason (oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown).",
		dto.MetricType_COUNTER, "program", "reason")
	oomKillsFamily = newFamily("program_oom_kills_total",
		"OOM kills of a program's processes, workers included.",
		dto.MetricType_COUNTER, "program")
	restartsFamily = newFamily("program_restarts_total",
		"Restarts of a program after an exit.",
		dto.MetricType_COUNTER, "program")
	restartLatencyFamily = newFamily("restart_duration_seconds",
		"Time from a program's death being detected to its new process running, less the wait on purpose (backoff, restart bucket, memory hold) that respawnd_restart_wait_seconds counts; a program's series appear with its first restart.",
		dto.MetricType_HISTOGRAM, "program")
	recyclesFamily = newFamily("program_memory_recycles_total",
		"Graceful restarts of a program because its memory stayed above its recycle threshold (memory.recycle).",
		dto.MetricType_COUNTER, "program")
	recycleLoopsFamily = newFamily("program_memory_recycle_loops_total",
		"Times a program recycled for memory more than 3 times within restart.reset_after, after which its restarts go through the crash backoff; a program's series appears with its first.",
		dto.MetricType_COUNTER, "program")
	hookRunsFamily = newFamily("hook_runs_total",
		"Runs of a program's on_exit hook, by result (success, failure, timeout, start_failure, skipped); a program's series appear with its first.",
		dto.MetricType_COUNTER, "program", "result")
	hostOOMKillsFamily = newFamily("host_oom_kills_total",
		"OOM kills on the host seen by respawnd, those of programs' processes included.",
		dto.MetricType_COUNTER)
	recorderFamilies = familyIndex(exitsFamily, oomKillsFamily, restartsFamily, restartLatencyFamily, hostOOMKillsFamily, recyclesFamily, recycleLoopsFamily, hookRunsFamily)
)

// Recorder counts the events the supervisor reports. It satisfies
// supervisor.Recorder. Its methods never block for long and are safe for
// concurrent use.
//
// It keeps its counters itself and exports them as dto metric families
// (see families.go); it is also a prometheus.Collector for use with any
// registry.
type Recorder struct {
	hostOOMKills atomic.Uint64

	mu sync.Mutex
	// programs holds each counted program's series. Until SetPrograms is
	// first called (configured is false) every program is counted and its
	// series are created on its first event; after it, events of other
	// programs are dropped (they are the last words of programs removed by
	// a reload).
	programs   map[string]*programCounters
	configured bool
	// sorted is programs in name order; nil when it must be rebuilt.
	sorted []*programCounters

	live vecs
}

// programCounters are one program's event series. They are guarded by the
// Recorder's mu.
type programCounters struct {
	labels    *programLabels
	exits     [len(sortedReasonsArray)]uint64
	exemplars [len(sortedReasonsArray)]*dto.Exemplar // the last, read-only once set
	oomKills  uint64
	restarts  uint64
	recycles  uint64
	loops     uint64
	// hooks counts on_exit hook runs by result, in sortedHookResults
	// order; nil until the program's first.
	hooks *hookCounters
	// buckets counts restart latencies per bucket, not cumulatively; the
	// last element is the +Inf bucket.
	buckets    [len(restartBucketsArray) + 1]uint64
	latencySum float64
}

// hookCounters are one program's hook run series: their label sets and
// counts, in sortedHookResults order.
type hookCounters struct {
	labels [len(sortedHookResults)][]*dto.LabelPair // {program, result}
	runs   [len(sortedHookResults)]uint64
}

// sortedHookResults are the result label values of hook_runs_total, sorted:
// the results of package hook (hook.Results).
var sortedHookResults = [...]string{"failure", "skipped", "start_failure", "success", "timeout"}

// hookResultPairs are the {result} label pairs, in sortedHookResults order.
var hookResultPairs = labelPairs(&labelResult, sortedHookResults[:])

// sortedReasonsArray, sortedStatesArray and restartBucketsArray size the
// arrays above and programLabels'; init checks that they agree with
// sortedReasons, sortedStates and RestartBuckets.
var (
	sortedReasonsArray  [9]struct{}
	sortedStatesArray   [9]struct{}
	restartBucketsArray [9]struct{}
)

func init() {
	if len(sortedReasons) != len(sortedReasonsArray) || len(sortedStates) != len(sortedStatesArray) || len(RestartBuckets) != len(restartBucketsArray) {
		panic("metrics: reason, state or bucket count changed; update sortedReasonsArray, sortedStatesArray or restartBucketsArray")
	}
}

// NewRecorder returns a Recorder. Export it with NewRegistry, or register
// it with a prometheus.Registerer.
func NewRecorder() *Recorder {
	return &Recorder{programs: map[string]*programCounters{}, live: newVecs()}
}

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range []*family{exitsFamily, oomKillsFamily, restartsFamily, restartLatencyFamily, hostOOMKillsFamily, recyclesFamily, recycleLoopsFamily, hookRunsFamily} {
		ch <- f.desc
	}
	for _, c := range r.live.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	collectFamilies(ch, recorderFamilies, r.families())
	for _, c := range r.live.collectors() {
		c.Collect(ch)
	}
}

// SetPrograms makes names the configured programs: each gets every series
// at 0 if it has none yet, and the series of programs no longer named are
// deleted. Call it with every configuration about to be applied. Events of
// programs not named are dropped from then on.
func (r *Recorder) SetPrograms(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := range r.programs {
		if !slices.Contains(names, n) {
			r.live.forget(n)
		}
	}
	want := make(map[string]*programCounters, len(names))
	for _, n := range names {
		if p := r.programs[n]; p != nil {
			want[n] = p
		} else {
			want[n] = &programCounters{labels: newProgramLabels(n)}
		}
	}
	r.programs, r.configured, r.sorted = want, true, nil
}

// counters returns the series of a program whose events are counted, or
// nil. Before the first SetPrograms call every program is, and its series
// are created on its first event. The caller holds mu.
func (r *Recorder) counters(name string) *programCounters {
	if p := r.programs[name]; p != nil || r.configured {
		return p
	}
	p := &programCounters{labels: newProgramLabels(name)}
	r.programs[name], r.sorted = p, nil
	return p
}

// Exited counts one exit of a program's main process, with its pid as an
// exemplar.
func (r *Recorder) Exited(e supervisor.Exit) {
	var ex *dto.Exemplar
	if e.PID != 0 {
		pid := strconv.Itoa(e.PID)
		ex = &dto.Exemplar{
			Label:     []*dto.LabelPair{{Name: &labelPID, Value: &pid}},
			Value:     new(float64(1)),
			Timestamp: timestamppb.Now(),
		}
	}
	i := reasonIndex(e.Reason)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.counters(e.Program)
	if p == nil {
		return
	}
	p.exits[i]++
	if e.Reason == supervisor.ReasonMemoryRecycle {
		p.recycles++
	}
	if ex != nil {
		p.exemplars[i] = ex
	}
}

// Restarted observes the time from a program's death being detected to its
// new process running.
func (r *Recorder) Restarted(program string, latency time.Duration) {
	v := latency.Seconds()
	// As client_golang's histogram: the first bucket whose upper bound is
	// at least v, or +Inf.
	b := sort.SearchFloat64s(RestartBuckets, v)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.counters(program)
	if p == nil {
		return
	}
	p.restarts++
	p.buckets[b]++
	p.latencySum += v
}

// RecycleLoop counts one recycle loop of program.
func (r *Recorder) RecycleLoop(program string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.counters(program); p != nil {
		p.loops++
	}
}

// HookRun counts one run of program's on_exit hook that ended with result,
// one of hook.Results; other results are dropped. It satisfies the Outcome
// of hook.Config. The program's series, one per result, appear with its
// first run.
func (r *Recorder) HookRun(program, result string) {
	i := slices.Index(sortedHookResults[:], result)
	if i < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.counters(program)
	if p == nil {
		return
	}
	if p.hooks == nil {
		h := &hookCounters{}
		pp := &p.labels.pair
		for j := range h.labels {
			h.labels[j] = []*dto.LabelPair{pp, hookResultPairs[j]}
		}
		p.hooks = h
	}
	p.hooks.runs[i]++
}

// OOMKill counts one OOM kill on the host, and against program unless
// program is "" (a process that belongs to no program).
func (r *Recorder) OOMKill(program string, _ oom.Kill) {
	r.hostOOMKills.Add(1)
	if program == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.counters(program); p != nil {
		p.oomKills++
	}
}

// upperBounds are RestartBuckets' upper bounds, shared by every scrape.
var upperBounds = slices.Clone(RestartBuckets)

// families returns the Recorder's metric families, sorted by name, each
// with its metrics in the order a Registry would sort them into.
func (r *Recorder) families() []*dto.MetricFamily {
	return familiesOf(r.generators())
}

// generators returns the Recorder's families as generators (see
// exposition.go), sorted by name. They send the counts of one moment: a
// copy taken under the lock, so that writing a scrape to a slow client
// holds up no event.
func (r *Recorder) generators() []generator {
	r.mu.Lock()
	if r.sorted == nil {
		r.sorted = make([]*programCounters, 0, len(r.programs))
		for _, p := range r.programs {
			if validLabelValue(p.labels.name) {
				r.sorted = append(r.sorted, p)
			}
		}
		slices.SortFunc(r.sorted, func(a, b *programCounters) int { return strings.Compare(a.labels.name, b.labels.name) })
	}
	ps := make([]programCounters, len(r.sorted))
	hooks := 0
	for i, p := range r.sorted {
		ps[i] = *p
		if p.hooks != nil {
			hooks++
		}
	}
	// Hook counts change in place: copied too.
	hookCopies := make([]hookCounters, 0, hooks)
	for i := range ps {
		if ps[i].hooks != nil {
			hookCopies = append(hookCopies, *ps[i].hooks)
			ps[i].hooks = &hookCopies[len(hookCopies)-1]
		}
	}
	r.mu.Unlock()
	host := r.hostOOMKills.Load()
	n := len(ps)

	perProgram := func(f *family, value func(p *programCounters) (uint64, bool)) generator {
		return generator{f: f, size: n, send: func(s sink) {
			for i := range ps {
				if v, ok := value(&ps[i]); ok {
					s.counter(ps[i].labels.program(), float64(v), nil)
				}
			}
		}}
	}
	gs := []generator{
		{f: exitsFamily, size: n * len(sortedReasons), send: func(s sink) {
			for i := range ps {
				p := &ps[i]
				for j, v := range p.exits {
					s.counter(p.labels.reason(j), float64(v), p.exemplars[j])
				}
			}
		}},
		perProgram(oomKillsFamily, func(p *programCounters) (uint64, bool) { return p.oomKills, true }),
		perProgram(restartsFamily, func(p *programCounters) (uint64, bool) { return p.restarts, true }),
		perProgram(recyclesFamily, func(p *programCounters) (uint64, bool) { return p.recycles, true }),
		perProgram(recycleLoopsFamily, func(p *programCounters) (uint64, bool) { return p.loops, p.loops > 0 }),
		{f: hookRunsFamily, send: func(s sink) {
			for i := range ps {
				if h := ps[i].hooks; h != nil {
					for j, v := range h.runs {
						s.counter(h.labels[j], float64(v), nil)
					}
				}
			}
		}},
		{f: restartLatencyFamily, size: n, send: func(s sink) {
			var cum [len(restartBucketsArray)]uint64
			h := histogramValues{bounds: upperBounds, cum: cum[:]}
			for i := range ps {
				p := &ps[i]
				if p.restarts == 0 {
					// A program's histogram appears with its first
					// restart: twelve series of zeros for each program
					// that never restarted were a third of a
					// 1,000-program scrape.
					continue
				}
				var c uint64
				for j := range cum {
					c += p.buckets[j]
					cum[j] = c
				}
				h.count, h.sum = c+p.buckets[len(cum)], p.latencySum
				s.histogram(p.labels.program(), &h)
			}
		}},
		{f: hostOOMKillsFamily, size: 1, send: func(s sink) { s.counter(nil, float64(host), nil) }},
	}
	sortGenerators(gs)
	return gs
}
