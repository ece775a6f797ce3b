package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// BenchmarkHangRestart hangs an HTTP server under respawnd (SIGSTOP) again
// and again and measures the time from the hang to its new instance
// running, against the ideal: failures × period of its health check, the
// least a check that needs that many failures in a row can take. The
// detection itself is bounded by (failures-1) × period + timeout after the
// first probe that fails, which comes up to a period after the hang.
// The hang falls at a random phase of the probes' schedule, so the wait
// for the first failing probe is spread over a period.
// Reported: p50 and p99 of hang → new instance, and the ideal.
func BenchmarkHangRestart(b *testing.B) {
	testenv.RequireRoot(b, "hang benchmark")
	const hangs = 30
	const period, timeout, failures = 200 * time.Millisecond, 100 * time.Millisecond, 3
	prog, err := notifyprogPath()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	stateDir := filepath.Join(dir, "state")
	l := freeAddr(b)
	cfg := filepath.Join(dir, "bench.yaml")
	y := fmt.Sprintf(`programs:
  - name: web
    command: [%q, "-http", %q]
    restart: {backoff: {initial: 1ms, max: 1ms, jitter: 0}, limit: {burst: 1000, interval: 1s}}
    health: {http: {url: "http://%s/healthz"}, period: %s, timeout: %s, failures: %d}
`, prog, l, l, period, timeout, failures)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "--log.level=warn", "--web.listen-address=127.0.0.1:0", "--state.dir="+stateDir, "--config", cfg)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	cl := api.NewClient(api.SocketPath(stateDir))
	ready := func(not int) (int, time.Time) {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ps, err := cl.Programs(ctx)
			cancel()
			if err == nil && len(ps) == 1 && ps[0].PID != 0 && ps[0].PID != not {
				return ps[0].PID, time.Now()
			}
			time.Sleep(2 * time.Millisecond)
		}
		b.Fatal("web never ran again")
		return 0, time.Time{}
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pid, _ := ready(0)
		for range hangs {
			// Hang a server that has been answering for a while, at a
			// random phase of its probes' schedule.
			time.Sleep(3*period + rand.N(period))
			hung := time.Now()
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				b.Fatal(err)
			}
			next, at := ready(pid)
			lat = append(lat, at.Sub(hung))
			pid = next
		}
	}
	b.StopTimer()
	ideal := time.Duration(failures) * period
	p50, p99 := quantile(lat, 0.50), quantile(lat, 0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(ideal.Microseconds())/1000, "ideal-ms")
	b.Logf("%d hangs: hang → new instance p50 %v p99 %v; ideal (failures × period) %v, worst case (a period to the first failing probe, failures-1 more, its timeout) %v",
		len(lat), p50, p99, ideal, ideal+timeout)
}
