package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/watch"
)

// The tests in this file pin down promises of the README against the real
// daemon, each so that breaking the wiring behind it fails the test.

// waitLines waits until the file at path holds exactly the lines want.
func waitLines(t *testing.T, path string, want []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		got = strings.Fields(string(b))
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) || time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %q", path, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// respawnd exec passes SIGHUP, SIGUSR1 and SIGUSR2 on to its program, which
// keeps running; SIGINT stops the program with SIGINT, and respawnd exits
// with the program's status, 128+2.
func TestExecForwardsEverySignal(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd exec as a subreaper")
	rec := filepath.Join(t.TempDir(), "signals")
	d := startRespawnd(t, append([]string{"exec", "--"}, localHelperArgv("signals", rec)...)...)
	st, _ := d.waitLog(0, map[string]any{"msg": "state changed", "state": "running"})
	prog, ok := identify(pidOf(st))
	if !ok {
		t.Fatalf("the program (pid %d) is gone", pidOf(st))
	}
	t.Cleanup(prog.kill)
	want := []string{"ready"} // its handlers are installed
	waitLines(t, rec, want)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		if err := d.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		want = append(want, unix.SignalName(sig))
		waitLines(t, rec, want)
	}
	if !prog.alive() {
		t.Fatal("the program died of a forwarded signal")
	}

	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	exited, err := d.wait(30 * time.Second)
	if !exited {
		t.Fatal("respawnd exec did not exit after SIGINT")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGINT) {
		t.Errorf("respawnd exec ended with %v, want exit status %d", err, 128+int(syscall.SIGINT))
	}
	waitLines(t, rec, append(want, "SIGINT"))
	waitDead(t, "the program", prog)
	e, _ := d.waitLog(0, map[string]any{"msg": "exited"})
	if e["reason"] != "signal" || e["signal"] != "SIGINT" || pidOf(e) != prog.pid {
		t.Errorf("exit %v, want pid %d stopped by SIGINT", e, prog.pid)
	}
	if n := d.count(map[string]any{"msg": "state changed", "state": "running"}); n != 1 {
		t.Errorf("the program started %d times, want once", n)
	}
}

// stateEntries reads the state file in stateDir without opening the
// directory the way respawnd does (which would remove its temporary files).
func stateEntries(stateDir string) map[string]watch.StateEntry {
	b, err := os.ReadFile(filepath.Join(stateDir, watch.StateFile))
	if err != nil {
		return nil
	}
	var f struct {
		Entries []struct {
			Program    string `json:"program"`
			PID        int    `json:"pid"`
			Generation uint64 `json:"generation"`
			Restarts   uint64 `json:"restarts"`
		} `json:"entries"`
	}
	if json.Unmarshal(b, &f) != nil {
		return nil
	}
	out := map[string]watch.StateEntry{}
	for _, e := range f.Entries {
		out[e.Program] = watch.StateEntry{Program: e.Program, PID: e.PID, Generation: e.Generation, Restarts: e.Restarts}
	}
	return out
}

// programStatus asks the daemon of stateDir for the status of program.
func programStatus(t *testing.T, stateDir, program string) api.Program {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := api.NewClient(api.SocketPath(stateDir)).Programs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == program {
			return p
		}
	}
	t.Fatalf("no program %s in the daemon's status", program)
	return api.Program{}
}

