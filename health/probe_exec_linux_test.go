package health

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// newLauncher returns a launcher whose prefixed output goes to the
// returned buffer.
func newLauncher(t *testing.T) (*restart.Launcher, *testenv.Buffer) {
	t.Helper()
	out := &testenv.Buffer{}
	return restart.NewLauncher(restart.LauncherConfig{Stdout: out, Stderr: out}), out
}

func TestExecProbe(t *testing.T) {
	verifyNoLeaks(t)
	l, out := newLauncher(t)
	tests := []struct {
		name       string
		argv       []string
		timeout    time.Duration
		want       Result
		wantReason string
	}{
		{"exit 0 passes", localHelperArgv("say", "0", "fine"), 10 * time.Second, ResultSuccess, ""},
		{"exit 1 fails", testenv.HelperArgv("exit", "1"), 10 * time.Second, ResultFailure, "exit status 1"},
		{"the last output line names the failure", localHelperArgv("say", "2", "not ready yet"), 10 * time.Second, ResultFailure, `exit status 2; last output: "not ready yet"`},
		{"a signal fails", testenv.HelperArgv("crash"), 10 * time.Second, ResultFailure, "signal: "},
		{"a hang is a timeout", testenv.HelperArgv("sleep"), 300 * time.Millisecond, ResultTimeout, "timed out after 300ms"},
		{"a missing command fails", []string{"/nonexistent/probe"}, 10 * time.Second, ResultFailure, "starting prog health: exec: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newExecProbe(l, "prog", &config.ExecProbe{Command: tt.argv}, restart.Command{Env: os.Environ()})
			w := &watch{ctx: context.Background(), cancel: func() {}}
			r, reason, ok := ep.run(context.Background(), tt.timeout, w)
			if !ok || r != tt.want || !strings.HasPrefix(reason, tt.wantReason) || (tt.wantReason == "" && reason != "") {
				t.Errorf("probe = %s %q %v, want %s %q…", r, reason, ok, tt.want, tt.wantReason)
			}
		})
	}
	if s := out.String(); s != "" {
		t.Errorf("probe output reached respawnd's output: %q", s)
	}
}

func TestProbeEnv(t *testing.T) {
	base := restart.Command{
		Name: "prog", Argv: []string{"/bin/prog"}, Dir: "/srv", User: "app", Group: "apps",
		Env:        []string{"PATH=/bin", "NOTIFY_SOCKET=/run/respawnd/notify", "LISTEN_FDS=1", "LISTEN_PID=4", "WATCHDOG_USEC=100", "APP=1"},
		OutputFile: "/var/log/prog.log", CgroupFD: 7, ExtraFiles: []*os.File{os.Stdin},
	}
	ep := newExecProbe(nil, "prog", &config.ExecProbe{Command: []string{"/bin/check", "-q"}}, base)
	want := restart.Command{
		Name: "prog health", Argv: []string{"/bin/check", "-q"}, Dir: "/srv", User: "app", Group: "apps",
		Env: []string{"PATH=/bin", "APP=1"}, OutputFile: os.DevNull, KillGroupOnExit: true,
	}
	got := ep.cmd
	if got.Name != want.Name || !slices.Equal(got.Argv, want.Argv) || got.Dir != want.Dir || got.User != want.User ||
		got.Group != want.Group || !slices.Equal(got.Env, want.Env) || got.OutputFile != want.OutputFile ||
		got.KillGroupOnExit != want.KillGroupOnExit || got.CgroupFD != 0 || got.ExtraFiles != nil {
		t.Errorf("probe command %+v, want %+v", got, want)
	}
	r, reason, _ := ep.run(context.Background(), time.Second, nil)
	if r != ResultFailure || reason != "exec probes need a launcher" {
		t.Errorf("probe without a launcher = %s %q", r, reason)
	}
}

// readTree waits for the tree helper's pid file in dir and returns the
// probe's pid and its grandchild's.
func readTree(t *testing.T, dir string) (pid, gc int) {
	t.Helper()
	var files []string
	testenv.Eventually(t, "the probe's pid file", func() bool {
		files, _ = filepath.Glob(filepath.Join(dir, "tree-*"))
		return len(files) > 0
	})
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pid, _ = strconv.Atoi(f[0])
	gc, _ = strconv.Atoi(f[1])
	// Only our own helpers, and only if the test failed to see them gone.
	t.Cleanup(func() {
		testenv.KillHelper(gc)
		killLocalHelper(pid)
	})
	return pid, gc
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newLauncher(t)
	dir := t.TempDir()
	rec := &recorder{}
	c, _ := startChecker(t, Config{Launcher: l}, rec)
	h := config.Health{Exec: &config.ExecProbe{Command: localHelperArgv("tree", dir)}, Period: 1500 * time.Millisecond, Timeout: time.Second, Failures: 1}
	t.Cleanup(c.Watch("prog", h, restart.Command{Env: os.Environ()}, rec.notify))

	pid, gc := readTree(t, dir)
	testenv.Eventually(t, "Unhealthy", func() bool { _, ok := rec.first(Unhealthy); return ok })
	if ev, _ := rec.first(Unhealthy); ev.Reason != "timed out after 1s" {
		t.Errorf("Unhealthy %+v, want timed out after 1s", ev.Event)
	}
	// The probe was reaped before its result was reported.
	if !testenv.Gone(pid) {
		t.Errorf("probe %d still runs after its timeout", pid)
	}
	testenv.Eventually(t, "the probe's child to be gone", func() bool { return testenv.Gone(gc) })
}

