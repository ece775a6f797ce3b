package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
)

// inProcess is a daemon running inside the test, so that its registry can
// be read directly as well as scraped.
type inProcess struct {
	d    *daemon
	base string
	sock string
}

func startInProcess(t *testing.T, yaml string, args ...string) *inProcess {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load(writeFile(t, dir, "respawnd.yaml", yaml))
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	f := &flags{procfs: "/proc", sysfs: "/sys", kmsg: "/dev/kmsg",
		web: parseWebFlags(t, append([]string{"--web.listen-address=" + addr, "--state.dir=" + dir + "/state"}, args...)...)}
	var logs testenv.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := newDaemon(f, logger, daemonOpts{env: inheritedEnv(nil), serveHTTP: true, serveSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.obs.Ready() {
		t.Error("ready before the configuration is applied")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx, cfg, nil)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Errorf("the daemon did not stop within 60s of its cancellation")
		}
		if t.Failed() {
			t.Logf("respawnd log:\n%s", logs.String())
		}
	})
	p := &inProcess{d: d, base: "http://" + addr, sock: api.SocketPath(dir + "/state")}
	waitHTTP(t, http.DefaultClient, p.base+"/-/healthy")
	return p
}

// programs reads /api/v1/programs into the documented types.
func (p *inProcess) programs(t *testing.T) map[string]api.Program {
	t.Helper()
	resp, err := http.Get(p.base + api.PathPrograms)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	var r api.ProgramsResponse
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding programs: %v", err)
	}
	out := map[string]api.Program{}
	for _, pr := range r.Programs {
		out[pr.Name] = pr
	}
	return out
}

