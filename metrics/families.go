package metrics

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/respawnd/respawnd/supervisor"
)

// The per-program series are not prometheus.Metrics collected by a
// Registry: with a thousand programs that is some 31,000 series, and the
// Registry's per-series consistency checks, label-pair construction and
// sorting cost more than the rest of a scrape. Each family is a generator
// (exposition.go) that writes the text formats directly, or builds dto
// messages for Gather. The families are valid by construction: every
// family has a fixed name, help and type, its label names are fixed and
// sorted, its label values are checked (program names must be valid UTF-8
// and unique), and its series come out in the order the Registry would
// sort them into (program name, then the second label's value).
// TestFamiliesMatchOldPath checks the last claim against a Registry.

// family is the fixed part of one metric family: its name, help, type and
// the descriptor used when the family is collected as prometheus.Metrics.
type family struct {
	name, help string
	typ        dto.MetricType
	desc       *prometheus.Desc
}

func newFamily(name, help string, typ dto.MetricType, labels ...string) *family {
	fq := prometheus.BuildFQName(Namespace, "", name)
	return &family{name: fq, help: help, typ: typ, desc: prometheus.NewDesc(fq, help, labels, nil)}
}

// start returns an empty dto family with room for n metrics. The name,
// help and type strings are shared by every scrape; nothing modifies them.
func (f *family) start(n int) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: &f.typ, Metric: make([]*dto.Metric, 0, n)}
}

// Label names, shared by every label pair.
var (
	labelProgram = "program"
	labelReason  = "reason"
	labelState   = "state"
	labelSource  = "source"
	labelKind    = "kind"
	labelWindow  = "window"
	labelPID     = "pid"
	labelResult  = "result"
)

// sortedReasons and sortedStates are the reason and state label values in
// the order a Registry sorts series by them.
var (
	sortedReasons = sortedStrings(supervisor.Reasons)
	sortedStates  = sortedStrings(supervisor.States)
)

func sortedStrings[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reasonIndex is the index of a reason's label value in sortedReasons.
// Reason.String maps every value into that set.
func reasonIndex(r supervisor.Reason) int {
	s := r.String()
	for i, v := range sortedReasons {
		if v == s {
			return i
		}
	}
	return slices.Index(sortedReasons, supervisor.ReasonUnknown.String())
}

// programLabels are the label sets of one program's series, built once
// and shared, read-only, by every scrape that exports the program. They are
// one allocation: the {program} pair, and each two-label set as two
// elements of an array the scrape slices (a thousand programs, a thousand
// of these in the Recorder and as many in the Collector).
type programLabels struct {
	name    string
	pair    dto.LabelPair                               // program="name"
	one     [1]*dto.LabelPair                           // {program}
	reasons [2 * len(sortedReasonsArray)]*dto.LabelPair // {program, reason}, in sortedReasons order
	states  [2 * len(sortedStatesArray)]*dto.LabelPair  // {program, state}, in sortedStates order
	kinds   [4]*dto.LabelPair                           // {kind, program}: full, some
}

func newProgramLabels(name string) *programLabels {
	p := &programLabels{name: name}
	p.pair.Name, p.pair.Value = &labelProgram, &p.name
	pp := &p.pair
	p.one[0] = pp
	// The second pairs are the same for every program: shared.
	for i, second := range reasonPairs {
		p.reasons[2*i], p.reasons[2*i+1] = pp, second
	}
	for i, second := range statePairs {
		p.states[2*i], p.states[2*i+1] = pp, second
	}
	// Label pairs are sorted by name: kind before program.
	p.kinds = [4]*dto.LabelPair{kindPairs[0], pp, kindPairs[1], pp}
	return p
}

// program is the {program} label set.
func (p *programLabels) program() []*dto.LabelPair { return p.one[:] }

// reason is the {program, reason} set of sortedReasons[i].
func (p *programLabels) reason(i int) []*dto.LabelPair { return p.reasons[2*i : 2*i+2 : 2*i+2] }

// state is the {program, state} set of sortedStates[i].
func (p *programLabels) state(i int) []*dto.LabelPair { return p.states[2*i : 2*i+2 : 2*i+2] }

// kind is the {kind, program} set of kind full (0) or some (1).
func (p *programLabels) kind(i int) []*dto.LabelPair { return p.kinds[2*i : 2*i+2 : 2*i+2] }

// reasonPairs and statePairs are the {reason} and {state} label pairs, in
// sortedReasons and sortedStates order.
var (
	kindPairs   = labelPairs(&labelKind, []string{"full", "some"})
	reasonPairs = labelPairs(&labelReason, sortedReasons)
	statePairs  = labelPairs(&labelState, sortedStates)
)

func labelPairs(label *string, values []string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, len(values))
	for i := range values {
		out[i] = &dto.LabelPair{Name: label, Value: &values[i]}
	}
	return out
}