func TestExecProbesNeverOverlap(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newLauncher(t)
	const period = 500 * time.Millisecond
	for _, timeout := range []time.Duration{400 * time.Millisecond, period} {
		t.Run("timeout "+timeout.String(), func(t *testing.T) {
			dir := t.TempDir()
			t.Cleanup(func() { killStarted(dir) })
			rec := &recorder{}
			c, _ := startChecker(t, Config{Launcher: l}, rec)
			// Every probe hangs past its timeout; with the timeout as long as
			// the period, each is killed just as the next is due.
			h := config.Health{Exec: &config.ExecProbe{Command: localHelperArgv("lock", dir, "1h")}, Period: period, Timeout: timeout, Failures: 100}
			t.Cleanup(c.Watch("prog", h, restart.Command{Env: os.Environ()}, rec.notify))
			// Five probes that got as far as taking the lock (a probe killed
			// before, while the test binary starts, proves nothing).
			starts := func() int {
				b, _ := os.ReadFile(filepath.Join(dir, "starts"))
				return strings.Count(string(b), "\n")
			}
			testenv.Eventually(t, "five probes to take the lock", func() bool { return starts() >= 5 })

			overlaps, _ := filepath.Glob(filepath.Join(dir, "overlap-*"))
			if len(overlaps) > 0 {
				t.Errorf("%d probes started while another held the lock", len(overlaps))
			}
			for _, r := range rec.getResults() {
				if r != ResultTimeout {
					t.Errorf("result %s, want timeout: the probe holds the lock until killed", r)
				}
			}
		})
	}
}

func TestStopKillsExecProbe(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newLauncher(t)
	dir := t.TempDir()
	rec := &recorder{}
	c, _ := startChecker(t, Config{Launcher: l}, rec)
	h := config.Health{Exec: &config.ExecProbe{Command: localHelperArgv("tree", dir)}, Period: time.Hour, Timeout: time.Hour, Failures: 1}
	stop := c.Watch("prog", h, restart.Command{Env: os.Environ()}, rec.notify)
	pid, gc := readTree(t, dir)
	stop()
	testenv.Eventually(t, "the probe and its child to be gone", func() bool { return testenv.Gone(pid) && testenv.Gone(gc) })
	if ev, res := rec.getEvents(), rec.getResults(); len(ev) != 0 || len(res) != 0 {
		t.Errorf("after stop: events %v, results %v, want none", ev, res)
	}
}

func TestRunEndKillsExecProbes(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newLauncher(t)
	rec := &recorder{}
	c, end := startChecker(t, Config{Launcher: l}, rec)
	h := config.Health{Period: time.Hour, Timeout: time.Hour, Failures: 1}
	var dirs []string
	for i := range 3 {
		dir := t.TempDir()
		dirs = append(dirs, dir)
		h.Exec = &config.ExecProbe{Command: localHelperArgv("tree", dir)}
		c.Watch("prog"+strconv.Itoa(i), h, restart.Command{Env: os.Environ()}, rec.notify)
	}
	var pids []int
	for _, dir := range dirs {
		pid, gc := readTree(t, dir)
		pids = append(pids, pid, gc)
	}
	end() // returns once the watches ended and their probes were reaped
	for i := 0; i < len(pids); i += 2 {
		if !testenv.Gone(pids[i]) {
			t.Errorf("probe %d still runs after Run returned", pids[i])
		}
	}
	testenv.Eventually(t, "the probes' children to be gone", func() bool {
		return testenv.Gone(pids[1]) && testenv.Gone(pids[3]) && testenv.Gone(pids[5])
	})
	if ev := rec.getEvents(); len(ev) != 0 {
		t.Errorf("events %v, want none", ev)
	}
}

// killStarted kills the lock helpers listed in dir/starts that still run:
// only a failing test leaves any.
func killStarted(dir string) {
	b, _ := os.ReadFile(filepath.Join(dir, "starts"))
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			killLocalHelper(pid)
		}
	}
}

// killLocalHelper sends SIGKILL to pid if it still runs one of this
// package's helper modes (pidfd-checked, so never a reused pid's owner).
func killLocalHelper(pid int) {
	_ = testenv.SignalIf(pid, unix.SIGKILL, func(pid int) bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			return false
		}
		args := strings.Split(string(b), "\x00")
		return len(args) >= 2 && args[1] == localHelperArg
	})
}

func TestExecProbeRunsAsTheProgram(t *testing.T) {
	testenv.RequireRoot(t, "exec probes as another user")
	verifyNoLeaks(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.Skip(t, "no user nobody: %v", err)
	}
	exe, dir := testenv.ExeForOthers(t, "probe")
	l, _ := newLauncher(t)
	base := restart.Command{Name: "prog", User: "nobody", Dir: dir, Env: []string{"APP=1", "NOTIFY_SOCKET=/run/notify"}}
	run := func(uid string) (Result, string) {
		argv := localHelperArgv("whoami", uid, nobody.Gid, dir, "APP=1")
		argv[0] = exe
		ep := newExecProbe(l, "prog", &config.ExecProbe{Command: argv}, base)
		r, reason, _ := ep.run(context.Background(), 10*time.Second, &watch{})
		return r, reason
	}
	if r, reason := run(nobody.Uid); r != ResultSuccess {
		t.Errorf("probe = %s %q, want success as nobody in %s", r, reason, dir)
	}
	// The check can fail: expecting root's uid.
	want := fmt.Sprintf(`exit status 1; last output: "got %s %s %s true false, want 0 %s %s true false"`, nobody.Uid, nobody.Gid, dir, nobody.Gid, dir)
	if r, reason := run("0"); r != ResultFailure || reason != want {
		t.Errorf("probe = %s %q, want failure %q", r, reason, want)
	}
}