// A program whose environment is wiped (no instance tag) and that has no
// match is found after a kill -9 of respawnd through the state file alone,
// proven by its cgroup; its generation and restart count carry on.
func TestAdoptByStateFileOnly(t *testing.T) {
	testenv.RequireRoot(t, "adopting after respawnd's restart")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	argv := append([]string{"/usr/bin/env", "-i"}, testenv.HelperArgv("sleep")...)
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: %s}\n", yamlList(argv)))
	first := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	pid, mark := runningPID(first, 0, "web")
	p1, ok := identify(pid)
	if !ok {
		t.Fatalf("web (pid %d) is gone", pid)
	}
	p1.kill() // a restart, so that there is a count to carry on
	pid, _ = runningPID(first, mark, "web")
	p2, ok := identify(pid)
	if !ok {
		t.Fatalf("web (pid %d) is gone", pid)
	}
	t.Cleanup(p2.kill)
	// env has exec'd the helper, with nothing of its environment.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "env to exec the program", func() bool {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p2.pid))
		return err == nil && exe == self
	})
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p2.pid))
	if err != nil || bytes.Contains(env, []byte("RESPAWND_INSTANCE=")) {
		t.Fatalf("the program's environment holds a tag (or cannot be read: %v): %q", err, env)
	}
	waitFor(t, "the state file to record the restarted instance", func() bool {
		e, ok := stateEntries(stateDir)["web"]
		return ok && e.PID == p2.pid && e.Generation == 2 && e.Restarts == 1
	})
	kill9(t, first)

	second := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	a, adopted := second.waitLog(0, map[string]any{"msg": "adopted running instance", "program": "web"})
	if pidOf(a) != p2.pid || a["how"] != "state file" || a["generation"] != 2.0 {
		t.Fatalf("adoption %v, want pid %d by state file, generation 2", a, p2.pid)
	}
	// The only proof there was: the program's cgroup.
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p2.pid))
	if err != nil || !strings.Contains(string(cg), "/programs/web\n") {
		t.Errorf("the adopted instance is not in the program's cgroup (%v):\n%s", err, cg)
	}
	if st := programStatus(t, stateDir, "web"); st.PID != p2.pid || st.Generation != 2 || st.Restarts != 1 {
		t.Errorf("status after adoption: pid %d generation %d restarts %d, want %d, 2 and 1", st.PID, st.Generation, st.Restarts, p2.pid)
	}
	// The counts go on from there. (The restart comes first, the exit's
	// record after it.)
	p2.kill()
	e, _ := second.waitLog(adopted, map[string]any{"msg": "exited", "program": "web"})
	if pidOf(e) != p2.pid || e["generation"] != 2.0 {
		t.Errorf("exit %v, want pid %d generation 2", e, p2.pid)
	}
	n, _ := second.waitLogFn(adopted, "web restarted", func(m map[string]any) bool {
		return matches(m, map[string]any{"msg": "state changed", "program": "web", "state": "running"}) && pidOf(m) != p2.pid
	})
	if n["generation"] != 3.0 {
		t.Errorf("restarted as generation %v, want 3", n["generation"])
	}
	if st := programStatus(t, stateDir, "web"); st.Generation != 3 || st.Restarts != 2 {
		t.Errorf("status after the restart: generation %d restarts %d, want 3 and 2", st.Generation, st.Restarts)
	}
}

// A state file entry whose pid now belongs to a process with another start
// time names a process that died while respawnd was down: the process
// holding the pid is never adopted, never signalled, and the death is
// reported.
func TestReusedPIDInStateFile(t *testing.T) {
	testenv.RequireRoot(t, "writing respawnd's state directory")
	boot, err := watch.BootID("/proc")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	victim := startForeign(t, 0, nil, "/usr/bin/sleep", "1000")
	sd, err := watch.OpenStateDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	// Everything else would prove it: it leads its own session, and the
	// recorded program has no match to fail.
	entry := watch.StateEntry{Program: "web", PID: victim.pid, StartTime: victim.start + 1, BootID: boot, Exe: "/usr/bin/sleep",
		ConfigHash: "stale", Generation: 5, Restarts: 2, Child: true}
	if err := sd.Write([]watch.StateEntry{entry}, true); err != nil {
		t.Fatal(err)
	}
	_ = sd.Close()
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: %s}\n", helperCommand("sleep")))
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	died, _ := d.waitLog(0, map[string]any{"msg": "instance died while respawnd was down", "program": "web"})
	if pidOf(died) != victim.pid || died["reason"] != "unknown" {
		t.Errorf("death while down %v, want pid %d, reason unknown", died, victim.pid)
	}
	pid, _ := runningPID(d, 0, "web")
	if pid == victim.pid {
		t.Fatal("adopted the process that reused the pid")
	}
	st := programStatus(t, stateDir, "web")
	if e := st.LastExit; e == nil || e.PID != victim.pid || e.Reason != "unknown" || e.Generation != 5 {
		t.Errorf("last exit %+v, want unknown of pid %d, generation 5", e, victim.pid)
	}
	if st.Generation != 6 || st.Restarts != 3 {
		t.Errorf("generation %d restarts %d, want 6 and 3", st.Generation, st.Restarts)
	}
	if n := d.count(map[string]any{"msg": "adopted running instance"}); n != 0 {
		t.Errorf("%d adoptions", n)
	}
	stopRespawnd(t, d)
	if !victim.alive() {
		t.Error("the process that reused the pid was signalled")
	}
}

