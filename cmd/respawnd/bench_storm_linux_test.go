package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// stormMax is the most memory the storm may take at its peak: every
// program at its limit at once.
const stormMax = 10 << 30

// BenchmarkOOMStorm OOM-kills 500 programs together, each in its own 16
// MiB memory cgroup (a small static allocator, not an interpreter), under
// respawnd's default restart limits, and reports: the time until all 500
// run again, the restart rate after the bucket's burst, respawnd's peak RSS
// and CPU time during the storm. It checks that every exit was an
// oom_kill, that every program came back, that restarts went in the order
// of the deaths (at the bucket's rate), and that no zombie was left.
// RESPAWND_BENCH_DUMP=FILE writes each program's death and restart times
// there.
//
//	go test ./cmd/respawnd -run '^$' -bench OOMStorm -benchtime 1x
func BenchmarkOOMStorm(b *testing.B) {
	testenv.RequireRoot(b, "an OOM storm in memory cgroups")
	const n, limit = 500, 16 << 20
	if n*limit > stormMax {
		b.Fatalf("the storm would take %d bytes, above the %d bound", n*limit, stormMax)
	}
	if avail := memAvailable(); avail < 2*n*limit {
		testenv.Skip(b, "the storm may take %d bytes at its peak; only %d available", n*limit, avail)
	}
	dir := b.TempDir()
	bin := buildRespawnd(b, dir)
	victim := buildVictim(b, dir)
	for range b.N {
		benchStorm(b, bin, victim, n, limit)
	}
}

// memAvailable is MemAvailable of /proc/meminfo in bytes (0 if unknown).
func memAvailable() int64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	mi, err := fs.Meminfo()
	if err != nil || mi.MemAvailableBytes == nil {
		return 0
	}
	return int64(*mi.MemAvailableBytes)
}

