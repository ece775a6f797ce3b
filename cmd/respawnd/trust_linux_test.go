package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/watch"
)

// The tests in this file reproduce the attacks and faults of the trust
// review against the real daemon and real processes: each failed before
// the fix it covers.

// procInfo is what identifies a process for a test: its pid and start time.
type procInfo struct {
	pid   int
	start uint64
}

// identify reads pid's start time; ok is false when it is gone or a zombie.
func identify(pid int) (procInfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return procInfo{}, false
	}
	st, _ := strconv.ParseUint(f[19], 10, 64)
	return procInfo{pid: pid, start: st}, true
}

// alive reports whether the very process p still runs.
func (p procInfo) alive() bool {
	now, ok := identify(p.pid)
	return ok && now.start == p.start
}

// kill SIGKILLs the process p, never another that reused its pid: through
// a pidfd opened before the start time is checked.
func (p procInfo) kill() {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if p.alive() {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// waitDead waits until p no longer runs.
func waitDead(t *testing.T, what string, p procInfo) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.alive() {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs", what, p.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startForeign starts argv in its own session as uid with exactly env, as
// some other user of the host would; it is killed at the end of the test.
func startForeign(t *testing.T, uid int, env []string, argv ...string) procInfo {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = env
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if uid != 0 {
		c.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	var p procInfo
	waitFor(t, "the foreign process to run", func() bool {
		var ok bool
		p, ok = identify(c.Process.Pid)
		return ok
	})
	return p
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readPID waits for a pid in path and returns its process.
func readPID(t *testing.T, path string) procInfo {
	t.Helper()
	var p procInfo
	waitFor(t, "a pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return false
		}
		var ok bool
		p, ok = identify(pid)
		return ok
	})
	t.Cleanup(p.kill)
	return p
}

// stopRespawnd sends SIGTERM and waits for respawnd to exit.
func stopRespawnd(t *testing.T, d *daemonProc) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited, err := d.wait(60 * time.Second)
	if !exited {
		t.Fatal("respawnd did not exit after SIGTERM")
	}
	if err != nil {
		t.Errorf("respawnd exited with %v", err)
	}
}

// kill9 kills respawnd with SIGKILL and waits for it, as a crash would.
func kill9(t *testing.T, d *daemonProc) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if exited, _ := d.wait(30 * time.Second); !exited {
		t.Fatal("respawnd not reaped after SIGKILL")
	}
}

// waitRecorded waits until the state file in stateDir records every name.
func waitRecorded(t *testing.T, stateDir string, names ...string) {
	t.Helper()
	waitFor(t, "the state file to record "+strings.Join(names, ", "), func() bool {
		entries := stateEntries(stateDir)
		for _, n := range names {
			if _, ok := entries[n]; !ok {
				return false
			}
		}
		return true
	})
}

// runningPID waits for a "running" record of program from index from on.
func runningPID(d *daemonProc, from int, program string) (int, int) {
	d.t.Helper()
	m, next := d.waitLogFn(from, program+" running", func(m map[string]any) bool {
		return m["program"] == program && (m["msg"] == "state changed" && m["state"] == "running" || m["msg"] == "adopted running instance")
	})
	return pidOf(m), next
}

// Nothing a less-privileged user can forge in an environment makes
// respawnd adopt a process: not the old tag format, not a well-formed tag
// with a made-up MAC, not from root either. The real program starts, and
// the forged processes are never signalled.
func TestForgedTagsAreNotAdopted(t *testing.T) {
	testenv.RequireRoot(t, "running processes as another user")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	ticks, err := watch.NowTicks()
	if err != nil {
		t.Fatal(err)
	}
	made := fmt.Sprintf("v1:web:1:%d:0123456789abcdef:%032x", ticks, 42)
	forged := []procInfo{
		// The review's repro: the old format, as nobody.
		startForeign(t, 65534, []string{"RESPAWND_INSTANCE=" + stateDir + "/web"}, "/usr/bin/sleep", "1000"),
		startForeign(t, 65534, []string{"RESPAWND_INSTANCE=" + made}, "/usr/bin/sleep", "1000"),
		startForeign(t, 0, []string{"RESPAWND_INSTANCE=" + made}, "/usr/bin/sleep", "1000"),
	}
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: %s}\n", helperCommand("sleep")))
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	pid, _ := runningPID(d, 0, "web")
	for _, f := range forged {
		if pid == f.pid {
			t.Fatalf("adopted the forged process %d", pid)
		}
	}
	if n := d.count(map[string]any{"msg": "adopted running instance"}); n != 0 {
		t.Errorf("%d adoptions of forged processes", n)
	}
	stopRespawnd(t, d)
	for _, f := range forged {
		if !f.alive() {
			t.Errorf("forged process %d was signalled", f.pid)
		}
	}
}

