package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseHooks(t *testing.T) {
	const in = `hooks:
  on_exit:
    command: [notify, --channel, ops]
    reasons: [oom_kill, signal]
programs:
  - name: inherits
    command: [/bin/a]
    user: www-data
    group: web
  - name: own
    command: [/bin/b]
    user: www-data
    on_exit:
      command: ["/usr/local/bin/page", "--team", "b"]
      timeout: 1m
      user: alerts
  - name: off
    command: [/bin/c]
    on_exit: {command: []}
  - name: group-only
    command: [/bin/d]
    user: www-data
    group: web
    on_exit: {command: [/bin/notify], group: adm, reasons: [exit_success, memory_recycle, unknown]}
  - name: null-is-left-out
    command: [/bin/e]
    on_exit: ~
`
	c, err := Parse("demo.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Hooks.OnExit; got == nil || !slices.Equal(got.Command, []string{"notify", "--channel", "ops"}) || got.Timeout != DefaultHookTimeout {
		t.Fatalf("hooks.on_exit = %+v", got)
	}
	want := []*Hook{
		{Command: []string{"notify", "--channel", "ops"}, Reasons: []string{"oom_kill", "signal"}, Timeout: DefaultHookTimeout, User: "www-data", Group: "web"},
		{Command: []string{"/usr/local/bin/page", "--team", "b"}, Reasons: DefaultHookReasons, Timeout: time.Minute, User: "alerts"},
		nil,
		{Command: []string{"/bin/notify"}, Reasons: []string{"exit_success", "memory_recycle", "unknown"}, Timeout: DefaultHookTimeout, User: "www-data", Group: "adm"},
		{Command: []string{"notify", "--channel", "ops"}, Reasons: []string{"oom_kill", "signal"}, Timeout: DefaultHookTimeout},
	}
	for i, p := range c.Programs {
		if got := p.OnExitHook(c.Hooks); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("%s: OnExitHook = %+v, want %+v", p.Name, got, want[i])
		}
	}
	if c.Programs[4].OnExit != nil {
		t.Errorf("a null on_exit is not left out: %+v", c.Programs[4].OnExit)
	}

	// The result is a copy: changing it changes nothing in the Config.
	h := c.Programs[0].OnExitHook(c.Hooks)
	h.Command[0], h.Reasons[0] = "x", "x"
	if c.Hooks.OnExit.Command[0] != "notify" || c.Hooks.OnExit.Reasons[0] != "oom_kill" {
		t.Error("OnExitHook shares slices with the Config")
	}
	d := c.Programs[1].OnExitHook(c.Hooks)
	d.Reasons[0] = "x"
	if DefaultHookReasons[0] != "oom_kill" {
		t.Error("OnExitHook shares DefaultHookReasons")
	}

	// Without a hooks section, a program without on_exit has no hook.
	c, err = Parse("demo.yaml", []byte("programs: [{name: a, command: [/bin/a]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Programs[0].OnExitHook(c.Hooks); h != nil || c.Hooks.OnExit != nil {
		t.Errorf("OnExitHook = %+v, hooks %+v; want none", h, c.Hooks)
	}
}

// TestHookReasons checks the reason names against each other; the names
// themselves are the exit reasons respawnd reports (checked against the
// supervisor in package hook).
func TestHookReasons(t *testing.T) {
	for _, r := range DefaultHookReasons {
		if !slices.Contains(ExitReasons, r) {
			t.Errorf("default reason %q is no exit reason", r)
		}
	}
	for _, r := range ExitReasons {
		want := r != "exit_success" && r != "memory_recycle"
		if slices.Contains(DefaultHookReasons, r) != want {
			t.Errorf("reason %q in the defaults: %v, want %v", r, !want, want)
		}
	}
	// Every reason is accepted, all at once and each alone.
	in := "hooks: {on_exit: {command: [/bin/n], reasons: [" + strings.Join(ExitReasons, ", ") + "]}}\n"
	if _, err := Parse("demo.yaml", []byte(in)); err != nil {
		t.Error(err)
	}
	for _, r := range ExitReasons {
		if _, err := Parse("demo.yaml", []byte("hooks: {on_exit: {command: [/bin/n], reasons: ["+r+"]}}\n")); err != nil {
			t.Error(err)
		}
	}
}

func TestParseHookErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"default without command", "hooks:\n  on_exit:\n    timeout: 5s\n",
			[]string{"demo.yaml:2: hooks.on_exit.command: is required"}},
		{"default with empty command", "hooks:\n  on_exit:\n    command: []\n",
			[]string{"demo.yaml:3: hooks.on_exit.command: must not be empty"}},
		{"default null command", "hooks:\n  on_exit: {command: ~}\n",
			[]string{"demo.yaml:2: hooks.on_exit.command: is required"}},
		{"unknown hooks key", "hooks:\n  on_exti: {command: [/bin/n]}\n",
			[]string{`demo.yaml:2: hooks.on_exti: unknown key, did you mean "on_exit"?`}},
		{"hooks not a mapping", "hooks: [1]\n",
			[]string{"demo.yaml:1: hooks: must be a mapping, not a list"}},
		{"unknown hook key", "hooks:\n  on_exit:\n    command: [/bin/n]\n    reason: [signal]\n",
			[]string{`demo.yaml:4: hooks.on_exit.reason: unknown key, did you mean "reasons"?`}},
		{"command a string", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: /bin/notify --x\n",
			[]string{`demo.yaml:5: programs[0].on_exit.command: must be a list of arguments such as ["/usr/bin/api", "--port", "8080"], not the string "/bin/notify --x"`}},
		{"empty on_exit", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit: {}\n",
			[]string{"demo.yaml:4: programs[0].on_exit.command: is required"}},
		{"empty argv0", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: ['', x]\n",
			[]string{"demo.yaml:5: programs[0].on_exit.command[0]: must not be empty"}},
		{"relative command", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command:\n        - bin/notify\n",
			[]string{`demo.yaml:6: programs[0].on_exit.command[0]: must be an absolute path or a name looked up in PATH, not the relative path "bin/notify"`}},
		{"null argument", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n, ~]\n",
			[]string{"demo.yaml:5: programs[0].on_exit.command[1]: must be a string, not null"}},
		{"NUL in argument", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n, \"a\\0b\"]\n",
			[]string{"demo.yaml:5: programs[0].on_exit.command[1]: must not contain a NUL byte"}},
		{"unknown reason", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n]\n      reasons:\n        - oom\n",
			[]string{`demo.yaml:7: programs[0].on_exit.reasons[0]: invalid reason "oom" (want oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown)`}},
		{"duplicate reason", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n]\n      reasons: [signal,\n        signal]\n",
			[]string{`demo.yaml:7: programs[0].on_exit.reasons[1]: duplicate reason "signal", first at reasons[0]`}},
		{"empty reasons", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n]\n      reasons: []\n",
			[]string{"demo.yaml:6: programs[0].on_exit.reasons: must not be empty (leave it out for every reason but exit_success and memory_recycle)"}},
		{"too many reasons", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n]\n      reasons: [signal, signal, signal, signal, signal, signal, signal, signal, signal, signal]\n",
			[]string{"demo.yaml:6: programs[0].on_exit.reasons: must have at most 9 reasons, not 10"}},
		{"reasons a string", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n]\n      reasons: signal\n",
			[]string{`demo.yaml:6: programs[0].on_exit.reasons: must be a list of exit reasons such as [oom_kill, signal], not the string "signal"`}},
		{"timeout too short", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: [/bin/n]\n      timeout: 999ms\n",
			[]string{"demo.yaml:6: programs[0].on_exit.timeout: must be at least 1s, not 999ms"}},
		{"timeout too long", "hooks:\n  on_exit:\n    command: [/bin/n]\n    timeout: 61m\n",
			[]string{"demo.yaml:4: hooks.on_exit.timeout: must be at most 1h0m0s, not 1h1m0s"}},
		{"timeout not a duration", "hooks:\n  on_exit:\n    command: [/bin/n]\n    timeout: soon\n",
			[]string{`demo.yaml:4: hooks.on_exit.timeout: invalid duration "soon" (want Go syntax such as 100ms, 30s or 1m30s)`}},
		{"user too long", "hooks:\n  on_exit:\n    command: [/bin/n]\n    user: " + strings.Repeat("u", MaxUserLen+1) + "\n",
			[]string{"demo.yaml:4: hooks.on_exit.user: must be at most 255 bytes (LOGIN_NAME_MAX is 256 with the NUL), not 256"}},
		{"group with NUL", "hooks:\n  on_exit:\n    command: [/bin/n]\n    group: \"a\\0\"\n",
			[]string{"demo.yaml:4: hooks.on_exit.group: must not contain a NUL byte"}},
		{"off with other keys", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit:\n      command: []\n      reasons: [signal]\n      timeout: 5s\n      user: root\n      group: adm\n",
			[]string{
				"demo.yaml:6: programs[0].on_exit.reasons: has no effect: the empty command turns the hook off",
				"demo.yaml:7: programs[0].on_exit.timeout: has no effect: the empty command turns the hook off",
				"demo.yaml:8: programs[0].on_exit.user: has no effect: the empty command turns the hook off",
				"demo.yaml:9: programs[0].on_exit.group: has no effect: the empty command turns the hook off",
			}},
		{"on_exit not a mapping", "programs:\n  - name: a\n    command: [/bin/a]\n    on_exit: [/bin/n]\n",
			[]string{"demo.yaml:4: programs[0].on_exit: must be a mapping, not a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("demo.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestValidateHookInCode(t *testing.T) {
	c := &Config{Limits: DefaultLimits(), Hooks: Hooks{OnExit: &Hook{Command: []string{"notify"}, Timeout: DefaultHookTimeout}}}
	p := codeProgram("a")
	p.OnExit = &Hook{} // off
	c.Programs = []Program{p}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if h := c.Programs[0].OnExitHook(c.Hooks); h != nil {
		t.Errorf("a hook turned off is in force: %+v", h)
	}

	c.Hooks.OnExit = &Hook{Timeout: 0}
	c.Programs[0].OnExit = &Hook{Reasons: []string{"signal"}, User: "x"}
	q := codeProgram("b")
	q.OnExit = &Hook{Command: []string{"./notify"}, Reasons: []string{"kill"}, Timeout: 2 * time.Hour}
	c.Programs = append(c.Programs, q)
	want := []string{
		"hooks.on_exit.command: is required",
		"programs[0].on_exit.reasons: has no effect: the empty command turns the hook off",
		"programs[0].on_exit.user: has no effect: the empty command turns the hook off",
		`programs[1].on_exit.command[0]: must be an absolute path or a name looked up in PATH, not the relative path "./notify"`,
		`programs[1].on_exit.reasons[0]: invalid reason "kill" (want oom_kill, signal, exit_error, exit_success, start_failure, memory_recycle, health_check, watchdog, unknown)`,
		"programs[1].on_exit.timeout: must be at most 1h0m0s, not 2h0m0s",
	}
	if got := c.Validate(); got == nil || got.Error() != strings.Join(want, "\n") {
		t.Errorf("Validate() =\n%v\nwant\n%s", got, strings.Join(want, "\n"))
	}

	// Program.Validate, as respawnd exec uses it, checks on_exit too.
	q.OnExit.Command = []string{"/bin/notify"}
	q.OnExit.Reasons = nil
	q.OnExit.Timeout = 0
	if got, want := q.Validate(), "on_exit.timeout: must be at least 1s, not 0s"; got == nil || got.Error() != want {
		t.Errorf("Program.Validate() = %v, want %s", got, want)
	}
}
