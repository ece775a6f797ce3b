package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

// constCollector exports fixed families of every type, named to sort
// before, between and after respawnd's.
type constCollector struct{}

var constDescs = []*prometheus.Desc{
	prometheus.NewDesc("aaa_first", "First \\ help \"with\" escapes\nand a newline.", []string{"x"}, nil),
	prometheus.NewDesc("respawnd_program_m_between_total", "Between.", nil, nil),
	prometheus.NewDesc("respawnd_program_s_summary", "A summary.", []string{"q"}, nil),
	prometheus.NewDesc("zzz_last_seconds", "Last.", nil, nil),
}

func (constCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range constDescs {
		ch <- d
	}
}

func (constCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(constDescs[0], prometheus.GaugeValue, 1e21, "a\"b\\c\nd")
	ch <- prometheus.MustNewConstMetric(constDescs[0], prometheus.GaugeValue, math.Inf(-1), "b")
	ch <- prometheus.MustNewConstMetric(constDescs[1], prometheus.CounterValue, 3)
	ch <- prometheus.MustNewConstSummary(constDescs[2], 4, 2.5, map[float64]float64{0.5: 1, 0.99: 2}, "v")
	ch <- prometheus.MustNewConstHistogram(constDescs[3], 5, 0.25, map[float64]uint64{0.1: 1, 1: 4})
}

// exposeFixture is a Registry of a Recorder and Collector with every kind
// of series: many programs with names that need escaping, exits with
// exemplars (with and without a timestamp), histograms, hooks, loops,
// values that format with exponents and fractions; and registered
// collectors whose families sort among respawnd's.
func exposeFixture(t *testing.T) *Registry {
	t.Helper()
	rnd := rand.New(rand.NewPCG(3, 4))
	rec := NewRecorder()
	names := []string{"a", "b\"quoted\"", "back\\slash", "new\nline", "ünï-cödé", "Z9", "p.x-1_y"}
	for i := range 40 {
		names = append(names, fmt.Sprintf("p%d", i*7%40))
	}
	rec.SetPrograms(names)
	latencies := []time.Duration{0, time.Millisecond, 999 * time.Microsecond, 40 * time.Millisecond, 11 * time.Second}
	for range 400 {
		p := names[rnd.IntN(len(names))]
		switch rnd.IntN(5) {
		case 0:
			rec.Exited(supervisor.Exit{Program: p, PID: rnd.IntN(3) * 1000, Reason: supervisor.Reason(rnd.IntN(9))})
		case 1:
			rec.Restarted(p, latencies[rnd.IntN(len(latencies))])
		case 2:
			rec.OOMKill(p, oom.Kill{})
		case 3:
			rec.HookRun(p, []string{"success", "failure", "timeout"}[rnd.IntN(3)])
		default:
			rec.RecycleLoop(p)
		}
	}
	// An exemplar without a timestamp, and one with a fractional value.
	rec.mu.Lock()
	pid := "77"
	rec.programs["a"].exemplars[0] = &dto.Exemplar{Label: []*dto.LabelPair{{Name: &labelPID, Value: &pid}}, Value: new(float64(0.5))}
	rec.mu.Unlock()
	rec.RestartWaited("a", 3*time.Second)
	rec.HealthCheck("b\"quoted\"", "success", time.Millisecond)

	now := time.Unix(5000, 0)
	src := &testSource{sources: map[string]bool{"kmsg": true, "cgroup": false}, reload: ReloadStatus{Successful: true, LastSuccess: time.Unix(4000, 123)}}
	for i, n := range rnd.Perm(len(names)) {
		s := ProgramSample{Status: supervisor.Status{Name: names[n], State: supervisor.State(i % 9), PID: i % 3 * 100, Ready: i%2 == 0, NextStart: now.Add(time.Duration(i-20) * time.Second)}}
		if i%2 == 0 {
			s.Started = now.Add(-time.Duration(i) * time.Millisecond)
			s.LastExit = &supervisor.Exit{Time: now.Add(-time.Hour)}
			s.WatchdogLastPing = now.Add(-time.Duration(i) * time.Microsecond)
		}
		s.RSSBytes, s.HasRSS = uint64(i)<<12, i%3 != 0
		s.MemoryUsageBytes, s.HasMemoryUsage = uint64(i)<<40+1, i%4 != 0
		s.MemoryLimitBytes, s.HasMemoryLimit = 1<<62, i%5 != 0
		s.WorkingSetBytes, s.HasWorkingSet = uint64(i)*999999, i%2 == 1
		s.WarnBytes, s.HasWarn = 1e6, i%6 == 0
		s.RecycleBytes, s.HasRecycle = 1, i%7 == 0
		s.PressureSome, s.PressureFull, s.HasPressure = time.Duration(i)*time.Microsecond+1, time.Duration(i)*time.Second, i%2 == 0
		s.OutputDroppedLines = uint64(i % 7 * 3)
		src.programs = append(src.programs, s)
	}
	reg := &Registry{Registry: prometheus.NewRegistry(), rec: rec, c: NewCollector(CollectorConfig{Source: src, Now: func() time.Time { return now }})}
	reg.MustRegister(rec.live.collectors()...)
	reg.MustRegister(constCollector{})
	return reg
}