// When the recorded instance died while respawnd was down, a process it
// left behind in a session of its own (setsid), which inherited its tag,
// is not taken for the program: it is killed (it sits in the program's
// cgroup) and a new instance starts.
func TestSetsidChildOfDeadInstanceIsNotAdopted(t *testing.T) {
	testenv.RequireRoot(t, "adopting after respawnd's restart")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	childFile := filepath.Join(dir, "child")
	script := "setsid /usr/bin/sleep 1001 & echo $! > " + childFile + "; exec /usr/bin/sleep 1002"
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: [/bin/sh, -c, %q]}\n", script))
	first := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	mainPID, _ := runningPID(first, 0, "web")
	main, _ := identify(mainPID)
	t.Cleanup(main.kill)
	child := readPID(t, childFile)
	waitRecorded(t, stateDir, "web")
	kill9(t, first)
	main.kill()
	waitDead(t, "the main process", main)

	second := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	second.waitLog(0, map[string]any{"msg": "instance died while respawnd was down", "program": "web"})
	pid, _ := runningPID(second, 0, "web")
	if pid == child.pid {
		t.Fatalf("adopted the setsid'd child %d of the dead instance", pid)
	}
	waitDead(t, "the dead instance's leftover", child)
}

// A program removed and added again within its stop timeout comes back
// once its old instance is down: no start into a cgroup being removed, no
// second instance, no lasting failure.
func TestReAddWithinStopTimeout(t *testing.T) {
	testenv.RequireRoot(t, "memory cgroups")
	dir := t.TempDir()
	with := fmt.Sprintf(`programs:
  - name: x
    command: %s
    memory: {max: 64MiB}
    stop: {timeout: 2s}
`, helperCommand("ignore-term"))
	cfg := writeFile(t, dir, "respawnd.yaml", with)
	d := startRespawnd(t, "--config", cfg)
	old, mark := runningPID(d, 0, "x")
	oldP, _ := identify(old)

	writeFile(t, dir, "respawnd.yaml", "programs: []\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	_, mark = d.waitLog(mark, map[string]any{"msg": "state changed", "program": "x", "state": "stopping"})
	writeFile(t, dir, "respawnd.yaml", with)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pid, _ := runningPID(d, mark, "x")
	if pid == old {
		t.Fatalf("x runs its old pid %d", pid)
	}
	if oldP.alive() {
		t.Error("the old instance runs beside the new one")
	}
	if n := d.count(map[string]any{"msg": "start failed", "program": "x"}); n != 0 {
		t.Errorf("%d failed starts", n)
	}
	// The new instance is the only process in x's cgroup.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "/programs/x\n") {
		t.Errorf("x is not in its cgroup: %s", b)
	}
}

