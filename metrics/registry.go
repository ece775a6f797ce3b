package metrics

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
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
	var extra []*dto.MetricFamily
	if r.rec != nil {
		extra = append(extra, r.rec.families()...)
	}
	if r.c != nil {
		cmfs, cerr := r.c.families()
		extra = append(extra, cmfs...)
		err = errors.Join(err, cerr)
	}
	mfs, merr := mergeFamilies(mfs, extra)
	return mfs, errors.Join(err, merr)
}

// Handler serves reg's metrics in the text format, or OpenMetrics (with
// exemplars) when the scraper asks for it, and counts its own scrapes in
// promhttp_metric_handler_requests_total. Scrapes may run concurrently.
//
// A scraper that accepts gzip (Prometheus does) gets the response
// compressed at gzip's fastest level rather than at promhttp's default:
// exposition text compresses about twenty-fold either way (2.0 MB to 106
// KB at the default level, 108 KB at the fastest, for a thousand programs),
// but the default level spent 11 ms of a 1,000-program scrape on it, the
// fastest 3 ms.
func Handler(reg *Registry) http.Handler {
	h := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:      promhttp.ContinueOnError,
		Registry:           reg,
		EnableOpenMetrics:  true,
		DisableCompression: true,
		// Every scrape reads /proc for every program: a flood of scrapes
		// is refused (503) rather than queued.
		MaxRequestsInFlight: 40,
	}))
	return gzipFast(h)
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
