package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

// runningPIDs waits for a "running" record of every program and returns
// their pids.
func runningPIDs(d *daemonProc, from int, names ...string) map[string]int {
	d.t.Helper()
	out := map[string]int{}
	for _, n := range names {
		m, _ := d.waitLogFn(from, n+" running", func(m map[string]any) bool {
			return m["program"] == n && (m["msg"] == "state changed" && m["state"] == "running" || m["msg"] == "adopted running instance")
		})
		out[n] = pidOf(m)
	}
	return out
}

// TestRespawndKill9KeepsPrograms kills respawnd with SIGKILL while five
// programs run, starts it again, and checks that it takes the same five
// processes back without starting any, then still restarts one that dies.
func TestRespawndKill9KeepsPrograms(t *testing.T) {
	testenv.RequireRoot(t, "adopting processes after respawnd's own restart")
	for _, tc := range []struct {
		name  string
		state func(dir string) // what happens to the state file while respawnd is down
		match bool             // the programs have match: keys
	}{
		{"state file", func(string) {}, true},
		{"state file missing", func(dir string) { _ = os.Remove(filepath.Join(dir, "state.json")) }, true},
		{"state file corrupt", func(dir string) { _ = os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o600) }, true},
		// No match and no state file: the programs' environment tags find them.
		{"state file missing, no match", func(dir string) { _ = os.Remove(filepath.Join(dir, "state.json")) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stateDir := filepath.Join(dir, "state")
			token := fmt.Sprintf("respawnd-adopt-%d", time.Now().UnixNano())
			var b strings.Builder
			b.WriteString("programs:\n")
			names := []string{"p1", "p2", "p3", "p4", "p5"}
			for _, n := range names {
				// match by cmdline, so that adoption works without the state file
				if tc.match {
					fmt.Fprintf(&b, "  - {name: %s, command: %s, match: {cmdline: '%s-%s$'}}\n", n, helperCommand("sleep", token+"-"+n), token, n)
				} else {
					fmt.Fprintf(&b, "  - {name: %s, command: %s}\n", n, helperCommand("sleep", token+"-"+n))
				}
			}
			cfg := writeFile(t, dir, "respawnd.yaml", b.String())

			first := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
			pids := runningPIDs(first, 0, names...)
			procs := map[string]procInfo{}
			for n, pid := range pids {
				p, ok := identify(pid)
				if !ok {
					t.Fatalf("%s (pid %d) is gone", n, pid)
				}
				procs[n] = p
				t.Cleanup(p.kill)
			}
			// The state file records all five before respawnd dies.
			waitRecorded(t, stateDir, names...)
			kill9(t, first)
			for n, p := range procs {
				if !p.alive() {
					t.Fatalf("%s (pid %d) died with respawnd", n, p.pid)
				}
			}
			tc.state(stateDir)

			second := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
			again := runningPIDs(second, 0, names...)
			for n, pid := range pids {
				if again[n] != pid {
					t.Errorf("%s: pid %d after restart, want %d adopted", n, again[n], pid)
				}
			}
			known := map[int]bool{}
			for _, pid := range pids {
				known[pid] = true
			}
			second.mu.Lock()
			for _, m := range second.log {
				if m["msg"] == "state changed" && m["state"] == "running" && !known[pidOf(m)] {
					t.Errorf("respawnd started a new process: %v", m)
				}
			}
			second.mu.Unlock()
			if tc.name == "state file corrupt" && second.count(map[string]any{"msg": "state file unreadable, adopting by tag and match only"}) != 1 {
				t.Errorf("no warning about the corrupt state file")
			}

			// A death is still noticed and the program restarted, now as a child.
			procs["p3"].kill()
			e, _ := second.waitLog(0, map[string]any{"msg": "exited", "program": "p3"})
			// The kernel reports a non-child's status since 6.15; before,
			// only while it is an unreaped zombie, so the exit of an
			// adopted process may be unknown there, but never wrong.
			switch {
			case e["reason"] == "signal" && e["signal"] == "SIGKILL":
			case e["reason"] == "unknown" && !testenv.KernelAtLeast(t, 6, 15):
			default:
				t.Errorf("adopted p3 killed: %v, want signal SIGKILL (or unknown before Linux 6.15)", e)
			}
			n, _ := second.waitLogFn(0, "p3 restarted", func(m map[string]any) bool {
				return m["msg"] == "state changed" && m["program"] == "p3" && m["state"] == "running" && pidOf(m) != pids["p3"]
			})
			pids["p3"] = pidOf(n)

			// SIGTERM stops adopted and own programs alike, and respawnd exits.
			if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			second.waitLog(0, map[string]any{"msg": "stopped"})
			for n, pid := range pids {
				if err := waitGone(pid); err != nil {
					t.Errorf("%s (pid %d) survived respawnd's stop: %v", n, pid, err)
				}
			}
		})
	}
}

