package hook_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// openDir returns a new directory that every user can write to, below
// directories every user can enter.
func openDir(t *testing.T) string {
	t.Helper()
	dir := testenv.EnterableDir(t)
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newRunner returns a Runner on a real launcher, whose Run and the
// launcher's run until the test ends.
func newRunner(t *testing.T, cfg hook.Config) (*hook.Runner, *outcomes, func()) {
	t.Helper()
	out := &outcomes{}
	buf := &testenv.Buffer{}
	l := restart.NewLauncher(restart.LauncherConfig{Stdout: buf, Stderr: buf})
	cfg.Launcher, cfg.Outcome = l, out.add
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := hook.New(cfg)
	stop := startRunner(t, r)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hook output:\n%s", buf)
		}
	})
	return r, out, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// readReport waits for the report of generation gen in dir.
func readReport(t *testing.T, dir string, gen int) report {
	t.Helper()
	path := filepath.Join(dir, "report-"+strconv.Itoa(gen))
	var b []byte
	testenv.Eventually(t, path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil
	})
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// rootRecord writes record to a file in a directory only root may enter,
// as respawnd's state directory is.
func rootRecord(t *testing.T, record []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "record.json")
	if err := os.WriteFile(path, record, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHookRunsOnceWithItsEnvironment is the acceptance test: the
// hook ran once, with the right environment, and could read the record.
func TestHookRunsOnceWithItsEnvironment(t *testing.T) {
	testenv.RequireRoot(t, "running hooks as root and as other users")
	verifyNoLeaks(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.Skip(t, "no user nobody: %v", err)
	}
	exe, _ := testenv.ExeForOthers(t, "hook")
	record := []byte(`{"program":"api","reason":"oom_kill","pid":4242}` + "\n")
	recordPath := rootRecord(t, record)
	base := []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}

	tests := []struct {
		name, user, group string
		uid, gid          string
		wantRecordEnv     string
	}{
		// As root, the hook gets the stored record's path.
		{name: "root", uid: "0", gid: "0", wantRecordEnv: recordPath},
		// The program's user, by name: the record comes as fd 3.
		{name: "program's user", user: "nobody", uid: nobody.Uid, gid: nobody.Gid, wantRecordEnv: "/proc/self/fd/3"},
		// A user: override by number, with a group, and no passwd entry.
		{name: "user override", user: "4242", group: nobody.Gid, uid: "4242", gid: nobody.Gid, wantRecordEnv: "/proc/self/fd/3"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := openDir(t)
			r, out, stop := newRunner(t, hook.Config{Env: base})
			r.Set("api", &hook.Spec{Argv: localHelperArgv(exe, "report", dir, recordPath), User: tt.user, Group: tt.group})
			gen := 10 + i
			r.Fire(hook.Exit{Program: "api", Reason: "oom_kill", Signal: "SIGKILL", PID: 4242, Generation: uint64(gen), Record: record, RecordPath: recordPath})
			testenv.Eventually(t, "the hook's result", func() bool { return len(out.get()) == 1 })
			stop()
			if got := out.get(); !slices.Equal(got, []string{"api success"}) {
				t.Errorf("outcomes %v, want one success", got)
			}
			rep := readReport(t, dir, gen)
			if strconv.Itoa(rep.UID) != tt.uid || strconv.Itoa(rep.GID) != tt.gid {
				t.Errorf("ran as uid %d gid %d, want %s %s", rep.UID, rep.GID, tt.uid, tt.gid)
			}
			want := append(slices.Clone(base),
				"RESPAWND_PROGRAM=api", "RESPAWND_REASON=oom_kill", "RESPAWND_EXIT_CODE=", "RESPAWND_SIGNAL=SIGKILL",
				"RESPAWND_PID=4242", "RESPAWND_GENERATION="+strconv.Itoa(gen), "RESPAWND_RECORD="+tt.wantRecordEnv)
			if tt.user != "" {
				// restart adds the login variables of a user it switches to.
				want = slices.DeleteFunc(slices.Clone(rep.Env), func(kv string) bool {
					return !slices.ContainsFunc([]string{"HOME=", "USER=", "LOGNAME=", "SHELL="}, func(p string) bool { return strings.HasPrefix(kv, p) })
				})
				want = append(append(slices.Clone(base),
					"RESPAWND_PROGRAM=api", "RESPAWND_REASON=oom_kill", "RESPAWND_EXIT_CODE=", "RESPAWND_SIGNAL=SIGKILL",
					"RESPAWND_PID=4242", "RESPAWND_GENERATION="+strconv.Itoa(gen), "RESPAWND_RECORD="+tt.wantRecordEnv), want...)
				if !slices.Contains(rep.Env, "USER="+cmpOr(lookupName(tt.user), tt.user)) {
					t.Errorf("no USER of %s in %q", tt.user, rep.Env)
				}
			}
			if !slices.Equal(sorted(rep.Env), sorted(want)) {
				t.Errorf("environment\n got %q\nwant %q", sorted(rep.Env), sorted(want))
			}
			if rep.Record != string(record) || rep.RecordErr != "" {
				t.Errorf("read %q (%s) from RESPAWND_RECORD, want %q", rep.Record, rep.RecordErr, record)
			}
			if tt.user != "" {
				// The less-privileged hook cannot read the state directory,
				// nor change its copy of the record.
				if !strings.Contains(rep.ProtectedErr, "permission denied") {
					t.Errorf("a hook as uid %s read the root-only record file: %q", tt.uid, rep.ProtectedErr)
				}
				if !strings.Contains(rep.WriteFD3Err, "operation not permitted") {
					t.Errorf("a hook as uid %s wrote to its sealed record: %q", tt.uid, rep.WriteFD3Err)
				}
			}
			b, err := os.ReadFile(recordPath)
			if err != nil || string(b) != string(record) {
				t.Errorf("record file now %q, %v", b, err)
			}
			// Exactly once.
			if m, _ := filepath.Glob(filepath.Join(dir, "report-*")); len(m) != 1 {
				t.Errorf("reports %v, want one", m)
			}
		})
	}
}