// programCgroup returns the directory of pid's cgroup in the hierarchy the
// test's cgroups are in.
func programCgroup(t *testing.T, pid int) string {
	t.Helper()
	root, v2, err := cgroupHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if v2 && f[0] == "0" && f[1] == "" || !v2 && slices.Contains(strings.Split(f[1], ","), "memory") {
			return filepath.Join(root, f[2])
		}
	}
	t.Fatalf("pid %d has no memory cgroup:\n%s", pid, b)
	return ""
}

// memoryMax reads the hard memory limit of the cgroup dir; ok is false
// when it has none.
func memoryMax(t *testing.T, dir string) (limit uint64, ok bool) {
	t.Helper()
	_, v2, err := cgroupHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	file := "memory.limit_in_bytes"
	if v2 {
		file = "memory.max"
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	// cgroup v1 spells "no limit" as the largest page-aligned counter.
	if v >= 1<<62 {
		return 0, false
	}
	return v, true
}

// A reload that changes a program's memory limit restarts it inside its
// cgroup with the new limit in force; a reload that removes memory: lifts
// the limit, and the program keeps its cgroup.
func TestMemoryLimitFollowsReload(t *testing.T) {
	testenv.RequireRoot(t, "memory cgroups")
	dir := t.TempDir()
	config := func(memory string) string {
		return fmt.Sprintf("programs:\n  - {name: m, command: %s%s}\n", helperCommand("sleep"), memory)
	}
	cfg := writeFile(t, dir, "respawnd.yaml", config(", memory: {max: 64MiB}"))
	d := startRespawnd(t, "--config", cfg)
	pid, mark := runningPID(d, 0, "m")
	cg := programCgroup(t, pid)
	if !strings.HasSuffix(cg, "/programs/m") {
		t.Fatalf("m runs in %s, not in a cgroup of its own", cg)
	}
	if got, ok := memoryMax(t, cg); !ok || got != 64<<20 {
		t.Fatalf("limit %d (set %v), want 64 MiB", got, ok)
	}
	for _, step := range []struct {
		memory string
		limit  uint64 // 0: none
	}{
		{", memory: {max: 32MiB}", 32 << 20},
		{"", 0},
	} {
		writeFile(t, dir, "respawnd.yaml", config(step.memory))
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.waitLog(mark, map[string]any{"msg": "configuration reloaded"})
		old := pid
		m, next := d.waitLogFn(mark, "m restarted onto its new definition", func(m map[string]any) bool {
			return matches(m, map[string]any{"msg": "state changed", "program": "m", "state": "running"}) && pidOf(m) != old
		})
		pid, mark = pidOf(m), next
		if now := programCgroup(t, pid); now != cg {
			t.Errorf("m moved from %s to %s", cg, now)
		}
		got, ok := memoryMax(t, cg)
		switch {
		case step.limit == 0 && ok:
			t.Errorf("memory: removed, the limit stays at %d", got)
		case step.limit != 0 && (!ok || got != step.limit):
			t.Errorf("limit %d (set %v) after the reload, want %d", got, ok, step.limit)
		}
	}
}

// A program with on_missing: wait starts nothing while no process matches;
// a matching process that appears later (same user and executable as its
// command) is adopted.
func TestOnMissingWaitAdoptsLater(t *testing.T) {
	testenv.RequireRoot(t, "adopting processes respawnd did not start")
	dir := t.TempDir()
	token := fmt.Sprintf("respawnd-wait-%d", time.Now().UnixNano())
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: w, command: %s, match: {cmdline: '%s-w$'}, on_missing: wait}\n",
		helperCommand("sleep", token+"-w"), token))
	d := startRespawnd(t, "--state.dir", filepath.Join(dir, "state"), "--config", cfg)
	// Waiting is a state the program reaches instead of a start.
	_, mark := d.waitLog(0, map[string]any{"msg": "state changed", "program": "w", "state": "stopped"})
	if n := d.count(map[string]any{"msg": "state changed", "program": "w", "state": "running"}); n != 0 {
		t.Fatalf("w started %d times with nothing to match", n)
	}
	if ps := procsWithArg(token + "-w"); len(ps) != 0 {
		t.Fatalf("processes of w run before the test started one: %v", ps)
	}

	outside := startForeign(t, 0, os.Environ(), testenv.HelperArgv("sleep", token+"-w")...)
	a, _ := d.waitLog(mark, map[string]any{"msg": "adopted running instance", "program": "w"})
	if pidOf(a) != outside.pid || a["how"] != "match" {
		t.Errorf("adopted %v, want pid %d by match", a, outside.pid)
	}
	// The adoption is logged before the state change it causes; wait for
	// the latter, so that the count below sees every line up to it.
	r, _ := d.waitLog(mark, map[string]any{"msg": "state changed", "program": "w", "state": "running"})
	if pid := pidOf(r); pid != outside.pid {
		t.Errorf("w runs pid %d, want the adopted %d", pid, outside.pid)
	}
	if n := d.count(map[string]any{"msg": "state changed", "program": "w", "state": "running"}); n != 1 {
		t.Errorf("w running %d times, want once, adopted", n)
	}
	if ps := procsWithArg(token + "-w"); len(ps) != 1 {
		t.Errorf("%d processes of w, want the adopted one", len(ps))
	}
}

