package hook_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
)

// fakeLauncher records the commands it is asked to start and fails each
// start, after waiting for gate when it is set.
type fakeLauncher struct {
	gate chan struct{}
	mu   sync.Mutex
	cmds []restart.Command
}

var errFake = errors.New("not started: fake launcher")

func (l *fakeLauncher) Start(cmd restart.Command) (*restart.Process, error) {
	if l.gate != nil {
		<-l.gate
	}
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
	return nil, &restart.StartError{Program: cmd.Name, Op: restart.OpLookupCommand, Err: errFake}
}

func (l *fakeLauncher) started() []restart.Command {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.cmds)
}

var _ hook.Launcher = (*restart.Launcher)(nil)

// TestReasonNames checks the reason names shared by config and hook
// against the reasons the supervisor reports.
func TestReasonNames(t *testing.T) {
	var names []string
	for _, r := range supervisor.Reasons {
		names = append(names, r.String())
	}
	slices.Sort(names)
	exit := slices.Sorted(slices.Values(config.ExitReasons))
	if !slices.Equal(names, exit) {
		t.Errorf("config.ExitReasons = %v, the supervisor reports %v", exit, names)
	}
	if !slices.Equal(hook.DefaultReasons, config.DefaultHookReasons) {
		t.Errorf("hook.DefaultReasons = %v, config.DefaultHookReasons = %v", hook.DefaultReasons, config.DefaultHookReasons)
	}
}

// TestEnvironment checks the exact environment and command a hook gets.
func TestEnvironment(t *testing.T) {
	verifyNoLeaks(t)
	l := &fakeLauncher{}
	var out outcomes
	r := hook.New(hook.Config{Launcher: l, Outcome: out.add, Env: []string{"PATH=/bin", "LANG=C", "RESPAWND_REASON=forged", "RESPAWND_INSTANCE=x"}})
	startRunner(t, r)
	r.Set("api", &hook.Spec{Argv: []string{"/usr/local/bin/notify", "--channel", "ops"}, User: "www-data", Group: "adm"})
	code := 3
	r.Fire(hook.Exit{Program: "api", Reason: "exit_error", ExitCode: &code, PID: 4242, Generation: 7, RecordPath: "/run/respawnd/records/api-7.json"})
	r.Fire(hook.Exit{Program: "api", Reason: "start_failure", Generation: 8}) // waits, then runs
	testenv.Eventually(t, "two start failures", func() bool { return out.count("api", hook.ResultStartFailure) == 2 })

	cmds := l.started()
	if len(cmds) != 2 {
		t.Fatalf("%d starts, want 2", len(cmds))
	}
	c := cmds[0]
	if c.Name != "api on_exit" || !slices.Equal(c.Argv, []string{"/usr/local/bin/notify", "--channel", "ops"}) || c.User != "www-data" || c.Group != "adm" {
		t.Errorf("command %+v", c)
	}
	if c.CgroupFD != 0 || c.CgroupProcs != nil || c.OutputFile != "" || !c.KillGroupOnExit || c.ExtraFiles != nil {
		t.Errorf("command %+v: want no cgroup, no output file, no record file, the group killed on exit", c)
	}
	// Without a record, RESPAWND_RECORD is empty: RecordPath is root's,
	// and www-data is not root.
	want := []string{
		"PATH=/bin", "LANG=C",
		"RESPAWND_PROGRAM=api", "RESPAWND_REASON=exit_error", "RESPAWND_EXIT_CODE=3", "RESPAWND_SIGNAL=",
		"RESPAWND_PID=4242", "RESPAWND_GENERATION=7", "RESPAWND_RECORD=",
	}
	if !slices.Equal(c.Env, want) {
		t.Errorf("environment\n got %q\nwant %q", c.Env, want)
	}
	want = []string{
		"PATH=/bin", "LANG=C",
		"RESPAWND_PROGRAM=api", "RESPAWND_REASON=start_failure", "RESPAWND_EXIT_CODE=", "RESPAWND_SIGNAL=",
		"RESPAWND_PID=", "RESPAWND_GENERATION=8", "RESPAWND_RECORD=",
	}
	if !slices.Equal(cmds[1].Env, want) {
		t.Errorf("environment\n got %q\nwant %q", cmds[1].Env, want)
	}

	// Without Config.Env, PATH alone.
	l2 := &fakeLauncher{}
	var out2 outcomes
	r2 := hook.New(hook.Config{Launcher: l2, Outcome: out2.add})
	startRunner(t, r2)
	r2.Set("db", &hook.Spec{Argv: []string{"notify"}})
	r2.Fire(hook.Exit{Program: "db", Reason: "signal", Signal: "SIGKILL", PID: 9, Generation: 1})
	testenv.Eventually(t, "a start failure", func() bool { return out2.count("db", hook.ResultStartFailure) == 1 })
	want = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"RESPAWND_PROGRAM=db", "RESPAWND_REASON=signal", "RESPAWND_EXIT_CODE=", "RESPAWND_SIGNAL=SIGKILL",
		"RESPAWND_PID=9", "RESPAWND_GENERATION=1", "RESPAWND_RECORD=",
	}
	if got := l2.started()[0].Env; !slices.Equal(got, want) {
		t.Errorf("environment\n got %q\nwant %q", got, want)
	}
}

