package metrics

import (
	"bytes"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// A scrape of a thousand programs is some 31,000 series. Built as dto
// messages and encoded by expfmt, they cost more than everything else in
// the scrape: the messages and their garbage (a collection per scrape),
// then the encoder's per-series checks. The Recorder's and the Collector's
// families are therefore generators: each sends its series, in exposition
// order, to a sink. The dto sink builds the messages (Gather, protobuf,
// client_golang's Collect); the text sink writes the text and OpenMetrics
// formats directly, byte for byte what expfmt writes for those messages
// (TestTextMatchesExpfmt checks it), with no message and no garbage per
// series.

// generator is one family of a scrape: its fixed part and the function
// that sends its series, in the order a Registry sorts them, to a sink.
// size is about how many series it sends.
type generator struct {
	f    *family
	size int
	send func(s sink)
}

// sink receives the series of one family.
type sink interface {
	gauge(labels []*dto.LabelPair, v float64)
	counter(labels []*dto.LabelPair, v float64, ex *dto.Exemplar)
	histogram(labels []*dto.LabelPair, h *histogramValues)
}

// histogramValues is one series of a histogram: the cumulative counts of
// its buckets (upper bounds bounds, +Inf left out), its count and sum.
type histogramValues struct {
	bounds []float64
	cum    []uint64
	count  uint64
	sum    float64
}

// sortGenerators sorts gs by family name.
func sortGenerators(gs []generator) {
	slices.SortStableFunc(gs, func(a, b generator) int { return strings.Compare(a.f.name, b.f.name) })
}

// dtoSink builds one family's dto messages from an arena.
type dtoSink struct {
	a  *arena
	mf *dto.MetricFamily
}

func (d *dtoSink) gauge(l []*dto.LabelPair, v float64) {
	d.mf.Metric = append(d.mf.Metric, d.a.gauge(l, v))
}

func (d *dtoSink) counter(l []*dto.LabelPair, v float64, ex *dto.Exemplar) {
	d.mf.Metric = append(d.mf.Metric, d.a.counter(l, v, ex))
}

func (d *dtoSink) histogram(l []*dto.LabelPair, h *histogramValues) {
	counts := make([]uint64, len(h.cum)+1)
	copy(counts, h.cum)
	counts[len(h.cum)] = h.count
	buckets := make([]dto.Bucket, len(h.cum))
	ptrs := make([]*dto.Bucket, len(h.cum))
	for i := range h.cum {
		buckets[i].CumulativeCount, buckets[i].UpperBound = &counts[i], &h.bounds[i]
		ptrs[i] = &buckets[i]
	}
	m := d.a.metrics.next()
	m.Label = l
	m.Histogram = &dto.Histogram{SampleCount: &counts[len(h.cum)], SampleSum: d.a.float(h.sum), Bucket: ptrs}
	d.mf.Metric = append(d.mf.Metric, m)
}

// familiesOf builds the dto families of gs, leaving out those without
// series (as a Registry does).
func familiesOf(gs []generator) []*dto.MetricFamily {
	n := 0
	for _, g := range gs {
		n += g.size
	}
	s := &dtoSink{a: newArena(n + 16)}
	out := make([]*dto.MetricFamily, 0, len(gs))
	for _, g := range gs {
		s.mf = g.f.start(g.size)
		g.send(s)
		if len(s.mf.Metric) > 0 {
			out = append(out, s.mf)
		}
	}
	return out
}

// textSink writes families in the text format (0.0.4 and 1.0.0: every name
// respawnd writes is a legacy name, which both write alike) or OpenMetrics
// 1.0.0 (and 0.0.1, which expfmt writes alike) to w, through a buffer. It
// is also the io.Writer through which expfmt writes the other families, so
// that everything keeps its order. The first error writing to w is kept
// and returned by flush; writes after it are dropped.
type textSink struct {
	w   io.Writer
	buf []byte
	err error
	om  bool

	// The family being written: its header is written with its first
	// series (a family without series is left out).
	f       *family
	started bool
}

// textFlushAt is the size at which the buffer is written out.
const textFlushAt = 32 << 10

func newTextSink(w io.Writer, om bool) *textSink {
	return &textSink{w: w, om: om, buf: make([]byte, 0, textFlushAt+4<<10)}
}

// Write implements io.Writer for expfmt's encoder.
func (t *textSink) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	t.maybeFlush()
	return len(p), t.err
}

func (t *textSink) maybeFlush() {
	if len(t.buf) >= textFlushAt {
		t.flush()
	}
}

// flush writes out what is buffered and returns the first write error.
func (t *textSink) flush() error {
	if t.err == nil && len(t.buf) > 0 {
		_, t.err = t.w.Write(t.buf)
	}
	t.buf = t.buf[:0]
	return t.err
}

// begin starts family f.
func (t *textSink) begin(f *family) {
	t.f, t.started = f, false
}