// TestAdoptOutsideProcess watches processes that something else started,
// matched by their command lines: a kill -9 is a signal, a real OOM kill (in
// a memory cgroup of the test's own) is an oom_kill, and each is followed by
// respawnd starting the program itself.
func TestAdoptOutsideProcess(t *testing.T) {
	testenv.RequireKmsg(t, "attributing the death of a process respawnd did not start")
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	dir := t.TempDir()
	token := fmt.Sprintf("respawnd-outside-%d", time.Now().UnixNano())

	// Started by "someone else": the test, each in its own session, both
	// inside the limited cgroup from before they allocate anything.
	startOutside := func(argv []string) *exec.Cmd {
		c := exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, cg.Procs()}, argv...)...)
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() })
		return c
	}
	// Matched by its process name, which the helper sets itself.
	comm := fmt.Sprintf("legacy%d", time.Now().UnixNano()%1e8)
	sleeper := startOutside(testenv.HelperArgv("sleep-as", comm))
	hog := startOutside(testenv.HelperArgv("hog-after", "3s", token+"-b"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", sleeper.Process.Pid))
		if strings.TrimSpace(string(b)) == comm {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outside process never took the name %q", comm)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The replacements respawnd starts only sleep.
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - {name: legacy-a, match: {comm: %[4]s}, command: %[2]s}
  - {name: legacy-b, match: {cmdline: '%[1]s-b$'}, command: %[3]s}
`, token, helperCommand("sleep-as", comm), helperCommand("sleep", token+"-b"), comm))
	d := startRespawnd(t, "--state.dir", filepath.Join(dir, "state"), "--config", cfg)
	pids := runningPIDs(d, 0, "legacy-a", "legacy-b")
	if pids["legacy-a"] != sleeper.Process.Pid || pids["legacy-b"] != hog.Process.Pid {
		t.Fatalf("adopted %v, want legacy-a %d and legacy-b %d", pids, sleeper.Process.Pid, hog.Process.Pid)
	}
	// respawnd's own replacements are stopped with it; the outside
	// processes are killed by their own cleanups.
	if err := sleeper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	e, _ := d.waitLog(0, map[string]any{"msg": "exited", "program": "legacy-a"})
	if e["reason"] != "signal" || e["signal"] != "SIGKILL" {
		t.Errorf("kill -9 of the adopted process: %v, want signal SIGKILL", e)
	}
	e, _ = d.waitLog(0, map[string]any{"msg": "exited", "program": "legacy-b"})
	if e["reason"] != "oom_kill" {
		t.Errorf("OOM kill of the adopted process: %v, want oom_kill", e)
	}
	for _, r := range []string{"legacy-a", "legacy-b"} {
		d.waitLogFn(0, r+" restarted", func(m map[string]any) bool {
			return m["program"] == r && m["msg"] == "state changed" && m["state"] == "running" && pidOf(m) != pids[r]
		})
	}
}

// waitGone waits until pid no longer exists (reaped, or a zombie of
// another parent is not ours to wait for: it counts as gone).
func waitGone(pid int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("still running")
}