// On SIGTERM respawnd stops each program as a whole: members that ignore
// the stop signal are killed at the stop timeout, members that handle it
// get that time to finish, a member in a session of its own is stopped
// too, and respawnd exits only once every one of them is gone and reaped.
func TestShutdownStopsAndReapsEveryDescendant(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"cgroup", nil},
		// No cgroups: the process group and the orphans reparented to
		// respawnd are all there is.
		{"no cgroup", []string{"--path.sysfs=" + os.TempDir() + "/respawnd-no-sysfs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireRoot(t, "being a child subreaper with cgroups")
			dir := t.TempDir()
			f := func(n string) string { return filepath.Join(dir, n) }
			script := strings.Join([]string{
				"(trap '' TERM; exec /usr/bin/sleep 1001) & echo $! > " + f("ignores"),
				"/usr/bin/sleep 1002 & echo $! > " + f("plain"),
				"setsid /usr/bin/sleep 1003 & echo $! > " + f("escaped"),
				"(trap 'sleep 0.3; echo done > " + f("graceful.out") + "; exit 0' TERM; while :; do sleep 0.05; done) & echo $! > " + f("graceful"),
				"wait",
			}, "; ")
			cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: tree, command: [/bin/sh, -c, %q], stop: {timeout: 2s}}\n", script))
			d := startRespawnd(t, append([]string{"--config", cfg}, tc.args...)...)
			runningPID(d, 0, "tree")
			procs := map[string]procInfo{}
			for _, n := range []string{"ignores", "plain", "escaped", "graceful"} {
				procs[n] = readPID(t, f(n))
			}
			// Each shell has set up its handling of SIGTERM.
			waitSigMask(t, procs["ignores"].pid, "SigIgn", syscall.SIGTERM)
			waitSigMask(t, procs["graceful"].pid, "SigCgt", syscall.SIGTERM)
			stopRespawnd(t, d)
			for n, p := range procs {
				if p.alive() {
					t.Errorf("%s (pid %d) survived respawnd's exit", n, p.pid)
				}
				if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid)); err == nil && bytes.Contains(st, []byte(") Z ")) {
					t.Errorf("%s (pid %d) left unreaped", n, p.pid)
				}
			}
			if b, err := os.ReadFile(f("graceful.out")); err != nil || strings.TrimSpace(string(b)) != "done" {
				t.Errorf("the member that handles SIGTERM did not get its time to finish: %q, %v", b, err)
			}
		})
	}
}

// waitSigMask waits until the signal mask field (SigIgn, SigCgt) of pid's
// status holds sig.
func waitSigMask(t *testing.T, pid int, field string, sig syscall.Signal) {
	t.Helper()
	waitFor(t, fmt.Sprintf("pid %d to set up %v (%s)", pid, sig, field), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return err == nil && mask&(1<<(uint(sig)-1)) != 0
			}
		}
		return false
	})
}

// A replacement respawnd that cannot start (its port taken, its web
// config broken) exits without touching the programs it would have
// adopted, and leaves the state file as it was.
func TestFailedStartLeavesProgramsAlone(t *testing.T) {
	testenv.RequireRoot(t, "adopting after respawnd's restart")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	addr := freeAddr(t)
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: a, command: %s}\n  - {name: b, command: %s}\n", helperCommand("sleep"), helperCommand("sleep")))
	first := startRespawnd(t, "--state.dir", stateDir, "--web.listen-address", addr, "--config", cfg)
	pa, _ := runningPID(first, 0, "a")
	pb, _ := runningPID(first, 0, "b")
	a, _ := identify(pa)
	b, _ := identify(pb)
	t.Cleanup(a.kill)
	t.Cleanup(b.kill)
	waitRecorded(t, stateDir, "a", "b")
	kill9(t, first)
	state, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}

	hold, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	badWeb := writeFile(t, dir, "web.yml", "tls_server_config: {cert_file: /nonexistent}\n")
	attempts := [][]string{{"--web.listen-address", addr}, {"--web.listen-address", freeAddr(t), "--web.config.file", badWeb}}
	for i := range 8 {
		args := attempts[i%len(attempts)]
		out, code := runMain(t, append([]string{"--state.dir", stateDir, "--config", cfg}, args...)...)
		if code == 0 {
			t.Fatalf("attempt %d: respawnd started despite %v:\n%s", i, args, out)
		}
		if strings.Contains(out, `"adopted running instance"`) || strings.Contains(out, "msg=\"adopted running instance\"") || strings.Contains(out, "state changed") {
			t.Fatalf("attempt %d: a respawnd that failed to start touched programs:\n%s", i, out)
		}
		if !a.alive() || !b.alive() {
			t.Fatalf("attempt %d: a program died with a respawnd that failed to start", i)
		}
		now, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
		if err != nil || !bytes.Equal(now, state) {
			t.Fatalf("attempt %d: state file changed: %s", i, now)
		}
	}
	_ = hold.Close()
	// A respawnd that can start takes both back.
	third := startRespawnd(t, "--state.dir", stateDir, "--web.listen-address", addr, "--config", cfg)
	if got, _ := runningPID(third, 0, "a"); got != pa {
		t.Errorf("a: pid %d after the restart, want %d adopted", got, pa)
	}
}

