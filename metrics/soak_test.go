package metrics_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/supervisor"
)

// BenchmarkScrapeSoak scrapes a server exporting 1,000 programs 10,000
// times per iteration over real HTTP and reports the live heap and the
// process's resident set before and after, to show that scrapes leave
// nothing behind. Run it once: go test -run X -bench ScrapeSoak -benchtime 1x ./metrics/
func BenchmarkScrapeSoak(b *testing.B) {
	const programs, scrapes = 1000, 10000
	src := &fakeSource{programs: samples(programs), sources: map[string]bool{"kmsg": true, "cgroup": true, "vmstat": true}}
	rec := metrics.NewRecorder()
	names := make([]string, programs)
	for i, p := range src.programs {
		names[i] = p.Name
	}
	rec.SetPrograms(names)
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(rec, metrics.NewCollector(metrics.CollectorConfig{Source: src}))))
	defer srv.Close()
	scrape := func() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for b.Loop() {
		// Warm up (first-use allocations, connection), then measure.
		for range 100 {
			scrape()
		}
		heap0, rss0 := memNow()
		start := time.Now()
		for i := range scrapes {
			scrape()
			// Keep the counters moving, as a live daemon does.
			rec.Exited(supervisor.Exit{Program: names[i%programs], PID: i, Reason: supervisor.ReasonSignal})
		}
		elapsed := time.Since(start)
		heap1, rss1 := memNow()
		b.ReportMetric(float64(elapsed.Milliseconds())/scrapes, "ms/scrape")
		b.ReportMetric(float64(heap0)/(1<<20), "heap-before-MiB")
		b.ReportMetric(float64(heap1)/(1<<20), "heap-after-MiB")
		b.ReportMetric(float64(rss0)/(1<<20), "rss-before-MiB")
		b.ReportMetric(float64(rss1)/(1<<20), "rss-after-MiB")
	}
}

// memNow returns the live heap after a GC and the resident set (0 where
// /proc/self/statm is missing).
func memNow() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		if f := bytes.Fields(b); len(f) > 1 {
			pages, _ := strconv.ParseUint(string(f[1]), 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	return ms.HeapAlloc, rss
}