func lookupName(id string) string {
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	if u, err := user.Lookup(id); err == nil {
		return u.Username
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestCoalescing fires five exits while the first one's hook runs: one
// runs, the last waits and runs after it, three are skipped.
func TestCoalescing(t *testing.T) {
	testenv.RequireRoot(t, "running hooks")
	verifyNoLeaks(t)
	dir := t.TempDir()
	r, out, _ := newRunner(t, hook.Config{})
	r.Set("api", &hook.Spec{Argv: localHelperArgv("", "gate", dir)})
	for gen := 1; gen <= 5; gen++ {
		r.Fire(hook.Exit{Program: "api", Reason: "exit_error", Generation: uint64(gen)})
	}
	started := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "started-*"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	testenv.Eventually(t, "the first hook", func() bool { return len(started()) == 1 })
	if got := out.get(); !slices.Equal(got, []string{"api skipped", "api skipped", "api skipped"}) {
		t.Errorf("outcomes while the first runs: %v, want 3 skipped", got)
	}
	if got := started(); !slices.Equal(got, []string{"started-1"}) {
		t.Fatalf("started %v, want the first exit's hook alone", got)
	}
	release := func(gen int) {
		if err := os.WriteFile(filepath.Join(dir, "release-"+strconv.Itoa(gen)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	release(1)
	testenv.Eventually(t, "the last exit's hook", func() bool { return len(started()) == 2 })
	if got := started(); !slices.Equal(got, []string{"started-1", "started-5"}) {
		t.Errorf("started %v, want the first and the last exit's hooks", got)
	}
	if n := out.count("api", hook.ResultSuccess); n != 1 {
		t.Errorf("%d successes before the second run ended", n)
	}
	release(5)
	testenv.Eventually(t, "two successes", func() bool { return out.count("api", hook.ResultSuccess) == 2 })
	if got := out.get(); len(got) != 5 || out.count("api", hook.ResultSkipped) != 3 {
		t.Errorf("outcomes %v, want 3 skipped and 2 successes", got)
	}
}

// treePIDs waits for the tree helper's pids in dir.
func treePIDs(t *testing.T, dir string, gen int) (pid, grandchild int) {
	t.Helper()
	path := filepath.Join(dir, "tree-"+strconv.Itoa(gen))
	var b []byte
	testenv.Eventually(t, path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil
	})
	if _, err := fmt.Sscan(string(b), &pid, &grandchild); err != nil {
		t.Fatalf("%s: %q: %v", path, b, err)
	}
	t.Cleanup(func() {
		testenv.KillHelper(grandchild)
		testenv.KillHelper(pid)
	})
	return pid, grandchild
}

// TestTimeoutKillsProcessGroup runs a hook that starts a grandchild and
// sleeps past its timeout: both are killed, and the result is timeout.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	testenv.RequireRoot(t, "running hooks")
	verifyNoLeaks(t)
	dir := t.TempDir()
	expire := make(chan time.Time, 1)
	timeouts := make(chan time.Duration, 1)
	r, out, _ := newRunner(t, hook.Config{After: func(d time.Duration) <-chan time.Time {
		timeouts <- d
		return expire
	}})
	r.Set("api", &hook.Spec{Argv: localHelperArgv("", "tree", dir), Timeout: 3 * time.Second})
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 1})
	pid, gc := treePIDs(t, dir, 1)
	if d := <-timeouts; d != 3*time.Second {
		t.Errorf("timeout %v, want the spec's 3s", d)
	}
	expire <- time.Now()
	testenv.Eventually(t, "the timeout", func() bool { return len(out.get()) == 1 })
	if got := out.get(); !slices.Equal(got, []string{"api timeout"}) {
		t.Errorf("outcomes %v, want timeout", got)
	}
	testenv.Eventually(t, "the hook and its grandchild gone", func() bool { return testenv.Gone(pid) && testenv.Gone(gc) })
}

// TestRunStopKillsHooks stops the Runner while a hook runs: the hook's
// group is killed before Run returns, and the exit waiting is skipped.
func TestRunStopKillsHooks(t *testing.T) {
	testenv.RequireRoot(t, "running hooks")
	verifyNoLeaks(t)
	dir := t.TempDir()
	timeouts := make(chan time.Duration, 1)
	r, out, stop := newRunner(t, hook.Config{After: func(d time.Duration) <-chan time.Time {
		timeouts <- d
		return nil // never
	}})
	r.Set("api", &hook.Spec{Argv: localHelperArgv("", "tree", dir)})
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 1})
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 2})
	pid, gc := treePIDs(t, dir, 1)
	if d := <-timeouts; d != hook.DefaultTimeout {
		t.Errorf("timeout %v, want the default %v", d, hook.DefaultTimeout)
	}
	stop()
	if !testenv.Gone(pid) {
		t.Errorf("hook %d still runs after Run returned", pid)
	}
	testenv.Eventually(t, "the grandchild gone", func() bool { return testenv.Gone(gc) })
	if got := out.get(); !slices.Equal(got, []string{"api skipped"}) {
		t.Errorf("outcomes %v, want the waiting exit skipped", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "tree-2")); err == nil {
		t.Error("the waiting exit's hook ran")
	}
}