// header writes the family's HELP and TYPE lines, once.
func (t *textSink) header() {
	if t.started {
		return
	}
	t.started = true
	f := t.f
	name := f.name
	if t.om && f.typ == dto.MetricType_COUNTER && strings.HasSuffix(name, "_total") {
		name = strings.TrimSuffix(name, "_total")
	}
	t.buf = append(t.buf, "# HELP "...)
	t.buf = append(t.buf, name...)
	t.buf = append(t.buf, ' ')
	t.buf = appendEscaped(t.buf, f.help, t.om)
	t.buf = append(t.buf, "\n# TYPE "...)
	t.buf = append(t.buf, name...)
	switch f.typ {
	case dto.MetricType_COUNTER:
		t.buf = append(t.buf, " counter\n"...)
	case dto.MetricType_GAUGE:
		t.buf = append(t.buf, " gauge\n"...)
	case dto.MetricType_HISTOGRAM:
		t.buf = append(t.buf, " histogram\n"...)
	default:
		// newFamily admits no other type.
		t.buf = append(t.buf, " untyped\n"...)
	}
}

func (t *textSink) gauge(l []*dto.LabelPair, v float64) {
	t.header()
	t.sample("", l, "", 0, v)
	t.end()
}

func (t *textSink) counter(l []*dto.LabelPair, v float64, ex *dto.Exemplar) {
	t.header()
	t.sample("", l, "", 0, v)
	if t.om && ex != nil && len(ex.Label) > 0 {
		t.exemplar(ex)
	}
	t.end()
}

func (t *textSink) histogram(l []*dto.LabelPair, h *histogramValues) {
	t.header()
	for i, c := range h.cum {
		t.count("_bucket", l, "le", h.bounds[i], c)
		t.end()
	}
	t.count("_bucket", l, "le", math.Inf(1), h.count)
	t.end()
	t.sample("_sum", l, "", 0, h.sum)
	t.end()
	t.count("_count", l, "", 0, h.count)
	t.end()
}

// sample writes a sample line up to its value; end ends it.
func (t *textSink) sample(suffix string, l []*dto.LabelPair, extra string, extraValue, v float64) {
	t.labels(suffix, l, extra, extraValue)
	t.buf = append(t.buf, ' ')
	t.buf = appendValue(t.buf, v, t.om)
}

// count writes a sample line of a histogram's count up to its value:
// OpenMetrics writes counts as integers, the text format as floats.
func (t *textSink) count(suffix string, l []*dto.LabelPair, extra string, extraValue float64, c uint64) {
	if !t.om {
		t.sample(suffix, l, extra, extraValue, float64(c))
		return
	}
	t.labels(suffix, l, extra, extraValue)
	t.buf = append(t.buf, ' ')
	t.buf = strconv.AppendUint(t.buf, c, 10)
}

func (t *textSink) end() {
	t.buf = append(t.buf, '\n')
	t.maybeFlush()
}

// labels writes the sample's name and labels, extra (with a float value,
// as le) last when not "".
func (t *textSink) labels(suffix string, l []*dto.LabelPair, extra string, extraValue float64) {
	t.buf = append(t.buf, t.f.name...)
	t.buf = append(t.buf, suffix...)
	t.buf = appendLabels(t.buf, l, extra, extraValue, t.om)
}

// exemplar writes an OpenMetrics exemplar; a timestamp that is not valid
// fails the scrape, as it fails expfmt's.
func (t *textSink) exemplar(ex *dto.Exemplar) {
	t.buf = append(t.buf, " # "...)
	t.buf = appendLabels(t.buf, ex.Label, "", 0, true)
	t.buf = append(t.buf, ' ')
	t.buf = appendValue(t.buf, ex.GetValue(), true)
	if ex.Timestamp != nil {
		if err := ex.Timestamp.CheckValid(); err != nil {
			if t.err == nil {
				t.err = err
			}
			return
		}
		t.buf = append(t.buf, ' ')
		t.buf = appendValue(t.buf, float64(ex.Timestamp.AsTime().UnixNano())/1e9, true)
	}
}

func appendLabels(b []byte, l []*dto.LabelPair, extra string, extraValue float64, om bool) []byte {
	if len(l) == 0 && extra == "" {
		return b
	}
	sep := byte('{')
	for _, lp := range l {
		b = append(b, sep)
		b = append(b, lp.GetName()...)
		b = append(b, `="`...)
		b = appendEscaped(b, lp.GetValue(), true)
		b = append(b, '"')
		sep = ','
	}
	if extra != "" {
		b = append(b, sep)
		b = append(b, extra...)
		b = append(b, `="`...)
		b = appendValue(b, extraValue, om)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendEscaped appends v with '\' and newline escaped, and '"' too when
// quote is set.
func appendEscaped(b []byte, v string, quote bool) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue appends f as the text format writes a value, or as
// OpenMetrics does: with a decimal point or exponent always.
func appendValue(b []byte, f float64, om bool) []byte {
	switch {
	case f == 1 && om:
		return append(b, "1.0"...)
	case f == 0 && om:
		return append(b, "0.0"...)
	case f == -1 && om:
		return append(b, "-1.0"...)
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	if om && !bytes.ContainsAny(b[start:], "e.") {
		b = append(b, ".0"...)
	}
	return b
}

// directFormat reports whether f is a format the text sink writes: the
// text format, or OpenMetrics 0.0.1 or 1.0.0; and whether it is
// OpenMetrics.
func directFormat(f expfmt.Format) (ok, om bool) {
	switch f.FormatType() {
	case expfmt.TypeTextPlain:
		return true, false
	case expfmt.TypeOpenMetrics:
		v := f.Version()
		return v == expfmt.OpenMetricsVersion_1_0_0 || v == expfmt.OpenMetricsVersion_0_0_1, true
	}
	return false, false
}
