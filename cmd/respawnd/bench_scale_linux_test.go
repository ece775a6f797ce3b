package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// buildRespawnd builds the real binary (not the test binary, which carries
// the tests' code) as the Dockerfile builds the released one, static:
// footprint figures are the ones users see. (A build with cgo maps the C
// library too: about 1 MiB more resident, shared with other processes.)
func buildRespawnd(b *testing.B, dir string) string {
	b.Helper()
	out := filepath.Join(dir, "respawnd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/respawnd/respawnd/cmd/respawnd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building respawnd: %v\n%s", err, msg)
	}
	return out
}

// footprint is what the kernel says of pid's memory and threads, read with
// procfs: resident and proportional set size in bytes, and OS threads.
type footprint struct {
	rss, pss, peak uint64 // peak: the highest resident set so far (VmHWM)
	threads        int
}

func footprintOf(b *testing.B, pid int) footprint {
	b.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		b.Fatal(err)
	}
	stat, err := p.Stat()
	if err != nil {
		b.Fatal(err)
	}
	smaps, err := p.ProcSMapsRollup()
	if err != nil {
		b.Fatal(err)
	}
	return footprint{rss: st.VmRSS, pss: smaps.Pss, peak: st.VmHWM, threads: stat.NumThreads}
}

// scrapeValue returns the value of an unlabelled sample in a scrape.
func scrapeValue(scrape []byte, name string) float64 {
	for _, line := range strings.Split(string(scrape), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	return -1
}

// BenchmarkScale runs the real respawnd binary with N sleeping programs at
// their defaults (output lines to respawnd's stdout) and reports its
// footprint: the time until every program runs (and, as a floor measured
// in the same run, the time a bare loop takes to fork and exec as many
// sleeping processes), the latency of a real HTTP
// scrape of /metrics (its /proc reads included) right after, its CPU time
// while idle (RESPAWND_BENCH_IDLE, default 30s, from 6 s after the last
// start: after the collection that ends a burst), and then, at steady state,
// RSS and PSS, OS threads, goroutines and heap in use per program, then the
// resident set right after one more scrape and the highest so far, and
// last the time respawnd takes to stop (SIGTERM until it exits, every
// program stopped). The recycle=200 run puts every program under
// memory.recycle: its idle CPU is the memory watchdog's cost.
//
//	go test ./cmd/respawnd -run '^$' -bench Scale -benchtime 1x
func BenchmarkScale(b *testing.B) {
	testenv.RequireRoot(b, "scale benchmark")
	idle := 30 * time.Second
	if s := os.Getenv("RESPAWND_BENCH_IDLE"); s != "" {
		var err error
		if idle, err = time.ParseDuration(s); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	bin := buildRespawnd(b, dir)
	for _, n := range []int{200, 1000} {
		b.Run(fmt.Sprintf("programs=%d", n), func(b *testing.B) {
			for range b.N {
				benchScale(b, bin, n, idle, "")
			}
		})
	}
	// The memory watchdog's cost: 200 programs under memory.recycle, each
	// measured every second.
	b.Run("recycle=200", func(b *testing.B) {
		for range b.N {
			benchScale(b, bin, 200, idle, ", memory: {max: 256MiB, recycle: {above: 90%, for: 30s}}")
		}
	})
}

func benchScale(b *testing.B, bin string, n int, idle time.Duration, extra string) {
	dir := b.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "limits: {restarts_per_second: %d, restart_burst: %d}\nprograms:\n", n, n)
	for i := range n {
		fmt.Fprintf(&y, "  - {name: p%d, command: [/usr/bin/sleep, '%d']%s}\n", i, 1000000+i, extra)
	}
	cfg := filepath.Join(dir, "scale.yaml")
	if err := os.WriteFile(cfg, []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	floor := startFloor(b, n)
	addr := freeAddrB(b)
	stateDir := filepath.Join(dir, "state")
	cmd := benchDaemon(b, bin, "--log.level=warn", "--web.listen-address="+addr, "--state.dir="+stateDir, "--config", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopBenchDaemon(cmd) })
	cl := api.NewClient(api.SocketPath(stateDir))
	for {
		running, err := countRunning(cl)
		if err == nil && running == n {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			b.Fatalf("only %d of %d programs running after 5 minutes (%v)", running, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	startup := time.Since(t0)
	pid := cmd.Process.Pid

	// Live scrapes, /proc and cgroup reads included: right after the
	// start, while the programs' own start-up still takes the CPU, and
	// (below) at steady state.
	//
	// A scrape asks for gzip, as Prometheus does, and the time is until
	// the last compressed byte arrived: the scraper's own decompression
	// and parsing, which run on its host, are left out (here they would
	// take the same two cores from respawnd).
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	liveScrapes := func() []time.Duration {
		var lat []time.Duration
		for range 21 {
			s := time.Now()
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			lat = append(lat, time.Since(s))
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				b.Fatalf("scrape not gzipped: %v", err)
			}
			scrape, _ := io.ReadAll(zr)
			if !bytes.Contains(scrape, []byte("respawnd_program_up")) {
				b.Fatalf("scrape without program metrics:\n%.500s", scrape)
			}
		}
		return lat
	}
	afterStart := liveScrapes()
	// The start burst ends with one collection that gives its garbage
	// back (the settler, 5 s after the last state change); the idle
	// window starts after it, at steady state.
	time.Sleep(6 * time.Second)
	cpu0 := cpuNS(pid)
	time.Sleep(idle)
	idleCPU := time.Duration(cpuNS(pid) - cpu0)
	// The footprint at steady state, after the idle window: what a daemon
	// keeps between scrapes. Then one more scrape, and the resident set
	// right after it: the most a daemon scraped on a schedule keeps.
	fp := footprintOf(b, pid)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	scraped := footprintOf(b, pid)
	lat := liveScrapes()

	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(floor.Seconds(), "floor-startup-s")
	b.ReportMetric(startup.Seconds()/floor.Seconds(), "startup/floor")
	b.ReportMetric(float64(fp.rss)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(fp.pss)/(1<<20), "pss-MiB")
	b.ReportMetric(float64(scraped.rss)/(1<<20), "rss-scraped-MiB")
	b.ReportMetric(float64(scraped.peak)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(fp.threads), "threads")
	b.ReportMetric(scrapeValue(scrape, "go_goroutines"), "goroutines")
	b.ReportMetric(scrapeValue(scrape, "go_memstats_heap_inuse_bytes")/float64(n)/1024, "heap-KiB/program")
	b.ReportMetric(float64(quantile(lat, 0.5).Microseconds())/1000, "scrape-p50-ms")
	b.ReportMetric(float64(quantile(lat, 0.9).Microseconds())/1000, "scrape-p90-ms")
	b.ReportMetric(float64(quantile(afterStart, 0.5).Microseconds())/1000, "scrape-after-start-p50-ms")
	b.ReportMetric(idleCPU.Seconds()*float64(30*time.Second)/float64(idle), "idle-cpu-s/30s")
	b.ReportMetric(idleCPU.Seconds()*float64(time.Hour)/float64(idle)/float64(n), "cpu-s/program-hour")

	// respawnd's own stop: every program stopped, its cgroup removed.
	t1 := time.Now()
	stopBenchDaemon(cmd)
	b.ReportMetric(time.Since(t1).Seconds(), "stop-s")
}

// startFloor is the floor for starting n programs, measured in the same
// run: the time a bare loop takes to fork and exec the same n sleeping
// processes, one after the other, each in a session of its own as respawnd
// starts them. They are killed and reaped before it returns. (On a host
// where exec does not scale across cores a parallel loop is no faster.)
func startFloor(b *testing.B, n int) time.Duration {
	b.Helper()
	cmds := make([]*exec.Cmd, 0, n)
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	t0 := time.Now()
	for i := range n {
		c := exec.Command("/usr/bin/sleep", strconv.Itoa(1000000+i))
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			b.Fatalf("floor: starting sleep %d: %v", i, err)
		}
		cmds = append(cmds, c)
	}
	return time.Since(t0)
}

// benchDaemon is the command that runs bin with args in the benchmark's
// own cgroup (a shell joins it, then execs respawnd), so that whatever a
// failed or killed run leaves behind, programs and their cgroups, is
// removed with that cgroup when the benchmark ends.
func benchDaemon(b *testing.B, bin string, args ...string) *exec.Cmd {
	procs := filepath.Join(testCgroup(b), "cgroup.procs")
	cmd := exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, procs, bin}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

// countRunning asks respawnd over its socket how many programs run.
func countRunning(cl *api.Client) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := cl.Programs(ctx)
	running := 0
	for _, p := range ps {
		if p.State == "running" {
			running++
		}
	}
	return running, err
}

// stopBenchDaemon stops a respawnd started by a benchmark the way an
// operator would (SIGTERM: it stops every program and waits for them), and
// kills it if that takes more than three minutes.
func stopBenchDaemon(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
	}
}

// freeAddrB is a free loopback address for a benchmark.
func freeAddrB(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