// scrape fetches the metrics of the daemon listening at addr.
func scrape(t *testing.T, addr string) map[string]map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	out := map[string]map[string]float64{}
	for name, mf := range mfs {
		out[name] = values(mf)
	}
	return out
}

// An OOM kill of a worker of a program (a process in its cgroup other than
// the main process) is counted against the program, once, and the main
// process keeps running with the same pid. The kernel log tells it, and so
// does the program cgroup's own OOM counter when the kernel log cannot be
// read (no CAP_SYSLOG, dmesg_restrict, or a container without /dev/kmsg):
// memory.events on cgroup v2, the oom_control eventfd on v1.
func TestWorkerOOMKillKeepsMainProcess(t *testing.T) {
	testenv.RequireKmsg(t, "real OOM kills")
	testenv.NewMemoryCgroup(t, 64<<20) // probes that memory cgroups work here
	t.Run("kernel log", func(t *testing.T) { testWorkerOOMKill(t) })
	t.Run("cgroup events only", func(t *testing.T) {
		testWorkerOOMKill(t, "--path.kmsg", filepath.Join(t.TempDir(), "no-kmsg"))
	})
}

func testWorkerOOMKill(t *testing.T, args ...string) {
	dir := t.TempDir()
	script := shellQuote(testenv.HelperArgv("hog")) + " & exec " + shellQuote(testenv.HelperArgv("sleep"))
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: w
    command: [/bin/sh, -c, %q]
    memory: {max: 64MiB, swap_max: 0}
`, script))
	stateDir := filepath.Join(dir, "state")
	d := startRespawnd(t, append([]string{"--state.dir", stateDir, "--config", cfg}, args...)...)
	if len(args) > 0 {
		d.waitLog(0, map[string]any{"msg": "oom sources", "kmsg": "down"})
	}
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	addr, _ := l["address"].(string)
	pid, mark := runningPID(d, 0, "w")
	main, ok := identify(pid)
	if !ok {
		t.Fatalf("w (pid %d) is gone", pid)
	}

	d.waitLog(mark, map[string]any{"msg": "worker oom-killed", "program": "w"})
	waitFor(t, "the worker's OOM kill in the metrics", func() bool {
		return scrape(t, addr)["respawnd_program_oom_kills_total"][`program="w"`] == 1
	})
	if !main.alive() {
		t.Fatal("the main process died with its worker")
	}
	if st := programStatus(t, stateDir, "w"); st.PID != main.pid || st.State != "running" || st.Restarts != 0 || st.LastExit != nil {
		t.Errorf("status %+v, want the main process %d running, never restarted", st, main.pid)
	}
	m := scrape(t, addr)
	for series, v := range m["respawnd_program_exits_total"] {
		if v != 0 {
			t.Errorf("respawnd_program_exits_total{%s} = %v: a worker's OOM kill is no exit of the program", series, v)
		}
	}
	if v := m["respawnd_program_oom_kills_total"][`program="w"`]; v != 1 {
		t.Errorf("respawnd_program_oom_kills_total{program=\"w\"} = %v, want 1", v)
	}
	if n := d.count(map[string]any{"msg": "worker oom-killed", "program": "w"}); n != 1 {
		t.Errorf("worker oom-killed logged %d times, want once", n)
	}
}