// TestTextMatchesExpfmt checks that the text sink writes, in every format
// it serves, exactly what expfmt writes for the families Gather returns.
func TestTextMatchesExpfmt(t *testing.T) {
	reg := exposeFixture(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []expfmt.Format{expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1} {
		var want bytes.Buffer
		enc := expfmt.NewEncoder(&want, f)
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		var got bytes.Buffer
		gatherErr, writeErr := reg.write(&got, f)
		if gatherErr != nil || writeErr != nil {
			t.Fatalf("%s: %v, %v", f, gatherErr, writeErr)
		}
		if got.String() != want.String() {
			g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Fatalf("%s: line %d differs:\n got %q\nwant %q", f, i+1, g[i], w[i])
				}
			}
			t.Fatalf("%s: %d lines, want %d", f, len(g), len(w))
		}
		for _, s := range []string{`\"quoted\"`, `back\\slash`, `new\nline`, "e+", "# {pid=", "respawnd_restart_duration_seconds_bucket", "aaa_first", "zzz_last"} {
			if s == "# {pid=" && f.FormatType() != expfmt.TypeOpenMetrics {
				continue
			}
			if !strings.Contains(got.String(), s) {
				t.Errorf("%s: the fixture lacks %q", f, s)
			}
		}
	}
}

// TestAppendValue checks value formatting against expfmt on values that
// take every branch.
func TestAppendValue(t *testing.T) {
	for _, v := range []float64{0, 1, -1, 2, -2, 0.5, 1e6, 1e21, 1e-7, 123456789012, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1)} {
		for _, f := range []expfmt.Format{expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0} {
			var want bytes.Buffer
			mf := &dto.MetricFamily{Name: new("x"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: new(v)}}}}
			if _, err := expfmt.NewEncoder(&want, f).(interface {
				Encode(*dto.MetricFamily) error
			}).Encode(mf), error(nil); err != nil {
				t.Fatal(err)
			}
			_, om := directFormat(f)
			got := "x " + string(appendValue(nil, v, om)) + "\n"
			w := want.String()
			w = w[strings.Index(w, "\nx ")+1:]
			if got != w {
				t.Errorf("%s: %v written %q, want %q", f, v, got, w)
			}
		}
	}
}

// failingWriter is a ResponseWriter whose body writes fail.
type failingWriter struct{ h http.Header }