// validLabelValue reports whether v may be a label value.
func validLabelValue(v string) bool { return utf8.ValidString(v) }

// chunk hands out pointers to zeroed Ts carved from blocks of size, so that
// building 36,000 series costs tens of allocations rather than tens of
// thousands. Blocks are never grown in place, so pointers stay valid.
type chunk[T any] struct {
	buf  []T
	size int
}

func (c *chunk[T]) next() *T {
	if len(c.buf) == 0 {
		c.buf = make([]T, max(c.size, 64))
	}
	p := &c.buf[0]
	c.buf = c.buf[1:]
	return p
}

// arena allocates the pieces of one scrape's dto metrics.
type arena struct {
	metrics  chunk[dto.Metric]
	gauges   chunk[dto.Gauge]
	counters chunk[dto.Counter]
	floats   chunk[float64]
}

// newArena returns an arena sized for about n metrics.
func newArena(n int) *arena {
	return &arena{
		metrics:  chunk[dto.Metric]{size: n},
		gauges:   chunk[dto.Gauge]{size: n},
		counters: chunk[dto.Counter]{size: n},
		floats:   chunk[float64]{size: n},
	}
}

func (a *arena) float(v float64) *float64 {
	p := a.floats.next()
	*p = v
	return p
}

func (a *arena) gauge(labels []*dto.LabelPair, v float64) *dto.Metric {
	m := a.metrics.next()
	g := a.gauges.next()
	g.Value = a.float(v)
	m.Label, m.Gauge = labels, g
	return m
}

// gaugeIf adds a gauge of v to f when ok: the series of figures that are
// not always known.
func (a *arena) gaugeIf(f *dto.MetricFamily, labels []*dto.LabelPair, ok bool, v uint64) {
	if ok {
		f.Metric = append(f.Metric, a.gauge(labels, float64(v)))
	}
}

func (a *arena) counter(labels []*dto.LabelPair, v float64, ex *dto.Exemplar) *dto.Metric {
	m := a.metrics.next()
	c := a.counters.next()
	c.Value, c.Exemplar = a.float(v), ex
	m.Label, m.Counter = labels, c
	return m
}

// mergeFamilies adds extra to mfs, which is sorted by name, and returns
// the result sorted by name. A family of extra whose name is already
// taken is dropped with an error.
func mergeFamilies(mfs, extra []*dto.MetricFamily) ([]*dto.MetricFamily, error) {
	out := make([]*dto.MetricFamily, 0, len(mfs)+len(extra))
	out = append(out, mfs...)
	for _, mf := range extra {
		// A Registry leaves out families without metrics.
		if len(mf.Metric) > 0 {
			out = append(out, mf)
		}
	}
	slices.SortStableFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	var errs []error
	out = slices.CompactFunc(out, func(a, b *dto.MetricFamily) bool {
		if a.GetName() != b.GetName() {
			return false
		}
		errs = append(errs, fmt.Errorf("metric family %q exported twice", b.GetName()))
		return true
	})
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, nil
}

// collectFamilies sends the metrics of mfs, built from fams, to ch as
// prometheus.Metrics, for the Recorder and Collector used as ordinary
// prometheus.Collectors.
func collectFamilies(ch chan<- prometheus.Metric, fams map[string]*family, mfs []*dto.MetricFamily) {
	for _, mf := range mfs {
		f := fams[mf.GetName()]
		for _, m := range mf.Metric {
			ch <- dtoMetric{desc: f.desc, m: m}
		}
	}
}

// dtoMetric is a prometheus.Metric that writes a prebuilt dto metric.
type dtoMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (d dtoMetric) Desc() *prometheus.Desc { return d.desc }

func (d dtoMetric) Write(out *dto.Metric) error {
	out.Label = d.m.Label
	out.Gauge = d.m.Gauge
	out.Counter = d.m.Counter
	out.Histogram = d.m.Histogram
	return nil
}

// familyIndex maps the names of fams to them.
func familyIndex(fams ...*family) map[string]*family {
	m := make(map[string]*family, len(fams))
	for _, f := range fams {
		m[f.name] = f
	}
	return m
}