// TestReasons checks which reasons run a hook, by default and as listed.
func TestReasons(t *testing.T) {
	verifyNoLeaks(t)
	l := &fakeLauncher{}
	var out outcomes
	r := hook.New(hook.Config{Launcher: l, Outcome: out.add})
	startRunner(t, r)
	r.Set("default", &hook.Spec{Argv: []string{"/bin/n"}})
	r.Set("listed", &hook.Spec{Argv: []string{"/bin/n"}, Reasons: []string{"exit_success", "memory_recycle"}})
	wanted := map[string][]string{
		"default": {"oom_kill", "signal", "exit_error", "start_failure", "health_check", "watchdog", "unknown"},
		"listed":  {"exit_success", "memory_recycle"},
	}
	n := 0
	for _, program := range []string{"default", "listed", "none"} {
		for _, reason := range config.ExitReasons {
			r.Fire(hook.Exit{Program: program, Reason: reason})
			if slices.Contains(wanted[program], reason) {
				// One at a time, so that no exit waits for another.
				n++
				testenv.Eventually(t, "the hook of "+program, func() bool { return len(out.get()) == n })
			}
		}
	}
	got := map[string][]string{}
	for _, c := range l.started() {
		got[c.Name] = append(got[c.Name], envValue(c.Env, "RESPAWND_REASON"))
	}
	if want := wanted["default"]; !slices.Equal(got["default on_exit"], want) {
		t.Errorf("default reasons ran %v, want %v", got["default on_exit"], want)
	}
	if want := wanted["listed"]; !slices.Equal(got["listed on_exit"], want) {
		t.Errorf("listed reasons ran %v, want %v", got["listed on_exit"], want)
	}
	if len(got) != 2 {
		t.Errorf("hooks ran for %v", got)
	}
	// Exits of the unwanted reasons (fired last) ran nothing.
	r.Fire(hook.Exit{Program: "listed", Reason: "exit_success"})
	testenv.Eventually(t, "the last hook", func() bool { return len(out.get()) == 10 })
	if got := out.get(); slices.Contains(got, "none start_failure") || len(got) != 10 {
		t.Errorf("outcomes %v", got)
	}
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return "(unset)"
}

// TestSetNilRemoves checks that a removed hook no longer runs, and that an
// exit waiting for a hook that is removed counts as skipped.
func TestSetNilRemoves(t *testing.T) {
	verifyNoLeaks(t)
	l := &fakeLauncher{gate: make(chan struct{})}
	var out outcomes
	r := hook.New(hook.Config{Launcher: l, Outcome: out.add})
	startRunner(t, r)
	spec := &hook.Spec{Argv: []string{"/bin/n"}}
	r.Set("api", spec)
	spec.Argv[0] = "/bin/changed" // Set copies
	r.Set("api", nil)
	r.Fire(hook.Exit{Program: "api", Reason: "signal"})

	r.Set("api", &hook.Spec{Argv: []string{"/bin/n"}})
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 1}) // runs, held at the gate
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 2}) // waits
	r.Set("api", nil)                                                  // the waiting one is skipped
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 3}) // ignored
	if got := out.get(); !slices.Equal(got, []string{"api skipped"}) {
		t.Errorf("outcomes %v, want one skipped", got)
	}
	// Set again while the first still runs: the new hook waits for it.
	r.Set("api", &hook.Spec{Argv: []string{"/bin/again"}})
	r.Fire(hook.Exit{Program: "api", Reason: "signal", Generation: 4})
	close(l.gate)
	testenv.Eventually(t, "two runs", func() bool { return out.count("api", hook.ResultStartFailure) == 2 })
	cmds := l.started()
	if len(cmds) != 2 || cmds[0].Argv[0] != "/bin/n" || envValue(cmds[0].Env, "RESPAWND_GENERATION") != "1" ||
		cmds[1].Argv[0] != "/bin/again" || envValue(cmds[1].Env, "RESPAWND_GENERATION") != "4" {
		t.Errorf("started %+v", cmds)
	}

	// SetAll removes the programs it does not name.
	r.SetAll(map[string]*hook.Spec{"db": {Argv: []string{"/bin/db"}}, "off": nil})
	r.Fire(hook.Exit{Program: "api", Reason: "signal"})
	r.Fire(hook.Exit{Program: "off", Reason: "signal"})
	r.Fire(hook.Exit{Program: "db", Reason: "signal"})
	testenv.Eventually(t, "db's run", func() bool { return out.count("db", hook.ResultStartFailure) == 1 })
	if n := len(l.started()); n != 3 {
		t.Errorf("%d starts, want 3", n)
	}
}

