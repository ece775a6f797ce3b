package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
)

// TestTrustConfigCheckRefusesRepro runs `respawnd check` on the file from
// the security review: a burst that passed check, and made the daemon
// panic setting aside room for 2^63 start times.
func TestTrustConfigCheckRefusesRepro(t *testing.T) {
	f := writeFile(t, t.TempDir(), "repro.yaml", `programs:
  - name: repro
    command: ["/bin/true"]
    restart:
      limit: {burst: 9223372036854775807}
`)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "check", "--config", f)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check: %v, want exit status 1\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	want := f + ":5: programs[0].restart.limit.burst: must be at most 1000, not 9223372036854775807"
	if got := strings.TrimSpace(stderr.String()); got != want {
		t.Errorf("check printed\n%s\nwant\n%s", got, want)
	}
}

// TestTrustConfigReloadRefusesRepro sends the same file to a running
// daemon as a reload: it must be refused with the same error, and the
// running program must be left alone.
func TestTrustConfigReloadRefusesRepro(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd as a subreaper")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf("programs:\n  - {name: a, command: %s}\n", helperCommand("sleep")))
	d := startRespawnd(t, "--config", cfg)
	m, _ := d.waitLog(0, map[string]any{"msg": "state changed", "program": "a", "state": "running"})
	pid := pidOf(m)
	// Should the daemon wedge, the program outlives it: it runs in its own
	// session. Take it down with the test.
	t.Cleanup(func() { killHelper(pid) })
	_, mark := d.waitLog(0, map[string]any{"msg": "configuration applied"})

	writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: a
    command: %s
    restart:
      limit: {burst: 9223372036854775807}
`, helperCommand("sleep")))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rej, _ := d.waitLog(mark, map[string]any{"msg": "reload rejected, previous configuration stays in force"})
	if e, _ := rej["err"].(string); !strings.Contains(e, ":5: programs[0].restart.limit.burst: must be at most 1000") {
		t.Errorf("rejection %q does not name the line and the field", e)
	}
	if syscall.Kill(pid, 0) != nil {
		t.Errorf("program a (pid %d) is gone after a refused reload", pid)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, d, 2*time.Minute)
}

// killHelper SIGKILLs pid if it is still a helper process of this test
// binary.
func killHelper(pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.HasPrefix(b, []byte(strings.Join(testenv.HelperArgv(""), "\x00"))) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// waitExit waits for respawnd to exit and checks that it exited 0.
func waitExit(t *testing.T, d *daemonProc, timeout time.Duration) {
	t.Helper()
	exited, err := d.wait(timeout)
	if !exited {
		t.Fatalf("respawnd did not exit within %v of SIGTERM", timeout)
	}
	if err != nil {
		t.Errorf("respawnd ended with %v after SIGTERM, want exit status 0", err)
	}
}

// TestTrustConfigAtBoundsRuns starts the daemon on a file with every value
// at its upper bound: each program at every per-program bound that a real
// host can honour, as many of them as the bound on all programs' commands
// and environments allows, the global limits at theirs. Every program must
// reach running, respawnd must stop on SIGTERM and exit 0, and its memory
// must stay small. It is a liveness check, so its deadlines are generous.
func TestTrustConfigAtBoundsRuns(t *testing.T) {
	testenv.RequireRoot(t, "running respawnd with program cgroups")
	tmp := t.TempDir()

	argv := boundCommand(t, testenv.HelperArgv("sleep"))
	env := boundEnv(t)
	workDir := longPath(t, filepath.Join(tmp, "w"), config.MaxPathLen)
	output := longPath(t, filepath.Join(tmp, "o"), config.MaxPathLen-len("/out.log")) + "/out.log"
	user := strings.Repeat("0", config.MaxUserLen) // uid 0, spelled long
	// A cmdline of MaxCmdlineLen bytes that compiles to MaxCmdlineSize
	// instructions and matches nothing.
	cmdline := "^" + strings.Repeat("q", config.MaxCmdlineLen-1)
	absent := longPath(t, filepath.Join(tmp, "absent"), config.MaxPathLen-len("/x")) + "/x"

	q := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "limits: {restarts_per_second: %v, restart_burst: %d}\n", config.MaxRestartsPerSecond, config.MaxRestartBurst)
	b.WriteString("programs:\n")
	// Ten programs with command and env at their bounds and one with only
	// the command fill the bound on all programs together exactly.
	if total := 11*config.MaxCommandSize + 10*config.MaxEnvSize; total != config.MaxExecTotal {
		t.Fatalf("the programs take %d bytes together, want the bound %d", total, config.MaxExecTotal)
	}
	names := make([]string, 0, 11)
	for i := range 11 {
		name := fmt.Sprintf("%c", 'a'+i) + strings.Repeat("-", config.MaxNameLen-1)
		names = append(names, name)
		fmt.Fprintf(&b, "  - name: %s\n", name)
		if i == 0 {
			b.WriteString("    command: &cmd [")
			for j, a := range argv {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(q(a))
			}
			b.WriteString("]\n    env: &env {")
			j := 0
			for k, v := range env {
				if j > 0 {
					b.WriteString(", ")
				}
				j++
				fmt.Fprintf(&b, "%s: %s", q(k), q(v))
			}
			b.WriteString("}\n")
			fmt.Fprintf(&b, "    dir: %s\n    user: %s\n    group: %s\n", q(workDir), q(user), q(user))
			fmt.Fprintf(&b, "    restart: &restart {policy: always, backoff: {initial: %v, max: %v, multiplier: %v, jitter: 1}, reset_after: %v, limit: {burst: %d, interval: %v, action: give-up}}\n",
				config.MaxDelay, config.MaxDelay, config.MaxMultiplier, config.MaxDelay, config.MaxLimitBurst, config.MaxDelay)
			fmt.Fprintf(&b, "    stop: &stop {signal: TERM, timeout: %v}\n", config.MaxStopTimeout)
			fmt.Fprintf(&b, "    output: &output {file: %s}\n", q(output))
			fmt.Fprintf(&b, "    memory: &memory {max: %d, high: %d, swap_max: %d}\n", config.MaxMemory, config.MaxMemory, config.MaxMemory)
			continue
		}
		b.WriteString("    command: *cmd\n")
		if i < 10 {
			b.WriteString("    env: *env\n")
		}
		fmt.Fprintf(&b, "    dir: %s\n    user: %s\n    group: %s\n", q(workDir), q(user), q(user))
		b.WriteString("    restart: *restart\n    output: *output\n    memory: *memory\n")
		if i == 10 {
			// The largest signal number: the helper ignores it, as Go
			// programs ignore real-time signals they do not ask for, so the
			// stop ends with SIGKILL after the timeout.
			fmt.Fprintf(&b, "    stop: {signal: 64, timeout: 1s}\n")
			fmt.Fprintf(&b, "    match: {comm: %s, exe: %s, cmdline: %s, pidfile: %s, user: %s}\n    on_missing: start\n",
				q(strings.Repeat("z", 15)), q(absent), q(cmdline), q(absent), q(user))
		} else {
			b.WriteString("    stop: *stop\n")
		}
	}
	cfgFile := writeFile(t, tmp, "bounds.yaml", b.String())
	if c, err := config.Load(cfgFile); err != nil {
		t.Fatalf("the file at the bounds is refused: %v", err)
	} else if len(c.Programs) != len(names) {
		t.Fatalf("got %d programs", len(c.Programs))
	}

	d := startRespawnd(t, "--config", cfgFile)
	for i, name := range names {
		m, _ := d.waitLog(0, map[string]any{"msg": "state changed", "program": name, "state": "running"})
		pid := pidOf(m)
		t.Cleanup(func() { killHelper(pid) })
		// The program got every argument and variable. Right after the
		// start /proc can still show the image before the exec for an
		// instant (seen under emulation), so the check waits for the
		// exec to show, briefly: what it checks is what the exec got.
		var cmdline []byte
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			var err error
			if cmdline, err = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil {
				t.Fatal(err)
			}
			if bytes.Count(cmdline, []byte{0}) == len(argv) || time.Now().After(deadline) {
				break
			}
		}
		if n := bytes.Count(cmdline, []byte{0}); n != len(argv) || len(cmdline) != config.MaxCommandSize-8*len(argv) {
			t.Errorf("%s (pid %d) runs with %d arguments in %d bytes, want %d in %d", name, pid, n, len(cmdline), len(argv), config.MaxCommandSize-8*len(argv))
		}
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		long := "BOUND_LONG=" + env["BOUND_LONG"]
		if has := slices.Contains(strings.Split(string(environ), "\x00"), long); has != (i < 10) {
			t.Errorf("%s (pid %d): BOUND_LONG in its environment: %v", name, pid, has)
		}
	}
	hwm := vmHWM(t, d.cmd.Process.Pid)

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, d, 2*time.Minute)

	limit := int64(100 << 20)
	if raceEnabled() {
		// The race detector's shadow memory multiplies the heap.
		limit *= 4
	}
	t.Logf("respawnd's peak RSS: %d MiB", hwm>>20)
	if hwm > limit {
		t.Errorf("respawnd's peak RSS is %d MiB, more than %d MiB", hwm>>20, limit>>20)
	}
}

// argSpace is how much of the kernel's argument space s takes: its bytes,
// its NUL and the pointer to it.
func argSpace(s string) int { return len(s) + 1 + 8 }

// boundCommand returns argv padded to config.MaxCommandArgs arguments that
// take config.MaxCommandSize, one of them config.MaxArgLen long. The helper
// ignores the arguments after its mode.
func boundCommand(t *testing.T, argv []string) []string {
	t.Helper()
	size := argSpace
	rest := config.MaxCommandSize
	for _, a := range argv {
		rest -= size(a)
	}
	long := strings.Repeat("l", config.MaxArgLen)
	argv = append(argv, long)
	rest -= size(long)
	for n := config.MaxCommandArgs - len(argv); n > 0; n-- {
		l := rest/n - size("")
		argv = append(argv, strings.Repeat("p", l))
		rest -= size(argv[len(argv)-1])
	}
	if rest != 0 || len(argv) != config.MaxCommandArgs {
		t.Fatalf("padding left %d bytes, %d arguments", rest, len(argv))
	}
	return argv
}

// boundEnv returns config.MaxEnvVars variables that take config.MaxEnvSize
// as NAME=value strings, one of them config.MaxArgLen long.
func boundEnv(t *testing.T) map[string]string {
	t.Helper()
	size := func(k, v string) int { return argSpace(k + "=" + v) }
	env := map[string]string{"BOUND_LONG": strings.Repeat("v", config.MaxArgLen-len("BOUND_LONG="))}
	rest := config.MaxEnvSize - size("BOUND_LONG", env["BOUND_LONG"])
	for i := 1; i < config.MaxEnvVars; i++ {
		k := fmt.Sprintf("BOUND_%04d", i)
		n := rest/(config.MaxEnvVars-i) - size(k, "")
		env[k] = strings.Repeat("v", n)
		rest -= size(k, env[k])
	}
	if rest != 0 || len(env) != config.MaxEnvVars {
		t.Fatalf("padding left %d bytes, %d variables", rest, len(env))
	}
	return env
}

// longPath creates a directory whose path, starting with prefix, is n bytes
// long, in components no longer than the kernel's NAME_MAX.
func longPath(t *testing.T, prefix string, n int) string {
	t.Helper()
	p := prefix
	for len(p) < n {
		r := n - len(p) - 1 // room for this component
		c := min(200, r)
		if r-c == 1 {
			c-- // leave room for "/d", never a bare "/"
		}
		p += "/" + strings.Repeat("d", c)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if len(p) != n {
		t.Fatalf("path of %d bytes, want %d", len(p), n)
	}
	return p
}

// vmHWM reads the peak resident set size of pid from /proc/PID/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.VmHWM)
}

// raceEnabled reports whether the test binary, which runs as respawnd, was
// built with the race detector.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
