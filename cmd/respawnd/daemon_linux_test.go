package main

import (
	"fmt"
	"os"
	"os/exec"
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

	// An invalid configuration is rejected; the old one stays in force.
	writeFile(t, dir, "respawnd.yaml", "programs:\n  - {name: a, command: []}\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rej, _ := d.waitLog(after, map[string]any{"msg": "reload rejected, previous configuration stays in force"})
	if e, _ := rej["err"].(string); !strings.Contains(e, "programs[0].command") {
		t.Errorf("rejection %q does not carry the check error", e)
	}
	starts := d.count(map[string]any{"msg": "state changed", "state": "running"})
	time.Sleep(200 * time.Millisecond)
	if n := d.count(map[string]any{"msg": "state changed", "state": "running"}); n != starts {
		t.Errorf("an invalid reload started %d processes", n-starts)
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
	err := d.cmd.Wait()
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
	if err := unix.Kill(pidOf(s), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
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
	if h["memcg"] != outside.Path {
		t.Errorf("host oom kill memcg %v, want %s", h["memcg"], outside.Path)
	}
	if n := d.count(map[string]any{"msg": "exited", "reason": "oom_kill", "program": "sleeper"}); n != 0 {
		t.Errorf("sleeper got %d oom_kill exits", n)
	}
}
