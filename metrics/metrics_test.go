package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

var _ supervisor.Recorder = (*metrics.Recorder)(nil)

// HookRun is the Outcome of hook.Config.
var _ = hook.Config{Outcome: metrics.NewRecorder().HookRun}

// fakeSource is a Source with fixed answers.
type fakeSource struct {
	mu       sync.Mutex
	programs []metrics.ProgramSample
	sources  map[string]bool
	reload   metrics.ReloadStatus
	health   metrics.Health
}

func (f *fakeSource) Programs() []metrics.ProgramSample {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.programs
}

func (f *fakeSource) OOMSources() map[string]bool      { return f.sources }
func (f *fakeSource) LastReload() metrics.ReloadStatus { return f.reload }
func (f *fakeSource) Health() metrics.Health           { return f.health }
func (f *fakeSource) HostMemory() metrics.HostMemory   { return metrics.HostMemory{} }

func TestRecorderCounts(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.SetPrograms([]string{"api", "worker"})
	rec.Exited(supervisor.Exit{Program: "api", PID: 10, Reason: supervisor.ReasonOOMKill, Signal: syscall.SIGKILL})
	rec.OOMKill("api", oom.Kill{PID: 10})
	rec.Exited(supervisor.Exit{Program: "api", PID: 11, Reason: supervisor.ReasonSignal, Signal: syscall.SIGKILL})
	rec.Exited(supervisor.Exit{Program: "worker", PID: 12, Reason: supervisor.ReasonExitError, Code: 3})
	rec.Restarted("api", 3*time.Millisecond)
	rec.OOMKill("", oom.Kill{PID: 99})
	rec.OOMKill("worker", oom.Kill{PID: 13}) // a worker's OOM kill
	// Events of a program that is not configured are dropped.
	rec.Exited(supervisor.Exit{Program: "gone", PID: 14, Reason: supervisor.ReasonSignal})

	want := `
# HELP respawnd_program_exits_total Exits of a program's main process, by final reason (oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown).
# TYPE respawnd_program_exits_total counter
respawnd_program_exits_total{program="api",reason="exit_error"} 0
respawnd_program_exits_total{program="api",reason="exit_success"} 0
respawnd_program_exits_total{program="api",reason="health_check"} 0
respawnd_program_exits_total{program="api",reason="memory_recycle"} 0
respawnd_program_exits_total{program="api",reason="oom_kill"} 1
respawnd_program_exits_total{program="api",reason="signal"} 1
respawnd_program_exits_total{program="api",reason="start_failure"} 0
respawnd_program_exits_total{program="api",reason="unknown"} 0
respawnd_program_exits_total{program="api",reason="watchdog"} 0
respawnd_program_exits_total{program="worker",reason="exit_error"} 1
respawnd_program_exits_total{program="worker",reason="exit_success"} 0
respawnd_program_exits_total{program="worker",reason="health_check"} 0
respawnd_program_exits_total{program="worker",reason="memory_recycle"} 0
respawnd_program_exits_total{program="worker",reason="oom_kill"} 0
respawnd_program_exits_total{program="worker",reason="signal"} 0
respawnd_program_exits_total{program="worker",reason="start_failure"} 0
respawnd_program_exits_total{program="worker",reason="unknown"} 0
respawnd_program_exits_total{program="worker",reason="watchdog"} 0
# HELP respawnd_program_oom_kills_total OOM kills of a program's processes, workers included.
# TYPE respawnd_program_oom_kills_total counter
respawnd_program_oom_kills_total{program="api"} 1
respawnd_program_oom_kills_total{program="worker"} 1
# HELP respawnd_program_restarts_total Restarts of a program after an exit.
# TYPE respawnd_program_restarts_total counter
respawnd_program_restarts_total{program="api"} 1
respawnd_program_restarts_total{program="worker"} 0
# HELP respawnd_host_oom_kills_total OOM kills on the host seen by respawnd, those of programs' processes included.
# TYPE respawnd_host_oom_kills_total counter
respawnd_host_oom_kills_total 3
`
	if err := testutil.CollectAndCompare(rec, strings.NewReader(want),
		"respawnd_program_exits_total", "respawnd_program_oom_kills_total", "respawnd_program_restarts_total", "respawnd_host_oom_kills_total"); err != nil {
		t.Error(err)
	}
	// Only api restarted: a histogram appears with a program's first restart.
	if n := testutil.CollectAndCount(rec, "respawnd_restart_duration_seconds"); n != 1 {
		t.Errorf("restart histogram has %d series, want 1", n)
	}

	// A reload drops worker: its series go, api's stay.
	rec.SetPrograms([]string{"api", "new"})
	if n := testutil.CollectAndCount(rec, "respawnd_program_exits_total"); n != 18 {
		t.Errorf("after reload: %d exit series, want 14", n)
	}
	wantAfter := `
# HELP respawnd_program_restarts_total Restarts of a program after an exit.
# TYPE respawnd_program_restarts_total counter
respawnd_program_restarts_total{program="api"} 1
respawnd_program_restarts_total{program="new"} 0
`
	if err := testutil.CollectAndCompare(rec, strings.NewReader(wantAfter), "respawnd_program_restarts_total"); err != nil {
		t.Error(err)
	}
	rec.Exited(supervisor.Exit{Program: "worker", PID: 15, Reason: supervisor.ReasonSignal})
	if n := testutil.CollectAndCount(rec, "respawnd_program_oom_kills_total"); n != 2 {
		t.Errorf("after reload: %d oom series, want 2 (api, new)", n)
	}
}