// runMain runs respawnd to completion with args and returns its output and
// exit code.
func runMain(t *testing.T, args ...string) (string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"--log.format=logfmt"}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("running respawnd: %v", err)
	return "", -1
}

// A hostile or stale state file cannot make respawnd adopt or signal an
// unrelated process: recorded as started by respawnd (no tag, not in the
// program's cgroup), as adopted (another executable), or from another
// boot.
func TestHostileStateFileNeverSignals(t *testing.T) {
	testenv.RequireRoot(t, "writing respawnd's state directory")
	boot, err := watch.BootID("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		entry func(v procInfo) watch.StateEntry
	}{
		{"child", // recorded as started by respawnd: no tag, not in the cgroup
			func(v procInfo) watch.StateEntry {
				return watch.StateEntry{Program: "web", PID: v.pid, StartTime: v.start, BootID: boot, Exe: "/usr/bin/sleep", ConfigHash: "stale", Generation: 5, Child: true}
			}},
		{"exe", // recorded as adopted: another executable
			func(v procInfo) watch.StateEntry {
				return watch.StateEntry{Program: "web", PID: v.pid, StartTime: v.start, BootID: boot, Exe: "/usr/bin/other", ConfigHash: "stale", Generation: 5}
			}},
		{"nomatch", // recorded as adopted: no match configured
			func(v procInfo) watch.StateEntry {
				return watch.StateEntry{Program: "web", PID: v.pid, StartTime: v.start, BootID: boot, Exe: "/usr/bin/sleep", ConfigHash: "stale", Generation: 5}
			}},
		{"boot", // another boot
			func(v procInfo) watch.StateEntry {
				return watch.StateEntry{Program: "web", PID: v.pid, StartTime: v.start, BootID: "00000000-0000-4000-8000-000000000000", Exe: "/usr/bin/sleep", ConfigHash: "stale", Generation: 5, Child: true}
			}},
		{"removed", // a program no longer configured
			func(v procInfo) watch.StateEntry {
				return watch.StateEntry{Program: "gone", PID: v.pid, StartTime: v.start, BootID: boot, Exe: "/usr/bin/sleep", ConfigHash: "stale", Generation: 5, Child: true}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stateDir := filepath.Join(dir, "state")
			victim := startForeign(t, 0, nil, "/usr/bin/sleep", "1000")
			sd, err := watch.OpenStateDir(stateDir)
			if err != nil {
				t.Fatal(err)
			}
			if err := sd.Write([]watch.StateEntry{tc.entry(victim)}, true); err != nil {
				t.Fatal(err)
			}
			_ = sd.Close()
			cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: %s}\n", helperCommand("sleep")))
			d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
			if pid, _ := runningPID(d, 0, "web"); pid == victim.pid {
				t.Fatal("adopted the unrelated process")
			}
			stopRespawnd(t, d)
			if !victim.alive() {
				t.Error("the unrelated process was signalled")
			}
		})
	}
}

// A state directory another user could write is refused: respawnd says so
// and does not start.
func TestUnsafeStateDirRefused(t *testing.T) {
	testenv.RequireRoot(t, "making directories of other users")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: %s}\n", helperCommand("sleep")))
	for name, prepare := range map[string]func(string) error{
		"world-writable": func(p string) error { return os.Chmod(p, 0o777) },
		"owned by nobody": func(p string) error {
			return os.Chown(p, 65534, 65534)
		},
	} {
		t.Run(name, func(t *testing.T) {
			stateDir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(stateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := prepare(stateDir); err != nil {
				t.Fatal(err)
			}
			out, code := runMain(t, "--state.dir", stateDir, "--web.listen-address", freeAddr(t), "--config", cfg)
			if code == 0 || !strings.Contains(out, "state directory") {
				t.Errorf("exit %d with an unsafe state directory:\n%s", code, out)
			}
			if strings.Contains(out, "state changed") {
				t.Errorf("programs were started:\n%s", out)
			}
		})
	}
}

