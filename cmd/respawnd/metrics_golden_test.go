package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/respawnd/respawnd/internal/testenv"
)

var updateMetricsGolden = flag.Bool("update", false, "rewrite deploy/metrics.prom from a scrape of the real respawnd")

// metricsGolden is the contract of the deployment (its dashboard, alerts
// and recording rules are checked against it in deploy/).
const metricsGolden = "../../deploy/metrics.prom"

// metricsGoldenHeader opens the golden file; the scrape follows it.
const metricsGoldenHeader = `# The metrics respawnd exports: the contract the dashboard, the alerting and
# the recording rules are checked against (see deploy/contract_test.go).
# Generated from a scrape of the real respawnd supervising one program with a
# memory limit, warn_above and recycle (the _warn_bytes and _recycle_bytes
# gauges exist only for programs that set them), a health check and an
# sd_notify watchdog (the health check and notify series likewise) on a host
# with cgroup v2 and PSI (the memory pressure metrics); do not edit.
# Regenerate with:
#   go test ./cmd/respawnd -run MetricsGolden -update
# Only names, types, help texts, label names and bounded label values are the
# contract: every value is written as 0, and label values that vary from one
# build to the next (versions, revisions, platforms) as "*". Label values that
# come from a fixed set (reason, result, state, source, kind, window) are listed in full:
# queries may only match on those values. The metrics handler's own promhttp_*
# series are left out: nothing in the deployment may depend on them.
`

// goldenCgroupPSIOnly are the families that exist only where programs'
// cgroups have memory.pressure (cgroup v2 with PSI on). On another host the
// comparison leaves them out, and -update keeps the file's.
var goldenCgroupPSIOnly = []string{"respawnd_program_memory_pressure_seconds_total"}

// goldenBuildLabels are the labels whose values depend on the build, not on
// respawnd: *_info metrics of the version collector and the Go collector.
var goldenBuildLabels = []string{"branch", "goarch", "goos", "goversion", "revision", "tags", "version"}