// TestFireNeverBlocks fires exits while the Launcher hangs in Start.
func TestFireNeverBlocks(t *testing.T) {
	verifyNoLeaks(t)
	l := &fakeLauncher{gate: make(chan struct{})}
	var out outcomes
	r := hook.New(hook.Config{Launcher: l, Outcome: out.add})
	stop := startRunner(t, r)
	for _, p := range []string{"a", "b", "c"} {
		r.Set(p, &hook.Spec{Argv: []string{"/bin/n"}})
	}
	fired := make(chan struct{})
	go func() {
		defer close(fired)
		for i := range 100 {
			r.Fire(hook.Exit{Program: []string{"a", "b", "c"}[i%3], Reason: "oom_kill", Generation: uint64(i)})
		}
		r.Set("a", nil)
		r.SetAll(map[string]*hook.Spec{"b": {Argv: []string{"/bin/n"}}})
	}()
	select {
	case <-fired:
	case <-time.After(waitTimeout):
		t.Fatal("Fire blocked on a hanging Launcher")
	}
	// 3 run (hanging), 3 wait; a's and c's waiting ones were dropped by
	// the removals, the rest replaced.
	if n := out.count("a", hook.ResultSkipped) + out.count("b", hook.ResultSkipped) + out.count("c", hook.ResultSkipped); n != 97-1 {
		t.Errorf("%d skipped, want 96: %v", n, out.get())
	}
	close(l.gate)
	testenv.Eventually(t, "b's waiting exit", func() bool { return out.count("b", hook.ResultStartFailure) == 2 })
	stop()
	if n := len(out.get()); n != 100 {
		t.Errorf("%d outcomes for 100 exits: %v", n, out.get())
	}
	// Fire after Run returned is ignored.
	r.Fire(hook.Exit{Program: "b", Reason: "oom_kill"})
	if n := len(l.started()); n != 4 {
		t.Errorf("%d starts, want 4", n)
	}
}

// TestStartFailure checks that a hook that cannot start is reported as
// start_failure by the real launcher, with the cause.
func TestStartFailure(t *testing.T) {
	verifyNoLeaks(t)
	var out outcomes
	r := hook.New(hook.Config{Launcher: restart.NewLauncher(restart.LauncherConfig{}), Outcome: out.add})
	startRunner(t, r)
	r.Set("api", &hook.Spec{Argv: []string{"/nonexistent/notify"}})
	r.Fire(hook.Exit{Program: "api", Reason: "signal"})
	testenv.Eventually(t, "start_failure", func() bool { return out.count("api", hook.ResultStartFailure) == 1 })
	_, err := restart.NewLauncher(restart.LauncherConfig{}).Start(restart.Command{Argv: []string{"/nonexistent/notify"}})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the launcher's own error: %v", err)
	}
}

// BenchmarkFire measures Fire on the supervisor's path: the exit of a
// program without a hook, of one whose hook does not want the reason, and
// of one whose hook is running (the exit waits, replacing another).
func BenchmarkFire(b *testing.B) {
	l := &fakeLauncher{gate: make(chan struct{})}
	r := hook.New(hook.Config{Launcher: l})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	r.Set("api", &hook.Spec{Argv: []string{"/bin/n"}})
	r.Fire(hook.Exit{Program: "api", Reason: "signal"}) // runs, held at the gate
	for _, bc := range []struct{ name, program, reason string }{
		{"no hook", "other", "signal"},
		{"reason not wanted", "api", "exit_success"},
		{"coalesced", "api", "signal"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := hook.Exit{Program: bc.program, Reason: bc.reason, Record: make([]byte, 512)}
			b.ReportAllocs()
			for b.Loop() {
				r.Fire(e)
			}
		})
	}
	close(l.gate)
	cancel()
	<-done
}
