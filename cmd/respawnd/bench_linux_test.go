package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// floorArg makes the test binary run the benchmark's floor: the least a
// supervisor can do, a bare fork/exec/wait loop restarting the program.
const floorArg = "respawnd-bench-floor"

func init() {
	if len(os.Args) > 1 && os.Args[1] == floorArg {
		argv := os.Args[2:]
		for {
			p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if _, err := p.Wait(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

// restarter is a process that keeps the "ready" helper alive: respawnd or
// the floor loop. Each new instance writes its pid to the FIFO once it runs.
type restarter struct {
	name  string
	cmd   *exec.Cmd
	fifo  *bufio.Reader
	pid   int
	lat   []time.Duration
	cpuNS int64
}

func startRestarter(b *testing.B, name, dir string, args func(fifo string) []string, env []string) *restarter {
	b.Helper()
	fifo := filepath.Join(dir, name+".fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		b.Fatal(err)
	}
	// O_RDWR: the FIFO never reads EOF between writers and opening it does
	// not block.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Executable()
	r := &restarter{name: name, fifo: bufio.NewReader(f)}
	r.cmd = exec.Command(exe, args(fifo)...)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := r.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// Should the restarter exit (a config it refuses, say), reading the
	// FIFO fails instead of waiting forever: the FIFO is open for writing
	// here too, so it never reads end of file.
	done := make(chan struct{})
	go func() {
		_ = r.cmd.Wait()
		close(done)
		_ = f.SetReadDeadline(time.Unix(1, 0))
	}()
	b.Cleanup(func() {
		// Stop the restarter first (by pid), then its last program instance.
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-done
		}
		if r.pid > 0 {
			_ = unix.Kill(r.pid, unix.SIGKILL)
		}
		_ = f.Close()
	})
	r.pid = r.next(b)
	return r
}

// next reads the pid of the next instance that reported itself running.
func (r *restarter) next(b *testing.B) int {
	line, err := r.fifo.ReadString('\n')
	if err != nil {
		b.Fatalf("%s: reading fifo: %v", r.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		b.Fatalf("%s: bad pid %q", r.name, line)
	}
	return pid
}

// round kills the running instance n times, each time timing SIGKILL to the
// new instance's own first act (writing its pid).
func (r *restarter) round(b *testing.B, n int) {
	cpu0 := cpuNS(r.cmd.Process.Pid)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := unix.Kill(r.pid, unix.SIGKILL); err != nil {
			b.Fatalf("%s: kill %d: %v", r.name, r.pid, err)
		}
		pid := r.next(b)
		r.lat = append(r.lat, time.Since(t0))
		if pid == r.pid {
			b.Fatalf("%s: same pid after restart", r.name)
		}
		r.pid = pid
	}
	r.cpuNS += cpuNS(r.cmd.Process.Pid) - cpu0
}

// cpuNS is the CPU time of every thread of pid, in nanoseconds, from
// /proc/PID/task/*/schedstat (its first field is time spent on a CPU).
func cpuNS(pid int) int64 {
	paths, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return sum
}

// buildVictim builds the small static program the benchmarks restart.
func buildVictim(b *testing.B, dir string) string {
	b.Helper()
	out := filepath.Join(dir, "benchvictim")
	cmd := exec.Command("go", "build", "-o", out, "github.com/respawnd/respawnd/internal/benchvictim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the victim: %v\n%s", err, msg)
	}
	return out
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

// BenchmarkRestartLatency SIGKILLs a program supervised by respawnd (a
// separate process, as in production) and, in the same run, one kept alive
// by a bare fork/exec/wait loop, alternating rounds so that both see the
// same machine noise. Reported: kill→new-instance-running latency p50/p99 of
// both, their ratio, and respawnd's CPU time per restart.
//
//	go test ./cmd/respawnd -run '^$' -bench RestartLatency -benchtime 1x
func BenchmarkRestartLatency(b *testing.B) {
	testenv.RequireRoot(b, "restart benchmark")
	// others=1000: the victim restarts while a thousand other programs
	// run, each watched and counted like the victim.
	for _, others := range []int{0, 1000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) { benchRestartLatency(b, others) })
	}
}

func benchRestartLatency(b *testing.B, others int) {
	const rounds, perRound = 10, 25 // 250 kills each
	dir := b.TempDir()
	cfg := filepath.Join(dir, "bench.yaml")
	victim := buildVictim(b, dir)
	stateDir := os.Getenv("RESPAWND_BENCH_STATE_DIR") // where respawnd keeps its state file; default a temporary directory
	if stateDir == "" {
		stateDir = filepath.Join(dir, "state")
	}
	helper := func(fifo string) string { return fmt.Sprintf("[%q, \"ready\", %q]", victim, fifo) }
	var resp, floor *restarter
	resp = startRestarter(b, "respawnd", dir, func(fifo string) []string {
		// Limits at their bounds (docs/config.md), far above the kill rate.
		y := fmt.Sprintf(`limits: {restarts_per_second: 10000, restart_burst: 10000}
programs:
  - name: victim
    command: %s
    restart: {reset_after: 1ms, limit: {burst: 1000, interval: 1s}}
`, helper(fifo))
		for i := range others {
			y += fmt.Sprintf("  - {name: o%d, command: [/usr/bin/sleep, '%d']}\n", i, 1000000+i)
		}
		if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
			b.Fatal(err)
		}
		return []string{"--log.level=info", "--web.listen-address=127.0.0.1:0", "--state.dir=" + stateDir, "--config", cfg}
	}, []string{mainEnv + "=1"})
	floor = startRestarter(b, "floor", dir, func(fifo string) []string {
		return []string{floorArg, victim, "ready", fifo}
	}, nil)
	if others > 0 {
		// Measure once all of them run, not while they start.
		cl := api.NewClient(api.SocketPath(stateDir))
		deadline := time.Now().Add(5 * time.Minute)
		for {
			running, err := countRunning(cl)
			if err == nil && running == others+1 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d programs running after 5 minutes (%v)", running, others+1, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// respawnd's own log goes nowhere: it is written after the restart.
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			resp.round(b, perRound)
			floor.round(b, perRound)
		}
	}
	b.StopTimer()
	rp50, rp99 := quantile(resp.lat, 0.50), quantile(resp.lat, 0.99)
	fp50, fp99 := quantile(floor.lat, 0.50), quantile(floor.lat, 0.99)
	n := float64(len(resp.lat))
	b.ReportMetric(float64(rp50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rp99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(fp50.Microseconds())/1000, "floor-p50-ms")
	b.ReportMetric(float64(fp99.Microseconds())/1000, "floor-p99-ms")
	b.ReportMetric(float64(rp50)/float64(fp50), "p50-ratio")
	b.ReportMetric(float64(rp99)/float64(fp99), "p99-ratio")
	b.ReportMetric(float64(resp.cpuNS)/n/1e6, "cpu-ms/restart")
	b.ReportMetric(float64(floor.cpuNS)/n/1e6, "floor-cpu-ms/restart")
	b.Logf("%d kills each: respawnd p50 %v p99 %v; floor p50 %v p99 %v; respawnd cpu %.3f ms/restart (floor %.3f)",
		len(resp.lat), rp50, rp99, fp50, fp99, float64(resp.cpuNS)/n/1e6, float64(floor.cpuNS)/n/1e6)
}