func (w *failingWriter) Header() http.Header       { return w.h }
func (w *failingWriter) WriteHeader(int)           {}
func (w *failingWriter) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestHandlerFormats checks what each scraper gets: the direct formats,
// protobuf and name[] filters through promhttp, the errors counted.
func TestHandlerFormats(t *testing.T) {
	reg := exposeFixture(t)
	h := Handler(reg)
	get := func(accept, query string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/metrics"+query, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != http.StatusOK {
			t.Fatalf("Accept %q: status %d: %s", accept, rr.Code, rr.Body)
		}
		return rr
	}
	text := get("", "")
	if ct := text.Header().Get("Content-Type"); expfmt.Format(ct).FormatType() != expfmt.TypeTextPlain {
		t.Errorf("no Accept: Content-Type %q", ct)
	}
	if !strings.Contains(text.Body.String(), "\nrespawnd_program_up{program=\"a\"}") || !strings.Contains(text.Body.String(), "promhttp_metric_handler_requests_total") {
		t.Errorf("text scrape lacks series:\n%.2000s", text.Body)
	}
	om := get("application/openmetrics-text;version=1.0.0", "")
	if body := om.Body.String(); !strings.HasSuffix(body, "# EOF\n") || !strings.Contains(body, "# {pid=") {
		t.Errorf("OpenMetrics scrape without exemplars or EOF:\n%.2000s", body)
	}
	proto := get("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "")
	if ct := proto.Header().Get("Content-Type"); expfmt.Format(ct).FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("protobuf scrape: Content-Type %q", ct)
	}
	dec := expfmt.NewDecoder(proto.Body, expfmt.Format(proto.Header().Get("Content-Type")))
	n := 0
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() == "respawnd_program_up" {
			n = len(mf.Metric)
		}
	}
	if n != 47 {
		t.Errorf("protobuf scrape: %d respawnd_program_up series, want 47", n)
	}
	filtered := get("", "?name[]=respawnd_program_up").Body.String()
	if !strings.Contains(filtered, "respawnd_program_up{") || strings.Contains(filtered, "respawnd_program_state") {
		t.Errorf("name[] filter not applied:\n%.1000s", filtered)
	}

	// A scrape whose client has gone counts an encoding error; a program
	// name that is not a label value, a gathering error, and the rest is
	// still served.
	h.ServeHTTP(&failingWriter{h: http.Header{}}, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	src := reg.c.src.(*testSource)
	src.mu.Lock()
	src.programs = append(src.programs, ProgramSample{Status: supervisor.Status{Name: "bad\xff"}})
	src.mu.Unlock()
	if body := get("", "").Body.String(); !strings.Contains(body, "respawnd_program_up{program=\"a\"}") {
		t.Errorf("a gathering error lost the rest:\n%.1000s", body)
	}
	want := `
# HELP promhttp_metric_handler_errors_total Total number of internal errors encountered by the promhttp metric handler.
# TYPE promhttp_metric_handler_errors_total counter
promhttp_metric_handler_errors_total{cause="encoding"} 1
promhttp_metric_handler_errors_total{cause="gathering"} 1
`
	if err := testutil.GatherAndCompare(reg.Registry, strings.NewReader(want), "promhttp_metric_handler_errors_total"); err != nil {
		t.Error(err)
	}
}

// TestScrapeWritesNoSeriesGarbage checks that a direct scrape of a
// thousand programs allocates a bounded amount, not a message per series:
// the dto path allocated some 31,000 objects for it.
func TestScrapeWritesNoSeriesGarbage(t *testing.T) {
	rec := NewRecorder()
	ps := make([]ProgramSample, 1000)
	names := make([]string, len(ps))
	for i := range ps {
		names[i] = fmt.Sprintf("program-%04d", i)
		ps[i] = ProgramSample{Status: supervisor.Status{Name: names[i], State: supervisor.StateRunning, PID: i + 1, Ready: true, Started: time.Unix(1700000000, 0)},
			HasRSS: true, RSSBytes: 1 << 20, HasMemoryUsage: true, MemoryUsageBytes: 2 << 20, HasWorkingSet: true, WorkingSetBytes: 1 << 20}
	}
	rec.SetPrograms(names)
	reg := &Registry{Registry: prometheus.NewRegistry(), rec: rec, c: NewCollector(CollectorConfig{Source: &testSource{programs: ps}})}
	var sink discard
	allocs := testing.AllocsPerRun(5, func() {
		if g, w := reg.write(&sink, expfmt.FmtText); g != nil || w != nil {
			t.Fatal(g, w)
		}
	})
	// The samples' copy, the Recorder's copy, label caches: well under a
	// hundred objects; a message per series would be tens of thousands.
	t.Logf("%.0f allocations per scrape", allocs)
	if allocs > 200 {
		t.Errorf("a direct scrape of 1,000 programs made %.0f allocations", allocs)
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }

// TestScrapeCountsOfOneMoment checks that a Recorder's generators send the
// counts of the moment they were made, whatever is counted while they are
// written: a slow client holds no lock, and reads nothing that changes.
func TestScrapeCountsOfOneMoment(t *testing.T) {
	rec := NewRecorder()
	rec.SetPrograms([]string{"a"})
	rec.HookRun("a", "success")
	rec.Exited(supervisor.Exit{Program: "a", Reason: supervisor.ReasonSignal})
	gs := rec.generators()
	rec.HookRun("a", "success")
	rec.Exited(supervisor.Exit{Program: "a", Reason: supervisor.ReasonSignal})
	rec.Restarted("a", time.Millisecond)
	var b bytes.Buffer
	ts := newTextSink(&b, false)
	for _, g := range gs {
		ts.begin(g.f)
		g.send(ts)
	}
	if err := ts.flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`respawnd_hook_runs_total{program="a",result="success"} 1`, `respawnd_program_exits_total{program="a",reason="signal"} 1`, `respawnd_program_restarts_total{program="a"} 0`} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("scrape lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "respawnd_restart_duration_seconds") {
		t.Errorf("a restart counted after the scrape began is in it:\n%s", b.String())
	}
}