// TestFailure checks that a hook's non-zero exit is a failure.
func TestFailure(t *testing.T) {
	testenv.RequireRoot(t, "running hooks")
	verifyNoLeaks(t)
	r, out, _ := newRunner(t, hook.Config{})
	r.Set("api", &hook.Spec{Argv: testenv.HelperArgv("exit", "3")})
	r.Fire(hook.Exit{Program: "api", Reason: "signal"})
	testenv.Eventually(t, "the failure", func() bool { return len(out.get()) == 1 })
	if got := out.get(); !slices.Equal(got, []string{"api failure"}) {
		t.Errorf("outcomes %v, want failure", got)
	}
}

// TestLeftoversKilled runs a hook that leaves a grandchild behind and
// exits: the grandchild does not outlive it.
func TestLeftoversKilled(t *testing.T) {
	testenv.RequireRoot(t, "running hooks")
	verifyNoLeaks(t)
	dir := t.TempDir()
	r, out, _ := newRunner(t, hook.Config{})
	r.Set("api", &hook.Spec{Argv: localHelperArgv("", "tree", dir, "exit")})
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 1})
	_, gc := treePIDs(t, dir, 1)
	testenv.Eventually(t, "the hook's result", func() bool { return len(out.get()) == 1 })
	if got := out.get(); !slices.Equal(got, []string{"api success"}) {
		t.Errorf("outcomes %v, want success", got)
	}
	testenv.Eventually(t, "the grandchild gone", func() bool { return testenv.Gone(gc) })
}
