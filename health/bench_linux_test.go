package health

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// cpuTime returns the user and system CPU time of the whole test process.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverProcess starts the serve helper, an HTTP server in a process of
// its own (so that its CPU time is not the benchmark's), and returns its
// URL.
func serverProcess(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	argv := localHelperArgv("serve", dir)
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = p.Kill()
		_, _ = p.Wait()
	})
	deadline := time.Now().Add(waitTimeout)
	for {
		addr, err := os.ReadFile(filepath.Join(dir, "addr"))
		if err == nil {
			return "http://" + string(addr)
		}
		if time.Now().After(deadline) {
			b.Fatal("the server process did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkHTTPProbe measures one HTTP probe of a local server: a new
// connection, a GET, the answer. cpu-ns/op is the CPU time (user and
// system) of the test process per probe; with httptest it includes the
// server's share.
func BenchmarkHTTPProbe(b *testing.B) {
	b.Run("httptest", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
		b.Cleanup(srv.Close)
		benchmarkHTTPProbe(b, srv.URL)
	})
	b.Run("server-process", func(b *testing.B) {
		benchmarkHTTPProbe(b, serverProcess(b))
	})
}

func benchmarkHTTPProbe(b *testing.B, url string) {
	hp := newHTTPProbe(newHTTPClient(), &config.HTTPProbe{URL: url})
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		if r, reason, _ := hp.run(ctx, 5*time.Second, nil); r != ResultSuccess {
			b.Fatalf("probe = %s %q", r, reason)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkWatch200 runs 200 watches with a period of 1s against one HTTP
// server in another process, for 5s per iteration, and reports the
// checker's CPU time per probe, its share of one CPU, and the goroutines
// per watch.
func BenchmarkWatch200(b *testing.B) {
	const (
		watches = 200
		span    = 5 * time.Second
	)
	url := serverProcess(b)
	h := config.Health{HTTP: &config.HTTPProbe{URL: url}, Period: time.Second, Timeout: time.Second, Failures: 3}
	var cpu, elapsed time.Duration
	var probes, failed int64
	var goroutines float64
	for b.Loop() {
		var n, bad atomic.Int64
		c := New(Config{Observe: func(_ string, r Result, _ time.Duration) {
			n.Add(1)
			if r != ResultSuccess {
				bad.Add(1)
			}
		}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			_ = c.Run(ctx)
			close(done)
		}()
		before := runtime.NumGoroutine()
		start, cpu0 := time.Now(), cpuTime(b)
		for i := range watches {
			c.Watch(fmt.Sprintf("p%d", i), h, restart.Command{}, nil)
		}
		time.Sleep(span / 2)
		goroutines += float64(runtime.NumGoroutine()-before) / watches
		time.Sleep(span / 2)
		cancel()
		<-done
		cpu += cpuTime(b) - cpu0
		elapsed += time.Since(start)
		probes += n.Load()
		failed += bad.Load()
	}
	if failed > 0 {
		b.Errorf("%d of %d probes failed", failed, probes)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(probes), "cpu-ns/probe")
	b.ReportMetric(float64(probes)/float64(b.N), "probes/op")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%")
	b.ReportMetric(goroutines/float64(b.N), "goroutines/watch")
}
