package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

func TestDaemonReload(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd as a subreaper")
	dir := t.TempDir()
	sleep := helperCommand("sleep")
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - {name: a, command: %s}
  - {name: b, command: %s}
`, sleep, sleep))
	d := startRespawnd(t, "--config", cfg)
	a, _ := d.waitLog(0, map[string]any{"msg": "state changed", "program": "a", "state": "running"})
	b, _ := d.waitLog(0, map[string]any{"msg": "state changed", "program": "b", "state": "running"})
	aPID, bPID := pidOf(a), pidOf(b)

	// b changes, c is new, a stays as it is.
	writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - {name: a, command: %s}
  - {name: b, command: %s, env: {CHANGED: "yes"}}
  - {name: c, command: %s}
`, sleep, sleep, sleep))
	_, mark := d.waitLog(0, map[string]any{"msg": "configuration applied"})
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	_, after := d.waitLog(mark, map[string]any{"msg": "configuration reloaded"})
	// What a line says is already in the metrics when it is logged.
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	addr, _ := l["address"].(string)
	if v := scrape(t, addr)["respawnd_config_last_reload_successful"][""]; v != 1 {
		t.Errorf("after the reload was logged, respawnd_config_last_reload_successful = %v, want 1", v)
	}
	d.waitLog(mark, map[string]any{"msg": "state changed", "program": "c", "state": "running"})
	nb, _ := d.waitLogFn(mark, "b running with a new pid", func(m map[string]any) bool {
		return matches(m, map[string]any{"msg": "state changed", "program": "b", "state": "running"}) && pidOf(m) != bPID
	})
	if n := d.count(map[string]any{"msg": "state changed", "program": "a"}); n != 1 { // running, once
		t.Errorf("unchanged program a changed state %d times, want 1", n)
	}
	if unix.Kill(aPID, 0) != nil {
		t.Errorf("unchanged program a (pid %d) is gone", aPID)
	}

	// The reload's plan, logged as it is applied: a was left alone.
	applied, _ := d.waitLog(mark, map[string]any{"msg": "configuration applied"})
	if applied["new"] != 1.0 || applied["changed"] != 1.0 || applied["unchanged"] != 1.0 {
		t.Errorf("reload applied as %v, want one new (c), one changed (b), one unchanged (a)", applied)
	}

	// An invalid configuration is rejected; the old one stays in force.
	// Every program is running by now: after the rejection nothing may
	// have been applied (respawnd logs an applied configuration before it
	// says how the reload went), started or stopped.
	transitions := d.count(map[string]any{"msg": "state changed"})
	writeFile(t, dir, "respawnd.yaml", "programs:\n  - {name: a, command: []}\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rej, rejected := d.waitLog(after, map[string]any{"msg": "reload rejected, previous configuration stays in force"})
	if e, _ := rej["err"].(string); !strings.Contains(e, "programs[0].command") {
		t.Errorf("rejection %q does not carry the check error", e)
	}
	if v := scrape(t, addr)["respawnd_config_last_reload_successful"][""]; v != 0 {
		t.Errorf("after the rejection was logged, respawnd_config_last_reload_successful = %v, want 0", v)
	}
	d.mu.Lock()
	for _, m := range d.log[after:rejected] {
		if m["msg"] == "configuration applied" {
			t.Errorf("an invalid configuration was applied: %v", m)
		}
	}
	d.mu.Unlock()
	if n := d.count(map[string]any{"msg": "state changed"}); n != transitions {
		t.Errorf("an invalid reload changed %d program states", n-transitions)
	}
	for _, pid := range []int{aPID, pidOf(nb)} {
		if unix.Kill(pid, 0) != nil {
			t.Errorf("pid %d is gone after an invalid reload", pid)
		}
	}

	// SIGTERM stops everything and exits 0.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.waitLog(after, map[string]any{"msg": "stopped"})
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range []int{aPID, pidOf(nb)} {
		for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if unix.Kill(pid, 0) == nil {
			t.Errorf("pid %d survived respawnd's stop", pid)
		}
	}
}

