package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

type testSource struct {
	mu       sync.Mutex
	programs []ProgramSample
	sources  map[string]bool
	reload   ReloadStatus
}

func (s *testSource) Programs() []ProgramSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ProgramSample(nil), s.programs...)
}
func (s *testSource) OOMSources() map[string]bool { return s.sources }
func (s *testSource) LastReload() ReloadStatus    { return s.reload }
func (s *testSource) Health() Health              { return Health{Panics: 2, Healthy: true} }
func (s *testSource) HostMemory() HostMemory {
	return HostMemory{AvailableBytes: 3 << 30, Known: true, Pressure: &HostPressure{Some: [3]float64{0.12, 0.05, 0.01}, Full: [3]float64{0.02, 0.01, 0}}}
}

// recorders is the events of a test applied to both the Recorder and the
// old CounterVec one.
type recorders struct {
	rec *Recorder
	old *oldRecorder
}

func (r recorders) exited(e supervisor.Exit) { r.rec.Exited(e); r.old.Exited(e) }
func (r recorders) restarted(p string, d time.Duration) {
	r.rec.Restarted(p, d)
	r.old.Restarted(p, d)
}
func (r recorders) oomKill(p string)         { r.rec.OOMKill(p, oom.Kill{}); r.old.OOMKill(p, oom.Kill{}) }
func (r recorders) setPrograms(n []string)   { r.rec.SetPrograms(n); r.old.SetPrograms(n) }
func (r recorders) hookRun(p, result string) { r.rec.HookRun(p, result); r.old.HookRun(p, result) }

// encode writes mfs whose names start with respawnd_program, respawnd_restart,
// respawnd_host, respawnd_oom or respawnd_config in format f.
func encode(t *testing.T, mfs []*dto.MetricFamily, f expfmt.Format) string {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, f)
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "respawnd_") || mf.GetName() == "respawnd_build_info" {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
	return buf.String()
}

// TestFamiliesMatchOldPath checks that the directly built families expose
// exactly what the CounterVec/MustNewConstMetric path did, and that a
// Registry that checks every series accepts them unchanged.
func TestFamiliesMatchOldPath(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	r := recorders{NewRecorder(), newOldRecorder()}
	// Events before the first SetPrograms create series.
	r.exited(supervisor.Exit{Program: "early", PID: 5, Reason: supervisor.ReasonSignal})
	r.restarted("early", 2*time.Second)
	r.hookRun("early", "timeout")

	var names []string
	for i := range 60 {
		names = append(names, fmt.Sprintf("p%d.x-%d_y", i*7%60, i))
	}
	names = append(names, "a", "b", "B", "Z9")
	r.setPrograms(append(names, "dropped"))
	r.oomKill("dropped")
	r.hookRun("dropped", "success")
	r.setPrograms(names)
	now := time.Unix(5000, 0)
	latencies := []time.Duration{0, time.Millisecond, 999 * time.Microsecond, 3 * time.Millisecond, 40 * time.Millisecond, time.Second, 10 * time.Second, 11 * time.Second}
	for range 500 {
		p := names[rnd.IntN(len(names))]
		switch rnd.IntN(5) {
		case 4:
			results := []string{"success", "failure", "timeout", "start_failure", "skipped", "other"}
			r.hookRun([]string{p, "gone"}[rnd.IntN(2)], results[rnd.IntN(len(results))])
		case 0:
			r.exited(supervisor.Exit{Program: p, PID: rnd.IntN(3) * 1000, Reason: supervisor.Reason(rnd.IntN(8))})
		case 1:
			r.restarted(p, latencies[rnd.IntN(len(latencies))])
		case 2:
			r.oomKill(p)
		default:
			r.oomKill([]string{"", "gone"}[rnd.IntN(2)])
		}
	}

	src := &testSource{sources: map[string]bool{"kmsg": true, "cgroup": false, "vmstat": true}, reload: ReloadStatus{Successful: false, LastSuccess: time.Unix(4000, 123)}}
	for i, n := range rnd.Perm(len(names)) {
		s := ProgramSample{Status: supervisor.Status{Name: names[n], State: supervisor.State(i % 9), PID: i % 3 * 100, NextStart: now.Add(time.Duration(i-30) * time.Second)}}
		if i%2 == 0 {
			s.Started = now.Add(-time.Duration(i) * time.Millisecond)
			s.LastExit = &supervisor.Exit{Time: now.Add(-time.Hour)}
		}
		s.RSSBytes, s.HasRSS = uint64(i)<<12, i%3 != 0
		s.MemoryUsageBytes, s.HasMemoryUsage = uint64(i)<<20, i%4 != 0
		s.MemoryLimitBytes, s.HasMemoryLimit = 1<<30, i%5 != 0
		s.OutputDroppedLines = uint64(i % 7 * 3)
		src.programs = append(src.programs, s)
	}
	nowFn := func() time.Time { return now }

	oldReg := prometheus.NewRegistry()
	oldReg.MustRegister(r.old, newOldCollector(oldCollectorConfig{Source: src, Now: nowFn}))
	want, err := oldReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := NewCollector(CollectorConfig{Source: src, Now: nowFn})
	got, err := NewRegistry(r.rec, c).Gather()
	if err != nil {
		t.Fatal(err)
	}
	// The same families through a Registry's checks and sorting.
	checkedReg := prometheus.NewRegistry()
	checkedReg.MustRegister(r.rec, c)
	checked, err := checkedReg.Gather()
	if err != nil {
		t.Fatal(err)
	}

	text := expfmt.NewFormat(expfmt.TypeTextPlain)
	w := encode(t, want, text)
	if g := encode(t, got, text); g != w {
		t.Errorf("direct families differ from the old path:\n--- got\n%s\n--- want\n%s", g, w)
	}
	if g := encode(t, checked, text); g != w {
		t.Errorf("checked families differ from the old path:\n--- got\n%s\n--- want\n%s", g, w)
	}
	// Exemplars: the same series carry them; only their timestamps differ.
	om := expfmt.NewFormat(expfmt.TypeOpenMetrics)
	ts := regexp.MustCompile(`(# \{pid="\d+"\} 1\.0) \d+\.\d+`)
	wOM := ts.ReplaceAllString(encode(t, want, om), "$1")
	if g := ts.ReplaceAllString(encode(t, got, om), "$1"); g != wOM {
		t.Errorf("OpenMetrics differs from the old path:\n--- got\n%s\n--- want\n%s", g, wOM)
	}
	if !strings.Contains(wOM, `# {pid="1000"} 1.0`) {
		t.Error("no exemplar in the sample")
	}
}

