package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
)

// floorC is the floor of the OOM benchmark: the least a supervisor can do
// to keep a program alive in a memory cgroup. It forks, puts the child in
// the cgroup before exec (writing 0 to cgroup.procs moves the writer), execs
// the program and waits for it, forever.
const floorC = `#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
	if (argc < 3) return 2;
	for (;;) {
		pid_t pid = fork();
		if (pid < 0) return 1;
		if (pid == 0) {
			int fd = open(argv[1], O_WRONLY);
			if (fd < 0 || write(fd, "0", 1) != 1) _exit(126);
			close(fd);
			execv(argv[2], argv + 2);
			_exit(127);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
	}
}
`

// pidStream reads "PID\n" lines from a FIFO and notes when each arrived.
type pidStream struct {
	mu   sync.Mutex
	pids []int
	at   []time.Time
}

func (s *pidStream) read(f *os.File) {
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		now := time.Now()
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.pids = append(s.pids, pid)
		s.at = append(s.at, now)
		s.mu.Unlock()
	}
}

func (s *pidStream) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pids)
}

// latencies pairs every OOM-killed instance with the next one: from the
// kernel's timestamp of the kill to the new instance's first act.
func (s *pidStream) latencies(kills map[int]oom.Kill) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 0; i+1 < len(s.pids); i++ {
		k, ok := kills[s.pids[i]]
		if !ok || k.Time.IsZero() {
			continue
		}
		out = append(out, s.at[i+1].Sub(k.Time))
	}
	return out
}