func TestExecExitCode(t *testing.T) {
	exe, _ := os.Executable()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{append([]string{"exec", "--restart.policy=never", "--"}, testenv.HelperArgv("exit", "3")...), 3},
		{append([]string{"exec", "--restart.policy=on-failure", "--"}, testenv.HelperArgv("exit", "0")...), 0},
		{append([]string{"exec", "--restart.policy=never", "--"}, testenv.HelperArgv("crash")...), 128 + int(syscall.SIGSEGV)},
	} {
		cmd := exec.Command(exe, tc.args...)
		cmd.Env = append(os.Environ(), mainEnv+"=1")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if tc.code == 128+int(syscall.SIGSEGV) && code == 128+int(syscall.SIGABRT) {
			code = tc.code // the runtime may re-raise the crash as SIGABRT
		}
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args[:2], code, tc.code, out)
		}
	}
}

func TestExecForwardsSignals(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd exec as a subreaper")
	// SIGTERM stops the program with SIGTERM, no restart follows, and
	// respawnd exits with the program's status.
	d := startRespawnd(t, append([]string{"exec", "--"}, testenv.HelperArgv("sleep")...)...)
	st, _ := d.waitLog(0, map[string]any{"msg": "state changed", "state": "running"})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited, err := d.wait(30 * time.Second)
	if !exited {
		t.Fatal("respawnd exec did not exit after SIGTERM")
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("respawnd exec ended with %v, want exit %d", err, 128+int(syscall.SIGTERM))
	}
	if unix.Kill(pidOf(st), 0) == nil {
		t.Errorf("program pid %d survived", pidOf(st))
	}
	if n := d.count(map[string]any{"msg": "state changed", "state": "running"}); n != 1 {
		t.Errorf("program started %d times, want 1", n)
	}
}