// TestRegistryGolden checks a small registry's respawnd families, the
// histogram included, against expected exposition text.
func TestRegistryGolden(t *testing.T) {
	rec := NewRecorder()
	rec.SetPrograms([]string{"web", "api"})
	rec.Restarted("api", time.Millisecond)
	rec.Restarted("api", 2*time.Second)
	rec.Restarted("api", time.Minute)
	rec.Exited(supervisor.Exit{Program: "web", Reason: supervisor.ReasonExitSuccess})
	rec.Exited(supervisor.Exit{Program: "api", Reason: supervisor.ReasonMemoryRecycle})
	rec.RecycleLoop("api")
	rec.HookRun("web", "success")
	rec.HookRun("web", "skipped")
	rec.HookRun("web", "skipped")
	rec.HookRun("web", "no such result")
	rec.HookRun("gone", "success")
	src := &testSource{programs: []ProgramSample{
		{Status: supervisor.Status{Name: "web", State: supervisor.StateHeld}},
		{Status: supervisor.Status{Name: "api", State: supervisor.StateRunning, Ready: true, PID: 7, Started: time.Unix(10, 0)}, HasRSS: true, RSSBytes: 10,
			HasWorkingSet: true, WorkingSetBytes: 20, HasWarn: true, WarnBytes: 30, HasRecycle: true, RecycleBytes: 40,
			HasPressure: true, PressureSome: 1500 * time.Millisecond, PressureFull: 250 * time.Millisecond},
	}}
	reg := NewRegistry(rec, NewCollector(CollectorConfig{Source: src}))
	want := `
# HELP respawnd_hook_runs_total Runs of a program's on_exit hook, by result (success, failure, timeout, start_failure, skipped); a program's series appear with its first.
# TYPE respawnd_hook_runs_total counter
respawnd_hook_runs_total{program="web",result="failure"} 0
respawnd_hook_runs_total{program="web",result="skipped"} 2
respawnd_hook_runs_total{program="web",result="start_failure"} 0
respawnd_hook_runs_total{program="web",result="success"} 1
respawnd_hook_runs_total{program="web",result="timeout"} 0
# HELP respawnd_host_memory_available_bytes Memory available on the host for new allocations without swapping (MemAvailable in /proc/meminfo) in bytes.
# TYPE respawnd_host_memory_available_bytes gauge
respawnd_host_memory_available_bytes 3.221225472e+09
# HELP respawnd_host_memory_pressure_ratio Share of time in which some (kind="some") or all (kind="full") non-idle tasks of the host stalled on memory, averaged over the window (avg10, avg60 and avg300 of /proc/pressure/memory, as a ratio).
# TYPE respawnd_host_memory_pressure_ratio gauge
respawnd_host_memory_pressure_ratio{kind="full",window="10s"} 0.02
respawnd_host_memory_pressure_ratio{kind="full",window="300s"} 0
respawnd_host_memory_pressure_ratio{kind="full",window="60s"} 0.01
respawnd_host_memory_pressure_ratio{kind="some",window="10s"} 0.12
respawnd_host_memory_pressure_ratio{kind="some",window="300s"} 0.01
respawnd_host_memory_pressure_ratio{kind="some",window="60s"} 0.05
# HELP respawnd_program_exits_total Exits of a program's main process, by final reason (oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown).
# TYPE respawnd_program_exits_total counter
respawnd_program_exits_total{program="api",reason="exit_error"} 0
respawnd_program_exits_total{program="api",reason="exit_success"} 0
respawnd_program_exits_total{program="api",reason="health_check"} 0
respawnd_program_exits_total{program="api",reason="memory_recycle"} 1
respawnd_program_exits_total{program="api",reason="oom_kill"} 0
respawnd_program_exits_total{program="api",reason="signal"} 0
respawnd_program_exits_total{program="api",reason="start_failure"} 0
respawnd_program_exits_total{program="api",reason="unknown"} 0
respawnd_program_exits_total{program="api",reason="watchdog"} 0
respawnd_program_exits_total{program="web",reason="exit_error"} 0
respawnd_program_exits_total{program="web",reason="exit_success"} 1
respawnd_program_exits_total{program="web",reason="health_check"} 0
respawnd_program_exits_total{program="web",reason="memory_recycle"} 0
respawnd_program_exits_total{program="web",reason="oom_kill"} 0
respawnd_program_exits_total{program="web",reason="signal"} 0
respawnd_program_exits_total{program="web",reason="start_failure"} 0
respawnd_program_exits_total{program="web",reason="unknown"} 0
respawnd_program_exits_total{program="web",reason="watchdog"} 0
# HELP respawnd_program_memory_pressure_seconds_total Time in which some (kind="some") or all (kind="full") of the program's tasks stalled on memory (memory.pressure of its cgroup, cgroup v2 only) in seconds.
# TYPE respawnd_program_memory_pressure_seconds_total counter
respawnd_program_memory_pressure_seconds_total{kind="full",program="api"} 0.25
respawnd_program_memory_pressure_seconds_total{kind="some",program="api"} 1.5
# HELP respawnd_program_memory_recycle_bytes The program's memory recycle threshold (memory.recycle.above) in bytes.
# TYPE respawnd_program_memory_recycle_bytes gauge
respawnd_program_memory_recycle_bytes{program="api"} 40
# HELP respawnd_program_memory_recycle_loops_total Times a program recycled for memory more than 3 times within restart.reset_after, after which its restarts go through the crash backoff; a program's series appears with its first.
# TYPE respawnd_program_memory_recycle_loops_total counter
respawnd_program_memory_recycle_loops_total{program="api"} 1
# HELP respawnd_program_memory_recycles_total Graceful restarts of a program because its memory stayed above its recycle threshold (memory.recycle).
# TYPE respawnd_program_memory_recycles_total counter
respawnd_program_memory_recycles_total{program="api"} 1
respawnd_program_memory_recycles_total{program="web"} 0
# HELP respawnd_program_memory_rss_bytes Resident set size of the program's process tree in bytes.
# TYPE respawnd_program_memory_rss_bytes gauge
respawnd_program_memory_rss_bytes{program="api"} 10
# HELP respawnd_program_memory_warn_bytes The program's memory warning threshold (memory.warn_above) in bytes.
# TYPE respawnd_program_memory_warn_bytes gauge
respawnd_program_memory_warn_bytes{program="api"} 30
# HELP respawnd_program_memory_working_set_bytes Memory usage of the program's memory cgroup less its inactive page cache in bytes, as kubelet computes the working set.
# TYPE respawnd_program_memory_working_set_bytes gauge
respawnd_program_memory_working_set_bytes{program="api"} 20
# HELP respawnd_program_restart_held Whether the program's restart is held (1) until the host's memory recovers from an OOM, or not (0).
# TYPE respawnd_program_restart_held gauge
respawnd_program_restart_held{program="api"} 0
respawnd_program_restart_held{program="web"} 1
# HELP respawnd_program_up Whether the program's main process is running and ready (1) or not (0); a program with a health check or notify.ready is ready once it passed a check or sent READY=1.
# TYPE respawnd_program_up gauge
respawnd_program_up{program="api"} 1
respawnd_program_up{program="web"} 0
# HELP respawnd_restart_duration_seconds Time from a program's death being detected to its new process running, less the wait on purpose (backoff, restart bucket, memory hold) that respawnd_restart_wait_seconds counts; a program's series appear with its first restart.
# TYPE respawnd_restart_duration_seconds histogram
respawnd_restart_duration_seconds_bucket{program="api",le="0.001"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="0.003"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="0.01"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="0.03"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="0.1"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="0.3"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="1"} 1
respawnd_restart_duration_seconds_bucket{program="api",le="3"} 2
respawnd_restart_duration_seconds_bucket{program="api",le="10"} 2
respawnd_restart_duration_seconds_bucket{program="api",le="+Inf"} 3
respawnd_restart_duration_seconds_sum{program="api"} 62.001
respawnd_restart_duration_seconds_count{program="api"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"respawnd_hook_runs_total", "respawnd_program_exits_total", "respawnd_program_memory_rss_bytes", "respawnd_program_up", "respawnd_restart_duration_seconds",
		"respawnd_host_memory_available_bytes", "respawnd_host_memory_pressure_ratio", "respawnd_program_memory_pressure_seconds_total",
		"respawnd_program_memory_recycle_bytes", "respawnd_program_memory_recycle_loops_total", "respawnd_program_memory_recycles_total",
		"respawnd_program_memory_warn_bytes", "respawnd_program_memory_working_set_bytes", "respawnd_program_restart_held"); err != nil {
		t.Error(err)
	}
}

// TestConcurrentScrapes scrapes the handler from several goroutines while
// events, reloads and program changes arrive; run it with -race.
func TestConcurrentScrapes(t *testing.T) {
	rec := NewRecorder()
	names := []string{"a", "b", "c", "d"}
	rec.SetPrograms(names)
	src := &testSource{sources: map[string]bool{"kmsg": true}}
	setSamples := func(ns []string) {
		ps := make([]ProgramSample, len(ns))
		for i, n := range ns {
			ps[i] = ProgramSample{Status: supervisor.Status{Name: n, State: supervisor.StateRunning, Ready: true, PID: i + 1}}
		}
		src.mu.Lock()
		src.programs = ps
		src.mu.Unlock()
	}
	setSamples(names)
	srv := httptest.NewServer(Handler(NewRegistry(rec, NewCollector(CollectorConfig{Source: src}))))
	defer srv.Close()

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			n := names[i%len(names)]
			rec.Exited(supervisor.Exit{Program: n, PID: i + 1, Reason: supervisor.ReasonSignal})
			rec.Restarted(n, time.Duration(i)*time.Millisecond)
			rec.OOMKill(n, oom.Kill{})
			if i%50 == 0 {
				ns := names[:1+i/50%len(names)]
				rec.SetPrograms(ns)
				setSamples(ns)
			}
		}
	})
	var scrapers sync.WaitGroup
	for g := range 4 {
		scrapers.Go(func() {
			for range 25 {
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				if g%2 == 0 {
					req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("respawnd_program_exits_total")) {
					t.Errorf("scrape: %d\n%.300s", resp.StatusCode, b)
					return
				}
			}
		})
	}
	scrapers.Wait()
	close(done)
	wg.Wait()
}