func openFIFO(b *testing.B, path string) *os.File {
	b.Helper()
	if err := unix.Mkfifo(path, 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	return f
}

// BenchmarkOOMRestartLatency lets the kernel OOM-kill a hog under a 64 MiB
// limit over and over, once supervised by respawnd and once kept alive by
// the C floor loop in a cgroup of its own, both at the same time. Reported:
// latency from the kernel's timestamp of the "Killed process" record
// (mapped to wall-clock time) to the new instance running, p50/p99 of both,
// and the share of kills whose reason respawnd had settled as oom_kill by
// the time the new instance ran.
//
//	go test ./cmd/respawnd -run '^$' -bench OOMRestartLatency -benchtime 1x
func BenchmarkOOMRestartLatency(b *testing.B) {
	testenv.RequireKmsg(b, "OOM restart benchmark")
	const kills = 40
	dir := b.TempDir()
	victim := buildVictim(b, dir)
	cc, err := exec.LookPath("gcc")
	if err != nil {
		testenv.Skip(b, "the floor loop needs a C compiler: %v", err)
	}
	floorBin := filepath.Join(dir, "floor")
	if err := os.WriteFile(floorBin+".c", []byte(floorC), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O2", "-o", floorBin, floorBin+".c").CombinedOutput(); err != nil {
		b.Fatalf("compiling the floor: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, err := oom.NewKmsg(oom.KmsgConfig{})
	if err != nil {
		b.Fatal(err)
	}
	killC := make(chan oom.Kill, 256)
	var kmu sync.Mutex
	seen := map[int]oom.Kill{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = k.Run(ctx, killC); close(killC) }()
	go func() {
		defer wg.Done()
		for k := range killC {
			kmu.Lock()
			seen[k.PID] = k
			kmu.Unlock()
		}
	}()
	defer wg.Wait()
	defer cancel()

	var resp, floor pidStream
	respFIFO := openFIFO(b, filepath.Join(dir, "respawnd.fifo"))
	floorFIFO := openFIFO(b, filepath.Join(dir, "floor.fifo"))
	go resp.read(respFIFO)
	go floor.read(floorFIFO)

	// respawnd, as a separate process, logging JSON.
	cfg := filepath.Join(dir, "bench.yaml")
	y := fmt.Sprintf(`limits: {restarts_per_second: 10000, restart_burst: 10000}
programs:
  - name: hog
    command: [%q, "hog", %q]
    memory: {max: 64MiB, swap_max: 0}
    restart: {reset_after: 1ms, limit: {burst: 1000, interval: 1s}}
`, victim, respFIFO.Name())
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Executable()
	rcmd := exec.Command(exe, "--log.format=json", "--web.listen-address=127.0.0.1:0", "--state.dir="+filepath.Join(dir, "state"), "--config", cfg)
	rcmd.Env = append(os.Environ(), mainEnv+"=1")
	logs, err := rcmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := rcmd.Start(); err != nil {
		b.Fatal(err)
	}
	var records []map[string]any
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				records = append(records, m)
			}
		}
	}()
	stopResp := func() {
		_ = rcmd.Process.Signal(syscall.SIGTERM)
		<-logDone
		_ = rcmd.Wait()
	}
	b.Cleanup(func() {
		if rcmd.ProcessState == nil {
			_ = rcmd.Process.Kill()
			_ = rcmd.Wait()
		}
	})

	// The floor, in a limited cgroup of the benchmark's own.
	cg := testenv.NewMemoryCgroup(b, 64<<20)
	fcmd := exec.Command(floorBin, cg.Procs(), victim, "hog", floorFIFO.Name())
	fcmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := fcmd.Start(); err != nil {
		b.Fatal(err)
	}
	stopFloor := func() {
		if fcmd.ProcessState == nil {
			_ = fcmd.Process.Kill() // by pid; its last hog dies with the cgroup
			_ = fcmd.Wait()
		}
	}
	b.Cleanup(stopFloor)

	deadline := time.Now().Add(3 * time.Minute)
	for resp.len() <= kills || floor.len() <= kills {
		if time.Now().After(deadline) {
			b.Fatalf("only %d and %d restarts in 3 minutes", resp.len(), floor.len())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopFloor()
	stopResp()
	time.Sleep(200 * time.Millisecond) // let the follower catch the last records
	cancel()

	kmu.Lock()
	rl, fl := resp.latencies(seen), floor.latencies(seen)
	kmu.Unlock()
	if len(rl) < 20 || len(fl) < 20 {
		b.Fatalf("matched only %d and %d kernel records to restarts", len(rl), len(fl))
	}

	// Was each exit's reason settled as oom_kill before its successor ran?
	latency := map[float64]time.Duration{} // generation -> restart latency
	for _, m := range records {
		if m["msg"] == "state changed" && m["state"] == "running" {
			if d, err := time.ParseDuration(fmt.Sprint(m["restart_latency"])); err == nil {
				latency[m["generation"].(float64)] = d
			}
		}
	}
	var exits, oomExits, settled int // exits by SIGKILL, of them oom_kill, of them settled in time
	for _, m := range records {
		if m["msg"] != "exited" || m["program"] != "hog" {
			continue
		}
		if m["signal"] != "SIGKILL" {
			continue // the SIGTERM of the final stop
		}
		exits++
		if m["reason"] != "oom_kill" {
			continue
		}
		oomExits++
		d, err := time.ParseDuration(fmt.Sprint(m["attribution_delay"]))
		next, ok := latency[m["generation"].(float64)+1]
		if err == nil && ok && d <= next {
			settled++
		}
	}
	rp50, rp99 := quantile(rl, 0.5), quantile(rl, 0.99)
	fp50, fp99 := quantile(fl, 0.5), quantile(fl, 0.99)
	b.ReportMetric(float64(rp50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rp99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(fp50.Microseconds())/1000, "floor-p50-ms")
	b.ReportMetric(float64(fp99.Microseconds())/1000, "floor-p99-ms")
	b.ReportMetric(float64(rp50)/float64(fp50), "p50-ratio")
	b.ReportMetric(float64(rp99)/float64(fp99), "p99-ratio")
	if exits > 0 {
		b.ReportMetric(100*float64(settled)/float64(exits), "settled-%")
	}
	b.Logf("%d/%d OOM kills matched: respawnd p50 %v p99 %v; floor p50 %v p99 %v; %d of %d SIGKILL exits oom_kill, %d settled before the next instance ran",
		len(rl), len(fl), rp50, rp99, fp50, fp99, oomExits, exits, settled)
}