func TestRecorderBeforeSetPrograms(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.Exited(supervisor.Exit{Program: "solo", PID: 1, Reason: supervisor.ReasonExitSuccess})
	if n := testutil.CollectAndCount(rec, "respawnd_program_exits_total"); n != 9 { // oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown
		t.Errorf("%d exit series, want every reason for solo", n)
	}
	rec.SetPrograms(nil)
	if n := testutil.CollectAndCount(rec, "respawnd_program_exits_total"); n != 0 {
		t.Errorf("%d exit series after SetPrograms(nil), want 0", n)
	}
}

func TestCollector(t *testing.T) {
	now := time.Unix(1000, 0)
	src := &fakeSource{
		programs: []metrics.ProgramSample{
			{Status: supervisor.Status{Name: "api", State: supervisor.StateRunning, Ready: true, PID: 42, Started: time.Unix(900, 500e6),
				LastExit: &supervisor.Exit{Time: time.Unix(899, 0)}},
				RSSBytes: 4096, HasRSS: true, MemoryUsageBytes: 8192, HasMemoryUsage: true, MemoryLimitBytes: 1 << 20, HasMemoryLimit: true, OutputDroppedLines: 7},
			{Status: supervisor.Status{Name: "flaky", State: supervisor.StateBackoff, NextStart: time.Unix(1002, 500e6)}},
		},
		sources: map[string]bool{"kmsg": true, "cgroup": false, "vmstat": true},
		reload:  metrics.ReloadStatus{Successful: true, LastSuccess: time.Unix(800, 0)},
		health:  metrics.Health{Panics: 3, Healthy: true},
	}
	c := metrics.NewCollector(metrics.CollectorConfig{Source: src, Now: func() time.Time { return now }})
	want := `
# HELP respawnd_program_up Whether the program's main process is running and ready (1) or not (0); a program with a health check or notify.ready is ready once it passed a check or sent READY=1.
# TYPE respawnd_program_up gauge
respawnd_program_up{program="api"} 1
respawnd_program_up{program="flaky"} 0
# HELP respawnd_program_ready Whether the program is ready (1) or not (0): it sent READY=1 (notify.ready) or passed a health check (health); a running program with neither is ready.
# TYPE respawnd_program_ready gauge
respawnd_program_ready{program="api"} 1
respawnd_program_ready{program="flaky"} 0
# HELP respawnd_program_state The program's current state: 1 for the state it is in, 0 for the others.
# TYPE respawnd_program_state gauge
respawnd_program_state{program="api",state="backoff"} 0
respawnd_program_state{program="api",state="exited"} 0
respawnd_program_state{program="api",state="fatal"} 0
respawnd_program_state{program="api",state="held_for_memory"} 0
respawnd_program_state{program="api",state="oom_loop"} 0
respawnd_program_state{program="api",state="running"} 1
respawnd_program_state{program="api",state="starting"} 0
respawnd_program_state{program="api",state="stopped"} 0
respawnd_program_state{program="api",state="stopping"} 0
respawnd_program_state{program="flaky",state="backoff"} 1
respawnd_program_state{program="flaky",state="exited"} 0
respawnd_program_state{program="flaky",state="fatal"} 0
respawnd_program_state{program="flaky",state="held_for_memory"} 0
respawnd_program_state{program="flaky",state="oom_loop"} 0
respawnd_program_state{program="flaky",state="running"} 0
respawnd_program_state{program="flaky",state="starting"} 0
respawnd_program_state{program="flaky",state="stopped"} 0
respawnd_program_state{program="flaky",state="stopping"} 0
# HELP respawnd_program_start_time_seconds Start time of the program's current process since the Unix epoch in seconds.
# TYPE respawnd_program_start_time_seconds gauge
respawnd_program_start_time_seconds{program="api"} 900.5
respawnd_program_start_time_seconds{program="flaky"} 0
# HELP respawnd_program_last_exit_time_seconds Time of the program's most recent exit since the Unix epoch in seconds.
# TYPE respawnd_program_last_exit_time_seconds gauge
respawnd_program_last_exit_time_seconds{program="api"} 899
respawnd_program_last_exit_time_seconds{program="flaky"} 0
# HELP respawnd_program_backoff_seconds Delay before the program's next start, 0 when none is pending.
# TYPE respawnd_program_backoff_seconds gauge
respawnd_program_backoff_seconds{program="api"} 0
respawnd_program_backoff_seconds{program="flaky"} 2.5
# HELP respawnd_program_memory_rss_bytes Resident set size of the program's process tree in bytes.
# TYPE respawnd_program_memory_rss_bytes gauge
respawnd_program_memory_rss_bytes{program="api"} 4096
# HELP respawnd_program_memory_usage_bytes Memory usage of the program's memory cgroup in bytes.
# TYPE respawnd_program_memory_usage_bytes gauge
respawnd_program_memory_usage_bytes{program="api"} 8192
# HELP respawnd_program_memory_limit_bytes Hard memory limit of the program's memory cgroup in bytes.
# TYPE respawnd_program_memory_limit_bytes gauge
respawnd_program_memory_limit_bytes{program="api"} 1.048576e+06
# HELP respawnd_oom_source_up Whether an OOM evidence source (kmsg, cgroup, vmstat) is working.
# TYPE respawnd_oom_source_up gauge
respawnd_oom_source_up{source="cgroup"} 0
respawnd_oom_source_up{source="kmsg"} 1
respawnd_oom_source_up{source="vmstat"} 1
# HELP respawnd_config_last_reload_successful Whether the last configuration load or reload was successful.
# TYPE respawnd_config_last_reload_successful gauge
respawnd_config_last_reload_successful 1
# HELP respawnd_config_last_reload_success_timestamp_seconds Time of the last successful configuration load or reload since the Unix epoch in seconds.
# TYPE respawnd_config_last_reload_success_timestamp_seconds gauge
respawnd_config_last_reload_success_timestamp_seconds 800
# HELP respawnd_program_restart_held Whether the program's restart is held (1) until the host's memory recovers from an OOM, or not (0).
# TYPE respawnd_program_restart_held gauge
respawnd_program_restart_held{program="api"} 0
respawnd_program_restart_held{program="flaky"} 0
# HELP respawnd_program_output_dropped_lines_total Lines of the program's output that could not be written to its output file or to respawnd's output (a full disk, an I/O error, a failed rotation) and were dropped.
# TYPE respawnd_program_output_dropped_lines_total counter
respawnd_program_output_dropped_lines_total{program="api"} 7
respawnd_program_output_dropped_lines_total{program="flaky"} 0
# HELP respawnd_internal_panics_total Internal errors (panics) recovered in the supervisor's loops; each is logged with its stack.
# TYPE respawnd_internal_panics_total counter
respawnd_internal_panics_total 3
# HELP respawnd_supervisor_healthy Whether every supervisor loop answers its health check (1) or one is stuck (0).
# TYPE respawnd_supervisor_healthy gauge
respawnd_supervisor_healthy 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestRegistryLint lints every metric of a full registry and checks that
// each has help text.
func TestRegistryLint(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.SetPrograms([]string{"api"})
	rec.Restarted("api", time.Millisecond)
	rec.HookRun("api", hook.ResultSuccess)
	src := &fakeSource{
		programs: []metrics.ProgramSample{{Status: supervisor.Status{Name: "api", State: supervisor.StateRunning, Ready: true, PID: 1, Started: time.Now()}, HasRSS: true, HasMemoryUsage: true, HasMemoryLimit: true}},
		sources:  map[string]bool{"kmsg": true},
	}
	reg := metrics.NewRegistry(rec, metrics.NewCollector(metrics.CollectorConfig{Source: src}))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.TrimSpace(mf.GetHelp()) == "" {
			t.Errorf("%s has no help", mf.GetName())
		}
	}
	// The same through promlint's own entry point.
	if _, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil {
		t.Error(err)
	}
}

// TestHookRunResults checks that every result of package hook is counted
// under its own label value, and that the family appears only with a
// program's first hook run.
func TestHookRunResults(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.SetPrograms([]string{"api", "web"})
	if n := testutil.CollectAndCount(rec, "respawnd_hook_runs_total"); n != 0 {
		t.Errorf("%d hook series before any hook ran", n)
	}
	var want strings.Builder
	want.WriteString("# HELP respawnd_hook_runs_total Runs of a program's on_exit hook, by result (success, failure, timeout, start_failure, skipped); a program's series appear with its first.\n# TYPE respawnd_hook_runs_total counter\n")
	results := slices.Sorted(slices.Values(hook.Results))
	for i, r := range results {
		for range i + 1 {
			rec.HookRun("api", r)
		}
	}
	for i, r := range results {
		fmt.Fprintf(&want, "respawnd_hook_runs_total{program=%q,result=%q} %d\n", "api", r, i+1)
	}
	if err := testutil.CollectAndCompare(rec, strings.NewReader(want.String()), "respawnd_hook_runs_total"); err != nil {
		t.Error(err)
	}
	rec.SetPrograms([]string{"web"})
	if n := testutil.CollectAndCount(rec, "respawnd_hook_runs_total"); n != 0 {
		t.Errorf("%d hook series of a removed program", n)
	}
}

func TestExemplarWithOpenMetrics(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.SetPrograms([]string{"api"})
	rec.Exited(supervisor.Exit{Program: "api", PID: 4242, Reason: supervisor.ReasonSignal})
	srv := httptest.NewServer(metrics.Handler(metrics.NewRegistry(rec, nil)))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if got := expfmt.ResponseFormat(resp.Header); got.FormatType() != expfmt.TypeOpenMetrics {
		t.Fatalf("format %v, want OpenMetrics", got)
	}
	line := `respawnd_program_exits_total{program="api",reason="signal"} 1.0 # {pid="4242"} 1.0`
	if !strings.Contains(string(b), line) {
		t.Errorf("no exemplar line %q in\n%s", line, b)
	}
}