// TestMetricsGolden scrapes the real respawnd and compares the normalised
// exposition with deploy/metrics.prom.
func TestMetricsGolden(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd with a memory cgroup")
	dir := t.TempDir()
	// The health check probes respawnd's own listener.
	web := freeAddr(t)
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: golden
    command: %s
    memory: {max: 64MiB, warn_above: 80%%, recycle: {above: 90%%, for: 30s}}
    health: {tcp: {address: "%s"}, period: 1s}
    notify: {watchdog: 24h}
`, helperCommand("sleep"), web))
	d := startRespawnd(t, "--config", cfg, "--web.listen-address", web)
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	addr, _ := l["address"].(string)
	l, _ = d.waitLog(0, map[string]any{"msg": "state changed", "program": "golden", "state": "running"})
	// One restart: a program's restart histogram appears with its first.
	pid, _ := l["pid"].(float64)
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatalf("killing golden's pid %v: %v", pid, err)
	}
	d.waitLog(0, map[string]any{"msg": "state changed", "program": "golden", "state": "running", "generation": float64(2)})

	// Scrape until every series of a running program with a cgroup is in:
	// RSS and cgroup memory are read at scrape time.
	var body []byte
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, fams = goldenScrape(t, addr)
		if goldenComplete(fams) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scrape never held every series of a running program:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range []string{"respawnd_supervisor_healthy", "respawnd_internal_panics_total", "respawnd_build_info"} {
		if fams[name] == nil {
			t.Errorf("the scrape has no %s", name)
		}
	}

	got := append([]byte(metricsGoldenHeader), goldenNormalise(t, fams)...)
	old, err := os.ReadFile(metricsGolden)
	if err != nil && !*updateMetricsGolden {
		t.Fatal(err)
	}
	if fams[goldenCgroupPSIOnly[0]] == nil {
		t.Logf("no memory.pressure in program cgroups here (cgroup v1, or PSI off): %v compared on cgroup v2 with PSI only", goldenCgroupPSIOnly)
		if *updateMetricsGolden {
			got = goldenSplice(got, old, goldenCgroupPSIOnly)
		} else {
			old = goldenStrip(old, goldenCgroupPSIOnly)
		}
	}
	if *updateMetricsGolden {
		if err := os.WriteFile(metricsGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", filepath.Clean(metricsGolden))
		return
	}
	want := old
	if !bytes.Equal(got, want) {
		t.Errorf("the scrape differs from %s (regenerate it with go test ./cmd/respawnd -run MetricsGolden -update, then check deploy/ with cd deploy && go test ./...):\n%s",
			filepath.Clean(metricsGolden), goldenDiff(string(want), string(got)))
	}
}

// goldenScrape fetches /metrics in the text format and parses it.
func goldenScrape(t *testing.T, addr string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	req.Close = true // no idle connection outlives the test
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d, %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return body, fams
}

// goldenComplete reports whether the scrape shows program golden running with
// its process tree's RSS and its cgroup's usage and limit.
func goldenComplete(fams map[string]*dto.MetricFamily) bool {
	has := func(name string, want float64) bool {
		for _, m := range fams[name].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "program" && lp.GetValue() == "golden" && (want < 0 || m.GetGauge().GetValue() == want) {
					return true
				}
			}
		}
		return false
	}
	// The health check's histogram appears with the first check, the one
	// that makes the program ready (up); a scrape gathers it before it reads
	// up, so one scrape can hold up 1 without it: wait for both.
	return has("respawnd_program_up", 1) && has("respawnd_program_memory_rss_bytes", -1) &&
		has("respawnd_program_memory_usage_bytes", -1) && has("respawnd_program_memory_limit_bytes", -1) &&
		has("respawnd_program_health_check_duration_seconds", -1)
}

// goldenNormalise writes the families other than promhttp_* in name order,
// with every value 0 and the values of build labels "*".
func goldenNormalise(t *testing.T, fams map[string]*dto.MetricFamily) []byte {
	t.Helper()
	names := make([]string, 0, len(fams))
	for n := range fams {
		if !strings.HasPrefix(n, "promhttp_") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, n := range names {
		f := fams[n]
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if slices.Contains(goldenBuildLabels, lp.GetName()) && strings.HasSuffix(n, "_info") {
					lp.Value = new("*")
				}
			}
			goldenZero(m)
		}
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			t.Fatalf("encoding %s: %v", n, err)
		}
	}
	return buf.Bytes()
}

// goldenZero sets every value of m to 0, keeping its labels, buckets and
// quantiles.
func goldenZero(m *dto.Metric) {
	m.TimestampMs = nil
	switch {
	case m.Counter != nil:
		m.Counter = &dto.Counter{Value: new(0.0)}
	case m.Gauge != nil:
		m.Gauge = &dto.Gauge{Value: new(0.0)}
	case m.Untyped != nil:
		m.Untyped = &dto.Untyped{Value: new(0.0)}
	case m.Summary != nil:
		for _, q := range m.Summary.Quantile {
			q.Value = new(0.0)
		}
		m.Summary.SampleCount, m.Summary.SampleSum = new(uint64(0)), new(0.0)
	case m.Histogram != nil:
		for _, b := range m.Histogram.Bucket {
			b.CumulativeCount = new(uint64(0))
			b.Exemplar = nil
		}
		m.Histogram.SampleCount, m.Histogram.SampleSum = new(uint64(0)), new(0.0)
	}
}

// goldenDiff lists the lines only in want (-) and only in got (+).
func goldenDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for l := range strings.SplitSeq(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for l := range strings.SplitSeq(want, "\n") {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range strings.SplitSeq(got, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// goldenBlocks splits exposition text into its header (the comment lines
// before the first family) and each family's block, by name.
func goldenBlocks(b []byte) (header string, names []string, blocks map[string]string) {
	blocks = map[string]string{}
	cur := ""
	var sb strings.Builder
	flush := func() {
		if cur == "" {
			header = sb.String()
		} else {
			blocks[cur] = sb.String()
		}
		sb.Reset()
	}
	for line := range strings.SplitAfterSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			flush()
			cur, _, _ = strings.Cut(rest, " ")
			names = append(names, cur)
		}
		sb.WriteString(line)
	}
	flush()
	return header, names, blocks
}

// goldenStrip drops the families named from exposition text.
func goldenStrip(b []byte, drop []string) []byte {
	header, names, blocks := goldenBlocks(b)
	out := header
	for _, n := range names {
		if !slices.Contains(drop, n) {
			out += blocks[n]
		}
	}
	return []byte(out)
}

// goldenSplice adds to got the blocks of the families named, from old, in
// name order.
func goldenSplice(got, old []byte, keep []string) []byte {
	header, names, blocks := goldenBlocks(got)
	_, _, oldBlocks := goldenBlocks(old)
	for _, n := range keep {
		if b, ok := oldBlocks[n]; ok {
			blocks[n] = b
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := header
	for _, n := range names {
		out += blocks[n]
	}
	return []byte(out)
}
