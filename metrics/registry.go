package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Registry is a prometheus.Registry holding the Go and process collectors
// and respawnd_build_info, whose Gather adds the Recorder's and the
// Collector's families. Those are built directly as dto families rather
// than registered as collectors, so that a scrape of a thousand programs
// skips the Registry's per-series checks and sorting (see families.go).
// Other collectors may be registered with it as usual.
type Registry struct {
	*prometheus.Registry
	rec *Recorder
	c   *Collector
}

// NewRegistry returns a Registry exporting rec and c (either may be nil),
// the Go and process collectors and respawnd_build_info. It panics if a
// collector cannot be registered, which is a programming error.
func NewRegistry(rec *Recorder, c *Collector) *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(Namespace),
	)
	if rec != nil {
		reg.MustRegister(rec.live.collectors()...)
	}
	return &Registry{Registry: reg, rec: rec, c: c}
}

// Gather implements prometheus.Gatherer: the registered collectors'
// families and the Recorder's and Collector's, sorted by name. As with
// prometheus.Registry, an error comes with as many families as could be
// gathered.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := r.Registry.Gather()
	gs, gerr := r.generators()
	mfs, merr := mergeFamilies(mfs, familiesOf(gs))
	return mfs, errors.Join(err, gerr, merr)
}

// generators returns the Recorder's and the Collector's families as
// generators, sorted by name.
func (r *Registry) generators() ([]generator, error) {
	var gs []generator
	var err error
	if r.rec != nil {
		gs = append(gs, r.rec.generators()...)
	}
	if r.c != nil {
		cgs, cerr := r.c.generators()
		gs, err = append(gs, cgs...), cerr
	}
	sortGenerators(gs)
	return gs, err
}

// write writes every family of r to w in format, which directFormat
// admits, as Gather and expfmt's encoder would: the registered
// collectors' families through expfmt, the Recorder's and the
// Collector's through a text sink, in name order. A family of the
// Recorder or the Collector whose name is taken by a registered one is
// left out with an error. It returns the gathering errors and, apart, the
// first error writing to w.
func (r *Registry) write(w io.Writer, format expfmt.Format) (gatherErr, writeErr error) {
	_, om := directFormat(format)
	mfs, err := r.Registry.Gather()
	gs, gerr := r.generators()
	gatherErr = errors.Join(err, gerr)
	t := newTextSink(w, om)
	enc := expfmt.NewEncoder(t, format)
	var dups []error
	for len(mfs) > 0 || len(gs) > 0 {
		if len(gs) == 0 || (len(mfs) > 0 && mfs[0].GetName() <= gs[0].f.name) {
			if len(gs) > 0 && mfs[0].GetName() == gs[0].f.name {
				dups = append(dups, fmt.Errorf("metric family %q exported twice", gs[0].f.name))
				gs = gs[1:]
			}
			if err := enc.Encode(mfs[0]); err != nil && t.err == nil {
				t.err = err
			}
			mfs = mfs[1:]
			continue
		}
		t.begin(gs[0].f)
		gs[0].send(t)
		gs = gs[1:]
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil && t.err == nil {
			t.err = err
		}
	}
	if len(dups) > 0 {
		gatherErr = errors.Join(gatherErr, dups[0])
	}
	return gatherErr, t.flush()
}

// Handler serves reg's metrics in the text format, or OpenMetrics (with
// exemplars) when the scraper asks for it, and counts its own scrapes in
// promhttp_metric_handler_requests_total and its errors in
// promhttp_metric_handler_errors_total. Scrapes may run concurrently.
//
// Those formats are written directly (see exposition.go); the others
// (protobuf) and scrapes that filter by name[] go through promhttp's
// handler, which encodes what Gather returns.
//
// A scraper that accepts gzip (Prometheus does) gets the response
// compressed at gzip's fastest level rather than at promhttp's default:
// exposition text compresses about twenty-fold either way (2.0 MB to 106
// KB at the default level, 108 KB at the fastest, for a thousand programs),
// but the default level spent 11 ms of a 1,000-program scrape on it, the
// fastest 3 ms.
func Handler(reg *Registry) http.Handler {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promhttp_metric_handler_errors_total",
		Help: "Total number of internal errors encountered by the promhttp metric handler.",
	}, []string{"cause"})
	errs.WithLabelValues("gathering")
	errs.WithLabelValues("encoding")
	if err := reg.Register(errs); err != nil {
		are := &prometheus.AlreadyRegisteredError{}
		if !errors.As(err, are) {
			panic(fmt.Sprintf("metrics: registering the handler's error counter: %v", err)) // a programming error
		}
		errs = are.ExistingCollector.(*prometheus.CounterVec)
	}
	// promhttp's handler finds errs registered and counts in it too.
	fallback := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:      promhttp.ContinueOnError,
		Registry:           reg,
		EnableOpenMetrics:  true,
		DisableCompression: true,
	})
	// Every scrape reads /proc for every program: a flood of scrapes is
	// refused (503) rather than queued.
	inFlight := make(chan struct{}, 40)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case inFlight <- struct{}{}:
			defer func() { <-inFlight }()
		default:
			http.Error(w, "Limit of concurrent requests reached (40), try again later.", http.StatusServiceUnavailable)
			return
		}
		format := expfmt.NegotiateAccept(req.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
		direct, _ := directFormat(format)
		if !direct || (req.URL != nil && req.URL.Query().Has("name[]")) {
			fallback.ServeHTTP(w, req)
			return
		}
		w.Header().Add("Vary", "Accept")
		w.Header().Set("Content-Type", string(format))
		gatherErr, writeErr := reg.write(w, format)
		if gatherErr != nil {
			errs.WithLabelValues("gathering").Inc()
		}
		if writeErr != nil {
			errs.WithLabelValues("encoding").Inc()
		}
	})
	return gzipFast(promhttp.InstrumentMetricHandler(reg, h))
}

// gzipFast wraps h in gzip compression at gzip.BestSpeed for clients that
// accept it.
var gzipFast = func() func(http.Handler) http.HandlerFunc {
	w, err := gzhttp.NewWrapper(gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		panic(fmt.Sprintf("metrics: gzip wrapper: %v", err)) // constant options
	}
	return w
}()
