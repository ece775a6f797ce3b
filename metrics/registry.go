package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding rec, c (when not nil), the Go and
// process collectors and respawnd_build_info. It panics if a collector
// cannot be registered, which is a programming error.
func NewRegistry(rec *Recorder, c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(Namespace),
		rec,
	)
	if c != nil {
		reg.MustRegister(c)
	}
	return reg
}

// Handler serves reg's metrics in the text format, or OpenMetrics (with
// exemplars) when the scraper asks for it, and counts its own scrapes in
// promhttp_metric_handler_requests_total.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg,
		EnableOpenMetrics: true,
	}))
}