// start while the program is stopping is not acknowledged and dropped: the
// program runs again once the stop is complete.
func TestStartWhileStopping(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: web, command: %s, stop: {timeout: 1s}}\n", helperCommand("ignore-term")))
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	old, mark := runningPID(d, 0, "web")
	for _, verb := range []string{"stop", "start"} {
		if out, code := runMain(t, "--state.dir", stateDir, verb, "web"); code != 0 {
			t.Fatalf("respawnd %s web: exit %d\n%s", verb, code, out)
		}
	}
	pid, _ := runningPID(d, mark, "web")
	if pid == old {
		t.Errorf("web still runs pid %d", pid)
	}
}

// Instances of programs that were removed from the configuration while
// respawnd was down are stopped with their recorded stop signal, or kept
// and listed when the operator asks so.
func TestOrphanedInstancesAtStartup(t *testing.T) {
	testenv.RequireRoot(t, "adopting after respawnd's restart")
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			dir := t.TempDir()
			stateDir := filepath.Join(dir, "state")
			both := fmt.Sprintf("programs:\n  - {name: a, command: %s}\n  - {name: b, command: %s, stop: {signal: SIGINT}}\n", helperCommand("sleep"), helperCommand("sleep"))
			cfg := writeFile(t, dir, "respawnd.yaml", both)
			first := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
			runningPID(first, 0, "a")
			pb, _ := runningPID(first, 0, "b")
			b, _ := identify(pb)
			t.Cleanup(b.kill)
			waitRecorded(t, stateDir, "a", "b")
			kill9(t, first)
			writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: a, command: %s}\n", helperCommand("sleep")))
			args := []string{"--state.dir", stateDir, "--config", cfg}
			if keep {
				args = append(args, "--state.orphans=keep")
			}
			second := startRespawnd(t, args...)
			runningPID(second, 0, "a")
			if !keep {
				m, _ := second.waitLog(0, map[string]any{"msg": "stopping the instance of a program no longer configured", "program": "b"})
				if m["signal"] != "SIGINT" {
					t.Errorf("orphan stopped with %v, want its recorded stop signal SIGINT", m["signal"])
				}
				waitDead(t, "the orphaned instance", b)
				return
			}
			second.waitLog(0, map[string]any{"msg": "instance of a program no longer configured left running", "program": "b"})
			out, code := runMain(t, "--state.dir", stateDir, "status", "-o", "json")
			if code != 0 || !strings.Contains(out, `"orphans"`) || !strings.Contains(out, strconv.Itoa(pb)) {
				t.Errorf("status does not list the kept orphan %d:\n%s", pb, out)
			}
			stopRespawnd(t, second)
			if !b.alive() {
				t.Error("a kept orphan was stopped with respawnd")
			}
		})
	}
}