// samples returns n running programs.
func samples(n int) []metrics.ProgramSample {
	out := make([]metrics.ProgramSample, n)
	now := time.Now()
	for i := range out {
		out[i] = metrics.ProgramSample{
			Status:   supervisor.Status{Name: fmt.Sprintf("program-%04d", i), State: supervisor.StateRunning, Ready: true, PID: 1000 + i, Started: now, LastExit: &supervisor.Exit{Time: now}},
			RSSBytes: 1 << 20, HasRSS: true, MemoryUsageBytes: 2 << 20, HasMemoryUsage: true, MemoryLimitBytes: 64 << 20, HasMemoryLimit: true,
		}
	}
	return out
}

// BenchmarkScrape1000 scrapes /metrics with 1,000 programs whose every
// counter has moved.
func BenchmarkScrape1000(b *testing.B) {
	const n = 1000
	src := &fakeSource{programs: samples(n), sources: map[string]bool{"kmsg": true, "cgroup": true, "vmstat": true}}
	rec := metrics.NewRecorder()
	names := make([]string, n)
	for i, p := range src.programs {
		names[i] = p.Name
	}
	rec.SetPrograms(names)
	for _, name := range names {
		rec.Exited(supervisor.Exit{Program: name, PID: 7, Reason: supervisor.ReasonSignal})
		rec.Restarted(name, 2*time.Millisecond)
	}
	h := metrics.Handler(metrics.NewRegistry(rec, metrics.NewCollector(metrics.CollectorConfig{Source: src})))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	w := &discardWriter{header: http.Header{}}
	h.ServeHTTP(w, req)
	b.ReportMetric(float64(w.n), "bytes/scrape")
	for b.Loop() {
		w.n, w.code = 0, 0
		clear(w.header)
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK && w.code != 0 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// discardWriter is a ResponseWriter that counts and drops the body, so that
// the benchmark measures the handler rather than a growing buffer.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header  { return w.header }
func (w *discardWriter) WriteHeader(code int) { w.code = code }
func (w *discardWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}