func benchStorm(b *testing.B, bin, victim string, n, limit int) {
	dir := b.TempDir()
	// The victims wait for the storm by reading a byte each from this
	// FIFO; the storm is a byte for every one of them.
	trigger := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(trigger, 0o600); err != nil {
		b.Fatal(err)
	}
	var y strings.Builder
	// The default limits: 50 restarts a second, a burst of 100.
	y.WriteString("programs:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - {name: s%d, command: [%q, storm, %q, %q], memory: {max: %d, swap_max: 0}, restart: {backoff: {initial: 10ms, max: 50ms}}}\n",
			i, victim, trigger, filepath.Join(dir, fmt.Sprintf("s%d.done", i)), limit)
	}
	cfg := filepath.Join(dir, "storm.yaml")
	if err := os.WriteFile(cfg, []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	cmd := benchDaemon(b, bin, "--log.format=json", "--web.listen-address="+freeAddrB(b), "--state.dir="+stateDir, "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var exits, starts []map[string]any
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			mu.Lock()
			switch {
			case m["msg"] == "exited":
				exits = append(exits, m)
			case m["msg"] == "state changed" && m["state"] == "running":
				starts = append(starts, m)
			}
			mu.Unlock()
		}
	}()
	b.Cleanup(func() {
		stopBenchDaemon(cmd)
		<-logDone
	})
	cl := api.NewClient(api.SocketPath(stateDir))
	allRunning := func() bool { running, err := countRunning(cl); return err == nil && running == n }
	deadline := time.Now().Add(5 * time.Minute)
	for !allRunning() {
		if time.Now().After(deadline) {
			b.Fatal("the programs never all ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	mu.Lock()
	firstStarts := len(starts)
	mu.Unlock()

	cpu0 := cpuNS(pid)
	t0 := time.Now()
	// Kept open until the end: the bytes stay in the FIFO until every
	// victim has read its own.
	if f, err := os.OpenFile(trigger, os.O_WRONLY, 0); err != nil {
		b.Fatal(err)
	} else {
		b.Cleanup(func() { _ = f.Close() })
		if _, err := f.Write(bytes.Repeat([]byte{'!'}, n)); err != nil {
			b.Fatal(err)
		}
	}
	var peakRSS uint64
	for {
		peakRSS = max(peakRSS, footprintOf(b, pid).rss)
		mu.Lock()
		restarted := len(starts) - firstStarts
		mu.Unlock()
		if restarted >= n && allRunning() {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			back := map[string]bool{}
			for _, s := range starts[firstStarts:] {
				back[fmt.Sprint(s["program"])] = true
			}
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ps, _ := cl.Programs(ctx)
			cancel()
			var missing []string
			for _, p := range ps {
				if !back[p.Name] {
					missing = append(missing, fmt.Sprintf("%s: state %s pid %d restarts %d last exit %+v", p.Name, p.State, p.PID, p.Restarts, p.LastExit))
				}
			}
			b.Fatalf("only %d of %d programs restarted; not restarted:\n%s", restarted, n, strings.Join(missing, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	back := time.Since(t0)
	cpu := time.Duration(cpuNS(pid) - cpu0)

	mu.Lock()
	defer mu.Unlock()
	if len(exits) != n {
		b.Errorf("%d exits, want %d", len(exits), n)
	}
	for _, e := range exits {
		if e["reason"] != "oom_kill" {
			b.Errorf("exit of %v: %v, want oom_kill", e["program"], e["reason"])
		}
	}
	// Restarts in order: the bucket hands out tokens in the order the
	// deaths asked for them. After its burst, they come at its rate.
	restarts := starts[firstStarts:]
	var times []time.Time
	for _, s := range restarts {
		ts, _ := time.Parse(time.RFC3339Nano, s["time"].(string))
		times = append(times, ts)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	// The bucket's promise: no span of time holds more restarts than the
	// burst plus what the rate refills over it (50/s, a burst of 100: the
	// defaults), whenever the deaths came. The rate after the burst is
	// reported for the note.
	const burst, perSecond = 100, 50.0
	worst := 0.0
	for i := range times {
		for j := i + burst; j < len(times); j++ {
			allowed := burst + perSecond*times[j].Sub(times[i]).Seconds() + 1
			worst = max(worst, float64(j-i+1)/allowed)
		}
	}
	if worst > 1.02 { // log timestamps are taken after the start
		b.Errorf("restarts overran the bucket: a span held %.2f× what the bucket allows", worst)
	}
	var rate float64
	if len(times) > burst+1 {
		rate = float64(len(times)-burst-1) / times[len(times)-1].Sub(times[burst]).Seconds()
	}
	// In order: sorted by death, the restarts come in the same order (a
	// token is reserved at each death).
	died, back2 := map[string]time.Time{}, map[string]time.Time{}
	exitLine := map[string]map[string]any{}
	// A program that died twice (its restart killed as well) has its
	// last death paired with its last restart below; they are counted.
	exitsOf := map[string]int{}
	for _, e := range exits {
		exitsOf[e["program"].(string)]++
	}
	twice := 0
	for _, k := range exitsOf {
		if k > 1 {
			twice++
		}
	}
	b.ReportMetric(float64(twice), "died-twice")
	for _, e := range exits {
		exitLine[e["program"].(string)] = e
	}
	// Each death's own time, from the API: an exit line is logged once
	// its reason is settled and the restart done, so the line's time less
	// attribution_delay put some deaths after their restarts.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ps, err := cl.Programs(ctx)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range ps {
		if p.LastExit != nil {
			died[p.Name] = p.LastExit.Time
		}
	}
	for _, s := range restarts {
		back2[s["program"].(string)], _ = time.Parse(time.RFC3339Nano, s["time"].(string))
	}
	names := make([]string, 0, len(died))
	for name := range died {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return died[a].Compare(died[b]) })
	// Deaths within a few milliseconds of each other are reaped in one
	// batch and have no order to keep; a program that died 50 ms or more
	// before another must not come back after it (10 ms of slack for the
	// log's timestamps). inversions counts the programs that came back
	// before one that died earlier; swapped, as a measure of the whole,
	// the pairs that came back the other way round (a random order: 50%),
	// so that one late restart counts once per pair rather than once for
	// every program that came back before it.
	var inversions, pairs, swapped int
	for i := range names {
		inverted := false
		for j := range i {
			if died[names[i]].Sub(died[names[j]]) < 50*time.Millisecond {
				continue
			}
			pairs++
			if back2[names[i]].Before(back2[names[j]].Add(-10 * time.Millisecond)) {
				swapped++
				inverted = true
			}
		}
		if inverted {
			inversions++
		}
	}
	if pairs > 0 {
		b.ReportMetric(100*float64(swapped)/float64(pairs), "swapped-pairs-%")
	}
	if d := os.Getenv("RESPAWND_BENCH_DUMP"); d != "" {
		var sb strings.Builder
		for _, name := range names {
			fmt.Fprintf(&sb, "%s %s %s %v %v\n", name, died[name].Format("15:04:05.000000"), back2[name].Format("15:04:05.000000"), exitLine[name]["time"], exitLine[name]["attribution_delay"])
		}
		_ = os.WriteFile(d, []byte(sb.String()), 0o644)
	}
	if inversions > len(names)/100 {
		b.Errorf("%d restarts out of the order of the deaths", inversions)
	}
	if z := zombiesOf(pid); len(z) > 0 {
		b.Errorf("zombie children of respawnd after the storm: %v", z)
	}
	b.Logf("all back in %.2fs, %d of %d restarts out of death order, %d programs died twice, %.1f restarts/s after the burst, peak RSS %.1f MiB, CPU %.2fs (%.2f ms per restart)",
		back.Seconds(), inversions, n, twice, rate, float64(peakRSS)/(1<<20), cpu.Seconds(), float64(cpu.Microseconds())/1000/float64(n))
	b.ReportMetric(back.Seconds(), "all-back-s")
	b.ReportMetric(float64(inversions), "out-of-order")
	b.ReportMetric(rate, "restarts/s-after-burst")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/restart")
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(st), ')')
		f := strings.Fields(string(st[i+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}