// waitProgram polls the API until ok holds for the named program.
func (p *inProcess) waitProgram(t *testing.T, name string, ok func(api.Program) bool) api.Program {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pr, found := p.programs(t)[name]
		if found && ok(pr) {
			return pr
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %s never reached the wanted status; last %+v", name, pr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsAfterRealDeaths(t *testing.T) {
	testenv.RequireKmsg(t, "following the kernel log")
	testenv.NewMemoryCgroup(t, 64<<20) // probes that memory cgroups work here
	p := startInProcess(t, fmt.Sprintf(`programs:
  - name: hog
    command: %s
    memory: {max: 64MiB, swap_max: 0}
    restart: {policy: never}
  - name: sleeper
    command: %s
    restart: {backoff: {initial: 10ms}}
  - name: failer
    command: %s
    restart: {policy: never}
`, helperCommand("hog"), helperCommand("sleep"), helperCommand("exit", "3")))

	// A real OOM kill and a real non-zero exit.
	hog := p.waitProgram(t, "hog", func(pr api.Program) bool { return pr.LastExit != nil && pr.State == "exited" })
	if hog.LastExit.Reason != "oom_kill" || hog.LastExit.Signal != "SIGKILL" || hog.MemoryLimitBytes == nil || *hog.MemoryLimitBytes != 64<<20 {
		t.Errorf("hog: %+v, last exit %+v", hog, hog.LastExit)
	}
	failer := p.waitProgram(t, "failer", func(pr api.Program) bool { return pr.LastExit != nil && pr.State == "exited" })
	if failer.LastExit.Reason != "exit_error" || failer.LastExit.ExitCode == nil || *failer.LastExit.ExitCode != 3 {
		t.Errorf("failer: last exit %+v", failer.LastExit)
	}
	// A real SIGKILL, then the restart.
	sleeper := p.waitProgram(t, "sleeper", func(pr api.Program) bool { return pr.State == "running" && pr.PID != 0 })
	if sleeper.MemoryRSSBytes == nil || *sleeper.MemoryRSSBytes == 0 || sleeper.StartTime == nil {
		t.Errorf("running sleeper: %+v", sleeper)
	}
	if err := unix.Kill(sleeper.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitProgram(t, "sleeper", func(pr api.Program) bool { return pr.Restarts == 1 && pr.State == "running" })
	want := `
# HELP respawnd_program_exits_total Exits of a program's main process, by final reason (oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown).
# TYPE respawnd_program_exits_total counter
respawnd_program_exits_total{program="failer",reason="exit_error"} 1
respawnd_program_exits_total{program="failer",reason="exit_success"} 0
respawnd_program_exits_total{program="failer",reason="health_check"} 0
respawnd_program_exits_total{program="failer",reason="memory_recycle"} 0
respawnd_program_exits_total{program="failer",reason="oom_kill"} 0
respawnd_program_exits_total{program="failer",reason="signal"} 0
respawnd_program_exits_total{program="failer",reason="start_failure"} 0
respawnd_program_exits_total{program="failer",reason="unknown"} 0
respawnd_program_exits_total{program="failer",reason="watchdog"} 0
respawnd_program_exits_total{program="hog",reason="exit_error"} 0
respawnd_program_exits_total{program="hog",reason="exit_success"} 0
respawnd_program_exits_total{program="hog",reason="health_check"} 0
respawnd_program_exits_total{program="hog",reason="memory_recycle"} 0
respawnd_program_exits_total{program="hog",reason="oom_kill"} 1
respawnd_program_exits_total{program="hog",reason="signal"} 0
respawnd_program_exits_total{program="hog",reason="start_failure"} 0
respawnd_program_exits_total{program="hog",reason="unknown"} 0
respawnd_program_exits_total{program="hog",reason="watchdog"} 0
respawnd_program_exits_total{program="sleeper",reason="exit_error"} 0
respawnd_program_exits_total{program="sleeper",reason="exit_success"} 0
respawnd_program_exits_total{program="sleeper",reason="health_check"} 0
respawnd_program_exits_total{program="sleeper",reason="memory_recycle"} 0
respawnd_program_exits_total{program="sleeper",reason="oom_kill"} 0
respawnd_program_exits_total{program="sleeper",reason="signal"} 1
respawnd_program_exits_total{program="sleeper",reason="start_failure"} 0
respawnd_program_exits_total{program="sleeper",reason="unknown"} 0
respawnd_program_exits_total{program="sleeper",reason="watchdog"} 0
# HELP respawnd_program_oom_kills_total OOM kills of a program's processes, workers included.
# TYPE respawnd_program_oom_kills_total counter
respawnd_program_oom_kills_total{program="failer"} 0
respawnd_program_oom_kills_total{program="hog"} 1
respawnd_program_oom_kills_total{program="sleeper"} 0
# HELP respawnd_program_restarts_total Restarts of a program after an exit.
# TYPE respawnd_program_restarts_total counter
respawnd_program_restarts_total{program="failer"} 0
respawnd_program_restarts_total{program="hog"} 0
respawnd_program_restarts_total{program="sleeper"} 1
# HELP respawnd_program_up Whether the program's main process is running and ready (1) or not (0); a program with a health check or notify.ready is ready once it passed a check or sent READY=1.
# TYPE respawnd_program_up gauge
respawnd_program_up{program="failer"} 0
respawnd_program_up{program="hog"} 0
respawnd_program_up{program="sleeper"} 1
`
	names := []string{"respawnd_program_exits_total", "respawnd_program_oom_kills_total", "respawnd_program_restarts_total", "respawnd_program_up"}
	// The live registry. A reason may still be settling (the attribution
	// window), so poll until the counters agree.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := testutil.GatherAndCompare(p.d.servers.reg, strings.NewReader(want), names...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live registry: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A real scrape, parsed.
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing scrape: %v", err)
	}
	wantParsed, err := parser.TextToMetricFamilies(strings.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	for name, wmf := range wantParsed {
		if got := values(mfs[name]); fmt.Sprint(got) != fmt.Sprint(values(wmf)) {
			t.Errorf("scraped %s = %v, want %v", name, got, values(wmf))
		}
	}
	if v := values(mfs["respawnd_host_oom_kills_total"])[""]; v < 1 {
		t.Errorf("respawnd_host_oom_kills_total = %v, want at least the hog's kill", v)
	}
	// Only the sleeper restarted (the failer and the hog run once): a
	// program's histogram appears with its first restart.
	if v := values(mfs["respawnd_restart_duration_seconds"]); len(v) != 1 || v[`program="sleeper"`] != 1 {
		t.Errorf("restart histogram series %v, want the sleeper's only, with one restart", v)
	}
	for _, src := range []string{"kmsg", "cgroup", "vmstat"} {
		if v := values(mfs["respawnd_oom_source_up"])[`source="`+src+`"`]; v != 1 {
			t.Errorf("oom source %s up = %v, want 1", src, v)
		}
	}
	for _, name := range []string{"respawnd_program_memory_limit_bytes", "respawnd_program_memory_usage_bytes"} {
		if _, ok := values(mfs[name])[`program="hog"`]; !ok {
			t.Errorf("%s has no hog series", name)
		}
	}
	if v := values(mfs["respawnd_program_memory_rss_bytes"])[`program="sleeper"`]; v <= 0 {
		t.Errorf("sleeper rss %v, want > 0", v)
	}
	if v := values(mfs["respawnd_config_last_reload_successful"])[""]; v != 1 {
		t.Errorf("last reload successful = %v", v)
	}
	for _, l := range []string{"respawnd_build_info", "go_goroutines", "process_resident_memory_bytes"} {
		if mfs[l] == nil {
			t.Errorf("scrape has no %s", l)
		}
	}
	for name, mf := range mfs {
		if strings.TrimSpace(mf.GetHelp()) == "" {
			t.Errorf("%s has no help", name)
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "pid" {
					t.Errorf("%s has a pid label", name)
				}
			}
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
	}

	// OpenMetrics shows the killed pid as an exemplar.
	req, _ := http.NewRequest(http.MethodGet, p.base+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	om, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ex := fmt.Sprintf(`respawnd_program_exits_total{program="sleeper",reason="signal"} 1.0 # {pid="%d"} 1.0`, sleeper.PID); !bytes.Contains(om, []byte(ex)) {
		t.Errorf("no exemplar %q in the OpenMetrics scrape", ex)
	}

	// The events, newest first, in the documented types.
	resp, err = http.Get(p.base + api.PathEvents)
	if err != nil {
		t.Fatal(err)
	}
	var er api.EventsResponse
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	err = dec.Decode(&er)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]api.Event{}
	for i, e := range er.Events {
		if i > 0 && e.Time.After(er.Events[i-1].Time) {
			t.Errorf("events not newest first at %d", i)
		}
		if e.Program != nil {
			seen[*e.Program+" "+e.Reason] = e
		}
	}
	if e, ok := seen["hog oom_kill"]; !ok || e.OOM == nil || e.RSSBytes == nil || e.Comm == "" {
		t.Errorf("hog's oom event: %+v (found %v)", e, ok)
	}
	if e, ok := seen["failer exit_error"]; !ok || e.ExitCode == nil || *e.ExitCode != 3 {
		t.Errorf("failer's exit event: %+v", e)
	}
	if e, ok := seen["sleeper signal"]; !ok || e.PID != sleeper.PID || e.Signal != "SIGKILL" {
		t.Errorf("sleeper's kill event: %+v", e)
	}
	if code := httpStatus(t, p.base+api.PathReady); code != http.StatusOK {
		t.Errorf("ready: %d", code)
	}

	// The command line over the control socket.
	out, code := ctl(t, p.sock, "status")
	if code != 0 || !strings.Contains(out, "hog") || !strings.Contains(out, "oom_kill SIGKILL") || !strings.Contains(out, "exit_error 3") || !strings.Contains(out, "/64MiB") {
		t.Errorf("status (%d):\n%s", code, out)
	}
	if out, code := ctl(t, p.sock, "restart", "nope"); code != 1 || !strings.Contains(out, `no such program "nope"`) {
		t.Errorf("restart nope (%d): %s", code, out)
	}
	if out, code := ctl(t, p.sock, "restart", "sleeper"); code != 0 {
		t.Errorf("restart sleeper (%d): %s", code, out)
	}
	p.waitProgram(t, "sleeper", func(pr api.Program) bool { return pr.State == "running" && pr.PID != sleeper.PID && pr.PID != 0 })
	out, code = ctl(t, p.sock, "events", "-o", "json")
	if code != 0 || strings.Count(out, "\n") < 3 || !strings.Contains(out, `"reason":"oom_kill"`) {
		t.Errorf("events -o json (%d):\n%s", code, out)
	}
	if out, code := ctl(t, p.sock, "reload"); code != 1 || !strings.Contains(out, "no configuration file") {
		t.Errorf("reload without a reload channel (%d): %s", code, out)
	}
}

// values maps each series' labels (as `a="b",c="d"`) to its value; a
// histogram's value is its sample count.
func values(mf *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ctl runs a control subcommand against the socket and returns its output
// (stdout then stderr) and exit code.
func ctl(t *testing.T, sock string, args ...string) (string, int) {
	t.Helper()
	var f flags
	app := newTestApp(&f)
	c := newCtlCmds(app)
	cmd, err := app.Parse(append([]string{"--state.dir=" + strings.TrimSuffix(sock, "/"+api.SocketName)}, args...))
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := c.run(cmd, &f, &out, &errOut)
	return out.String() + errOut.String(), code
}

// newTestApp is a kingpin app with the flags the control subcommands use.
func newTestApp(f *flags) *kingpin.Application {
	app := kingpin.New("respawnd", "")
	f.web = addWebFlags(app)
	return app
}

func TestReloadOverSocketAndMetrics(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd as a subreaper")
	dir := t.TempDir()
	sleep := helperCommand("sleep")
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: a, command: %s}\n", sleep))
	state := dir + "/state"
	d := startRespawnd(t, "--config", cfg, "--state.dir", state, "--web.listen-address", "127.0.0.1:0", "--web.enable-lifecycle")
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	base := "http://" + l["address"].(string)
	d.waitLog(0, map[string]any{"msg": "state changed", "program": "a", "state": "running"})
	sock := api.SocketPath(state)

	// A good reload over the socket; then a bad one, rejected with its reason.
	writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: a, command: %s}\n  - {name: b, command: %s}\n", sleep, sleep))
	if out, code := ctl(t, sock, "reload"); code != 0 {
		t.Fatalf("reload (%d): %s", code, out)
	}
	d.waitLog(0, map[string]any{"msg": "state changed", "program": "b", "state": "running"})
	writeFile(t, dir, "respawnd.yaml", "programs:\n  - {name: a, command: []}\n")
	if out, code := ctl(t, sock, "reload"); code != 1 || !strings.Contains(out, "programs[0].command") {
		t.Errorf("bad reload (%d): %s", code, out)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{"respawnd_config_last_reload_successful 0", `respawnd_program_up{program="b"} 1`} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("scrape lacks %q", line)
		}
	}
	// The same over HTTP with --web.enable-lifecycle: the reason in a 500.
	resp, err = http.Post(base+api.PathReload, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "programs[0].command") {
		t.Errorf("POST /-/reload: %d %s", resp.StatusCode, b)
	}
	// Program control over HTTP.
	resp, err = http.Post(base+api.PathPrograms+"/b/stop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST stop b: %d", resp.StatusCode)
	}
	d.waitLog(0, map[string]any{"msg": "state changed", "program": "b", "state": "stopped"})
	// The socket is root's alone.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
}