// procsWithArg returns the live processes whose command line holds arg as
// one of its arguments.
func procsWithArg(arg string) []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	want := []byte("\x00" + arg + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(append([]byte{0}, b...), want) {
			continue
		}
		if p, ok := identify(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// Any sequence of reloads, control commands and kills, in any order and
// timing, ends with exactly one instance of every enabled program that no
// operator stopped, and none of the others. The sequence is random but
// reproducible: the seed is logged, and RESPAWND_TEST_SEED replays it.
func TestRandomizedReloadsControlsAndKills(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd with cgroups")
	seed := time.Now().UnixNano()
	if s := os.Getenv("RESPAWND_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("RESPAWND_TEST_SEED: %v", err)
		}
	}
	t.Logf("seed %d (RESPAWND_TEST_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	token := fmt.Sprintf("rnd%d", time.Now().UnixNano())
	type want struct {
		enabled, stopped bool
		variant          int
	}
	names := []string{"a", "b", "c"}
	model := map[string]*want{"a": {enabled: true}, "b": {enabled: true}, "c": {enabled: true}}
	configYAML := func() string {
		var b strings.Builder
		b.WriteString("programs:\n")
		for _, n := range names {
			w := model[n]
			if !w.enabled {
				continue
			}
			mode, extra := "sleep", ""
			if n == "c" {
				// c ignores SIGTERM: its stops last until the timeout, so
				// reloads and commands land while it is stopping.
				mode, extra = "ignore-term", ", stop: {timeout: 300ms}"
			}
			fmt.Fprintf(&b, "  - {name: %s, command: %s, env: {V: '%d'}, restart: {backoff: {initial: 10ms, max: 50ms}, limit: {burst: 1000}}%s}\n",
				n, helperCommand(mode, token+"-"+n), w.variant, extra)
		}
		return b.String()
	}
	cfg := writeFile(t, dir, "respawnd.yaml", configYAML())
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	t.Cleanup(func() {
		for _, n := range names {
			for _, p := range procsWithArg(token + "-" + n) {
				p.kill()
			}
		}
	})
	client := api.NewClient(api.SocketPath(stateDir))
	var history []string
	settle := func(step int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			bad := ""
			for _, n := range names {
				w := model[n]
				expect := 0
				if w.enabled && !w.stopped {
					expect = 1
				}
				if got := len(procsWithArg(token + "-" + n)); got != expect {
					bad = fmt.Sprintf("%s has %d instances, want %d", n, got, expect)
					break
				}
			}
			if bad == "" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				ps, err := client.Programs(ctx)
				cancel()
				if err != nil {
					bad = err.Error()
				}
				for _, p := range ps {
					w := model[p.Name]
					if want := map[bool]string{true: "stopped", false: "running"}[w.stopped]; p.State != want {
						bad = fmt.Sprintf("%s is %s, want %s", p.Name, p.State, want)
					}
				}
			}
			if bad == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after step %d (seed %d): %s\nsteps:\n%s", step, seed, bad, strings.Join(history, "\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	settle(0)
	for step := 1; step <= 40; step++ {
		switch r := rng.IntN(3); r {
		case 0: // reload
			for _, n := range names {
				w := model[n]
				if rng.IntN(10) < 4 {
					w.enabled = !w.enabled
					w.stopped = false
				}
				if w.enabled && rng.IntN(10) < 3 {
					w.variant++
				}
			}
			writeFile(t, dir, "respawnd.yaml", configYAML())
			reloaded := d.count(map[string]any{"msg": "configuration reloaded"})
			if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			// The reload is applied before the next step.
			waitFor(t, "the reload", func() bool { return d.count(map[string]any{"msg": "configuration reloaded"}) > reloaded })
			var on []string
			for _, n := range names {
				if model[n].enabled {
					on = append(on, fmt.Sprintf("%s/v%d", n, model[n].variant))
				}
			}
			history = append(history, fmt.Sprintf("%d reload %v", step, on))
		case 1: // control
			n := names[rng.IntN(len(names))]
			if !model[n].enabled {
				continue
			}
			action := []string{"start", "stop", "restart"}[rng.IntN(3)]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := client.Control(ctx, n, action)
			cancel()
			if err != nil {
				t.Fatalf("step %d: %s %s: %v", step, action, n, err)
			}
			model[n].stopped = action == "stop"
			history = append(history, fmt.Sprintf("%d %s %s", step, action, n))
		case 2: // kill -9 of a running instance
			n := names[rng.IntN(len(names))]
			ps := procsWithArg(token + "-" + n)
			if len(ps) == 0 {
				continue
			}
			ps[0].kill()
			history = append(history, fmt.Sprintf("%d kill -9 %s", step, n))
		}
		// Sometimes settle at once, sometimes let the next step land while
		// the last one is still in progress.
		if rng.IntN(3) > 0 {
			settle(step)
		}
	}
	settle(41)
}