func TestDaemonOOMEndToEnd(t *testing.T) {
	testenv.RequireKmsg(t, "following the kernel log")
	// The victim cgroup of the "outside" process doubles as the probe that
	// memory cgroups work here.
	outside := testenv.NewMemoryCgroup(t, 64<<20)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: hog
    command: %s
    memory: {max: 64MiB, swap_max: 0}
    restart: {backoff: {initial: 10ms, max: 50ms}, limit: {burst: 100}}
  - {name: sleeper, command: %s}
`, helperCommand("hog"), helperCommand("sleep")))
	d := startRespawnd(t, "--config", cfg)

	// Three real OOM kills, each an oom_kill, each restarted.
	next := 0
	for i := 0; i < 3; i++ {
		var e map[string]any
		e, next = d.waitLog(next, map[string]any{"msg": "exited", "program": "hog"})
		if e["reason"] != "oom_kill" || e["signal"] != "SIGKILL" {
			t.Fatalf("hog exit %d: %v, want reason oom_kill", i+1, e)
		}
	}
	d.waitLog(next, map[string]any{"msg": "state changed", "program": "hog", "state": "running"})

	// A plain kill -9 is a signal, not an OOM kill.
	s, _ := d.waitLog(0, map[string]any{"msg": "state changed", "program": "sleeper", "state": "running"})
	sleeper, ok := identify(pidOf(s))
	if !ok {
		t.Fatalf("sleeper (pid %d) is gone", pidOf(s))
	}
	sleeper.kill()
	e, _ := d.waitLog(0, map[string]any{"msg": "exited", "program": "sleeper"})
	if e["reason"] != "signal" || e["signal"] != "SIGKILL" {
		t.Errorf("kill -9: %v, want reason signal SIGKILL", e)
	}

	// A process that is not respawnd's, OOM-killed in a cgroup of the
	// test's own, is a host OOM event.
	hog := exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, outside.Procs()}, testenv.HelperArgv("hog")...)...)
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hog.Process.Kill(); _, _ = hog.Process.Wait() })
	_ = hog.Wait()
	h, _ := d.waitLog(0, map[string]any{"msg": "host oom kill", "pid": float64(hog.Process.Pid)})
	// The memcg comes from the kernel's oom-kill: line, which the kernel
	// rate-limits (10 reports in 5 s, host-wide) while the Killed process
	// line is never dropped; other tests' OOM kills count against it.
	if m, _ := h["memcg"].(string); m != "" && m != outside.Path {
		t.Errorf("host oom kill memcg %q, want %s", m, outside.Path)
	} else if m == "" {
		t.Logf("the kernel rate-limited the oom-kill: line of pid %d", hog.Process.Pid)
	}
	if n := d.count(map[string]any{"msg": "exited", "reason": "oom_kill", "program": "sleeper"}); n != 0 {
		t.Errorf("sleeper got %d oom_kill exits", n)
	}
}

// As PID 1 of a PID namespace (a container), respawnd exec reaps orphans
// that are reparented to it, and its program keeps running.
func TestExecAsPID1ReapsOrphans(t *testing.T) {
	testenv.RequireRoot(t, "creating a PID namespace")
	exe, _ := os.Executable()
	pidfile := filepath.Join(t.TempDir(), "orphan")
	args := append([]string{"--log.format=json", "exec", "--restart.policy=never", "--"}, testenv.HelperArgv("orphan", pidfile)...)
	cmd := exec.Command(exe, args...)
	// respawnd is born as PID 1 of a new PID namespace, as in a container;
	// when it dies the kernel kills everything else in the namespace, and
	// it dies with the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	// respawnd joins a cgroup of the test's own: its program's cgroup goes
	// below it, and whatever a SIGKILL of the namespace leaves there goes
	// with the test.
	cmd.Env = append(os.Environ(), mainEnv+"=1", cgroupEnv+"="+testCgroup(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // PID 1's death takes the namespace down with it
		_ = cmd.Wait()
	})
	// The orphan's pid is its pid inside the namespace; find it outside by
	// its NSpid.
	deadline := time.Now().Add(20 * time.Second)
	var inner string
	for inner == "" {
		b, err := os.ReadFile(pidfile)
		if err == nil && len(b) > 0 {
			inner = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no orphan pid written; output:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if inner == "1" {
		t.Fatalf("the orphan claims to be PID 1")
	}
	// Find the orphan outside the namespace by its NSpid, then wait for it
	// to be gone: exited and reaped, not left a zombie.
	host := ""
	for host == "" {
		procs, _ := filepath.Glob("/proc/[0-9]*/status")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && strings.HasSuffix(nsLine(string(b)), "\t"+inner) && strings.Count(nsLine(string(b)), "\t") > 1 {
				host = filepath.Base(filepath.Dir(p))
			}
		}
		if host == "" {
			if _, err := os.Stat(pidfile); err == nil && time.Now().After(deadline) {
				t.Fatalf("orphan %s not found; output:\n%s", inner, out.String())
			}
			time.Sleep(5 * time.Millisecond)
			if time.Now().After(deadline) {
				t.Fatalf("orphan %s not found", inner)
			}
		}
	}
	for {
		b, err := os.ReadFile("/proc/" + host + "/status")
		if err != nil {
			return // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %s (host pid %s) not reaped: %s\noutput:\n%s", inner, host, strings.SplitN(string(b), "\n", 4)[2], out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func nsLine(status string) string {
	for _, l := range strings.Split(status, "\n") {
		if strings.HasPrefix(l, "NSpid:") {
			return l
		}
	}
	return ""
}

// TestScrapeGivesMemoryBack: once scrapes pause, respawnd gives what a
// scrape built back to the system, and says so at debug level; a daemon
// that is not scraped and has few state changes does not.
func TestScrapeGivesMemoryBack(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd as a subreaper")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: a, command: %s}\n", helperCommand("sleep")))
	d := startRespawnd(t, "--log.level=debug", "--config", cfg)
	_, mark := d.waitLog(0, map[string]any{"msg": "state changed", "program": "a", "state": "running"})
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	addr, _ := l["address"].(string)
	time.Sleep(6 * time.Second) // the settler's quiet period, and more
	if n := d.count(map[string]any{"msg": "memory given back to the system"}); n != 0 {
		t.Fatalf("memory given back %d times before any scrape, with one state change", n)
	}
	_ = scrape(t, addr)
	m, _ := d.waitLog(mark, map[string]any{"msg": "memory given back to the system"})
	if m["scrapes"] != 1.0 {
		t.Errorf("given back after %v scrapes, want 1: %v", m["scrapes"], m)
	}
}
