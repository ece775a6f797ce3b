package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withProgram returns a file whose only program, api, starts on line 2 and
// whose extra keys start on line 4.
func withProgram(extra ...string) string {
	s := "programs:\n  - name: api\n    command: [/usr/bin/api]\n"
	for _, l := range extra {
		s += "    " + l + "\n"
	}
	return s
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("demo.yaml", []byte(withProgram()))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultProgram()
	want.Line = 2
	want.Name = "api"
	want.Command = []string{"/usr/bin/api"}
	if len(c.Programs) != 1 || !reflect.DeepEqual(c.Programs[0], want) {
		t.Errorf("program:\n got %+v\nwant %+v", c.Programs, want)
	}
	if c.Limits != DefaultLimits() {
		t.Errorf("limits = %+v, want %+v", c.Limits, DefaultLimits())
	}
	if c.File != "demo.yaml" {
		t.Errorf("File = %q", c.File)
	}

	// The documented values, spelled out once more.
	p := c.Programs[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"restart.policy", p.Restart.Policy, PolicyAlways},
		{"restart.backoff.initial", p.Restart.Backoff.Initial, 100 * time.Millisecond},
		{"restart.backoff.max", p.Restart.Backoff.Max, 30 * time.Second},
		{"restart.backoff.multiplier", p.Restart.Backoff.Multiplier, 2.0},
		{"restart.backoff.jitter", p.Restart.Backoff.Jitter, 0.2},
		{"restart.reset_after", p.Restart.ResetAfter, 60 * time.Second},
		{"restart.limit.burst", p.Restart.Limit.Burst, 5},
		{"restart.limit.interval", p.Restart.Limit.Interval, 60 * time.Second},
		{"restart.limit.action", p.Restart.Limit.Action, ActionBackoff},
		{"stop.signal", p.Stop.Signal, syscall.SIGTERM},
		{"stop.timeout", p.Stop.Timeout, 10 * time.Second},
		{"output.file", p.Output.File, ""},
		{"output.max_size", p.Output.MaxSize, int64(100 << 20)},
		{"output.max_files", p.Output.MaxFiles, 5},
		{"output.timestamps", p.Output.Timestamps, false},
		{"memory", p.Memory, (*Memory)(nil)},
		{"match", p.Match, (*Match)(nil)},
		{"on_missing", p.OnMissing, OnMissingStart},
		{"restart.oom_hold", p.Restart.OOMHold, (*bool)(nil)},
		{"restart.oom_hold_max", p.Restart.OOMHoldMax, (*time.Duration)(nil)},
		{"restart.oom_loop", p.Restart.OOMLoop, 3},
		{"limits.restarts_per_second", c.Limits.RestartsPerSecond, 50.0},
		{"limits.restart_burst", c.Limits.RestartBurst, 100},
		{"limits.oom_hold", c.Limits.OOMHold, true},
		{"limits.oom_hold_max", c.Limits.OOMHoldMax, 2 * time.Minute},
		{"OOMHold(limits)", p.OOMHold(c.Limits), true},
		{"OOMHoldMax(limits)", p.OOMHoldMax(c.Limits), 2 * time.Minute},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParsePartialSectionsKeepDefaults(t *testing.T) {
	c, err := Parse("demo.yaml", []byte(withProgram(
		"restart:",
		"  backoff: {max: 5s}",
		"  limit: {action: give-up}",
		"stop: {signal: int}",
	)+"limits: {restart_burst: 7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Programs[0]
	if p.Restart.Backoff.Max != 5*time.Second || p.Restart.Backoff.Initial != DefaultBackoffInitial || p.Restart.Backoff.Jitter != DefaultBackoffJitter {
		t.Errorf("backoff = %+v", p.Restart.Backoff)
	}
	if p.Restart.Limit.Action != ActionGiveUp || p.Restart.Limit.Burst != DefaultLimitBurst {
		t.Errorf("limit = %+v", p.Restart.Limit)
	}
	if p.Stop.Signal != syscall.SIGINT || p.Stop.Timeout != DefaultStopTimeout {
		t.Errorf("stop = %+v", p.Stop)
	}
	if c.Limits.RestartBurst != 7 || c.Limits.RestartsPerSecond != DefaultRestartsPerSecond {
		t.Errorf("limits = %+v", c.Limits)
	}
}

func TestParseEveryKey(t *testing.T) {
	const in = `limits: {restarts_per_second: 2.5, restart_burst: 10, oom_hold: false, oom_hold_max: 5m}
programs:
  - name: api
    command: ["/usr/bin/api", "--port", 8080, ""]
    dir: /srv/api
    env: {GOMAXPROCS: 2, DEBUG: true, EMPTY: ~, QUOTED: "x=y"}
    user: www-data
    group: "33"
    restart:
      policy: on-failure
      backoff: {initial: 250ms, max: 1m30s, multiplier: 1.5, jitter: 0}
      reset_after: 2m
      limit: {burst: 3, interval: 10s, action: give-up}
      oom_hold: true
      oom_hold_max: 1m
      oom_loop: 0
    stop: {signal: 1, timeout: 1s}
    output: {file: /var/log/api.log, max_size: 1GiB, max_files: 10, timestamps: true}
    memory:
      max: 256MiB
      high: 200Mi
      swap_max: 0
      recycle: {above: 90%, for: 1m, measure: anon}
      warn_above: 200MiB
  - name: worker.v2_x-y
    command: [worker]
    memory: {max: 1G, high: 512M}
    stop: {signal: sigquit}
  - name: legacy
    command: [/usr/bin/worker, --queue=jobs]
    match:
      comm: worker
      exe: /usr/bin/worker
      cmdline: 'worker .*--queue=jobs'
      pidfile: /run/worker.pid
      user: 33
    on_missing: wait
`
	c, err := Parse("demo.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	i64 := func(n int64) *int64 { return &n }
	yes, minute := true, time.Minute
	want := &Config{
		File:   "demo.yaml",
		Limits: Limits{RestartsPerSecond: 2.5, RestartBurst: 10, OOMHold: false, OOMHoldMax: 5 * time.Minute},
		Programs: []Program{{
			Line:    3,
			Name:    "api",
			Command: []string{"/usr/bin/api", "--port", "8080", ""},
			Dir:     "/srv/api",
			Env:     map[string]string{"GOMAXPROCS": "2", "DEBUG": "true", "EMPTY": "", "QUOTED": "x=y"},
			User:    "www-data",
			Group:   "33",
			Restart: Restart{
				Policy:     PolicyOnFailure,
				Backoff:    Backoff{Initial: 250 * time.Millisecond, Max: 90 * time.Second, Multiplier: 1.5, Jitter: 0},
				ResetAfter: 2 * time.Minute,
				Limit:      Limit{Burst: 3, Interval: 10 * time.Second, Action: ActionGiveUp},
				OOMHold:    &yes,
				OOMHoldMax: &minute,
				OOMLoop:    0,
			},
			Stop:   Stop{Signal: syscall.SIGHUP, Timeout: time.Second},
			Output: Output{File: "/var/log/api.log", MaxSize: 1 << 30, MaxFiles: 10, Timestamps: true},
			Memory: &Memory{
				Max: i64(256 << 20), High: i64(200 << 20), SwapMax: i64(0),
				Recycle:   &Recycle{Above: Threshold{Percent: 90}, For: time.Minute, Measure: MeasureAnon},
				WarnAbove: &Threshold{Bytes: 200 << 20},
			},
			OnMissing: OnMissingStart,
		}},
	}
	w := DefaultProgram()
	w.Line, w.Name, w.Command = 25, "worker.v2_x-y", []string{"worker"}
	w.Memory = &Memory{Max: i64(1e9), High: i64(512e6)}
	w.Stop.Signal = syscall.SIGQUIT
	l := DefaultProgram()
	l.Line, l.Name, l.Command = 29, "legacy", []string{"/usr/bin/worker", "--queue=jobs"}
	l.Match = &Match{Comm: "worker", Exe: "/usr/bin/worker", Cmdline: "worker .*--queue=jobs", Pidfile: "/run/worker.pid", User: "33"}
	l.OnMissing = OnMissingWait
	want.Programs = append(want.Programs, w, l)
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%#v\nwant\n%#v", c, want)
	}
	if got := c.Summary(); got != "demo.yaml: 3 programs (api, worker.v2_x-y, legacy) OK" {
		t.Errorf("Summary() = %q", got)
	}
}

// TestParseWatchdog checks the defaults inside memory.recycle, the
// resolution of thresholds, and how restart.oom_hold and
// restart.oom_hold_max inherit from limits.
func TestParseWatchdog(t *testing.T) {
	const in = `limits:
  oom_hold: false
  oom_hold_max: 30s
programs:
  - name: inherits
    command: [/bin/a]
    memory:
      max: 512MiB
      recycle: {above: 90%}
      warn_above: 80%
  - name: overrides
    command: [/bin/b]
    restart: {oom_hold: true, oom_hold_max: 0s, oom_loop: 0}
    memory:
      recycle: {above: 460MiB, for: 0s, measure: rss}
  - name: spelled-out
    command: [/bin/c]
    restart: {oom_hold: false, oom_hold_max: 30s, oom_loop: 3}
    memory:
      recycle: {above: 1GiB, for: ~, measure: ~}
  - name: warn-only
    command: [/bin/d]
    memory: {warn_above: 1GiB, recycle: ~, max: ~}
`
	_, err := Parse("demo.yaml", []byte(in))
	// A null recycle is not left out: it asks for the watchdog and lacks
	// its threshold.
	wantErr := "demo.yaml:23: programs[3].memory.recycle.above: is required (a size such as 460MiB, or a percentage of memory.max such as 90%)"
	if err == nil || err.Error() != wantErr {
		t.Fatalf("Parse() = %v, want %s", err, wantErr)
	}
	c, err := Parse("demo.yaml", []byte(strings.Replace(in, "recycle: ~, ", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.OOMHold || c.Limits.OOMHoldMax != 30*time.Second {
		t.Errorf("limits = %+v", c.Limits)
	}

	type want struct {
		recycle            *Recycle
		warn               *Threshold
		above, warnBytes   int64 // 0: none
		oomHold            bool
		oomHoldMax         time.Duration
		oomLoop            int
		oomHoldSet, maxSet bool
	}
	wants := []want{
		{
			recycle: &Recycle{Above: Threshold{Percent: 90}, For: DefaultRecycleFor, Measure: DefaultMeasure},
			warn:    &Threshold{Percent: 80},
			// 90% of 512MiB is 483183820.8 bytes, rounded down.
			above: 483183820, warnBytes: 429496729,
			oomHold: false, oomHoldMax: 30 * time.Second, oomLoop: 3,
		},
		{
			recycle: &Recycle{Above: Threshold{Bytes: 460 << 20}, For: 0, Measure: MeasureRSS},
			above:   460 << 20,
			oomHold: true, oomHoldMax: 0, oomLoop: 0, oomHoldSet: true,
		},
		{
			recycle: &Recycle{Above: Threshold{Bytes: 1 << 30}, For: 30 * time.Second, Measure: MeasureWorkingSet},
			above:   1 << 30,
			oomHold: false, oomHoldMax: 30 * time.Second, oomLoop: 3, oomHoldSet: true,
		},
		{
			warn:      &Threshold{Bytes: 1 << 30},
			warnBytes: 1 << 30,
			oomHold:   false, oomHoldMax: 30 * time.Second, oomLoop: 3,
		},
	}
	for i, w := range wants {
		p := c.Programs[i]
		if p.Memory == nil {
			t.Fatalf("%s: no memory section", p.Name)
		}
		if !reflect.DeepEqual(p.Memory.Recycle, w.recycle) {
			t.Errorf("%s: recycle = %+v, want %+v", p.Name, p.Memory.Recycle, w.recycle)
		}
		if !reflect.DeepEqual(p.Memory.WarnAbove, w.warn) {
			t.Errorf("%s: warn_above = %+v, want %+v", p.Name, p.Memory.WarnAbove, w.warn)
		}
		if got, ok := p.RecycleAbove(); got != w.above || ok != (w.above != 0) {
			t.Errorf("%s: RecycleAbove() = %d, %v; want %d", p.Name, got, ok, w.above)
		}
		if got, ok := p.WarnAbove(); got != w.warnBytes || ok != (w.warnBytes != 0) {
			t.Errorf("%s: WarnAbove() = %d, %v; want %d", p.Name, got, ok, w.warnBytes)
		}
		if got := p.OOMHold(c.Limits); got != w.oomHold {
			t.Errorf("%s: OOMHold() = %v, want %v", p.Name, got, w.oomHold)
		}
		if got := p.OOMHoldMax(c.Limits); got != w.oomHoldMax {
			t.Errorf("%s: OOMHoldMax() = %v, want %v", p.Name, got, w.oomHoldMax)
		}
		if p.Restart.OOMLoop != w.oomLoop {
			t.Errorf("%s: oom_loop = %d, want %d", p.Name, p.Restart.OOMLoop, w.oomLoop)
		}
		if (p.Restart.OOMHold != nil) != w.oomHoldSet {
			t.Errorf("%s: restart.oom_hold set = %v, want %v", p.Name, p.Restart.OOMHold != nil, w.oomHoldSet)
		}
	}

	// The same programs under the default limits: unset settings follow
	// them, set ones do not.
	for i, w := range []struct {
		hold bool
		max  time.Duration
	}{{true, 2 * time.Minute}, {true, 0}, {false, 30 * time.Second}, {true, 2 * time.Minute}} {
		p := c.Programs[i]
		if got := p.OOMHold(DefaultLimits()); got != w.hold {
			t.Errorf("%s: OOMHold(defaults) = %v, want %v", p.Name, got, w.hold)
		}
		if got := p.OOMHoldMax(DefaultLimits()); got != w.max {
			t.Errorf("%s: OOMHoldMax(defaults) = %v, want %v", p.Name, got, w.max)
		}
	}

	// A program without a memory section is not watched.
	p := codeProgram("api")
	if _, ok := p.RecycleAbove(); ok {
		t.Error("RecycleAbove() without memory is ok")
	}
	if _, ok := p.WarnAbove(); ok {
		t.Error("WarnAbove() without memory is ok")
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{
		"",
		"\n\n",
		"# only a comment\n",
		"---\n",
		"~\n",
		"{}\n",
		"programs:\n",
		"programs: []\n",
		"limits: {restart_burst: 3}\n",
	} {
		c, err := Parse("empty.yaml", []byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if len(c.Programs) != 0 {
			t.Errorf("Parse(%q): %d programs", in, len(c.Programs))
		}
		if got := c.Summary(); got != "empty.yaml: 0 programs OK" {
			t.Errorf("Summary() = %q", got)
		}
	}
}

func TestParseAliases(t *testing.T) {
	const in = `programs:
  - name: a
    command: [/bin/a]
    restart: &fast
      backoff: {initial: 10ms, max: 1s}
  - name: b
    command: [/bin/b]
    restart: *fast
`
	c, err := Parse("demo.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Programs[1].Restart != c.Programs[0].Restart || c.Programs[1].Restart.Backoff.Max != time.Second {
		t.Errorf("restart of b = %+v", c.Programs[1].Restart)
	}
}

// parseErrorTests hold one file for every class of error, with the exact
// text expected. FuzzParse uses them as seeds.
var parseErrorTests = []struct {
	name string
	in   string
	want []string
}{
	// YAML itself.
	{"syntax", "programs: [", []string{
		"demo.yaml:1: yaml: did not find expected node content"}},
	{"two documents", "programs: []\n---\nprograms: []\n", []string{
		"demo.yaml:2: config: must be a single YAML document"}},
	{"root not a mapping", "- name: api\n", []string{
		"demo.yaml:1: config: must be a mapping with limits and programs, not a list"}},
	{"merge key", withProgram("<<: {dir: /}"), []string{
		"demo.yaml:4: programs[0]: merge keys (<<) are not supported"}},
	{"key not a string", withProgram("[a]: 1"), []string{
		"demo.yaml:4: programs[0]: keys must be strings, not a list"}},

	// Unknown and duplicate keys.
	{"unknown top-level key", "program: []\n", []string{
		`demo.yaml:1: program: unknown key, did you mean "programs"?`}},
	{"unknown key far from any", "limits: {zzzzzzzzzz: 1}\n", []string{
		"demo.yaml:1: limits.zzzzzzzzzz: unknown key (known keys: restarts_per_second, restart_burst, oom_hold, oom_hold_max)"}},
	{"unknown program key", withProgram("Dir: /srv"), []string{
		`demo.yaml:4: programs[0].Dir: unknown key, did you mean "dir"?`}},
	{"unknown nested key", withProgram("restart: {backoff: {inital: 1s}}"), []string{
		`demo.yaml:4: programs[0].restart.backoff.inital: unknown key, did you mean "initial"?`}},
	{"odd key quoted", withProgram(`"a b": 1`), []string{
		`demo.yaml:4: programs[0]["a b"]: unknown key (known keys: name, command, dir, env, user, group, restart, stop, output, memory, match, on_missing, on_exit, health, notify)`}},
	{"unknown match key", withProgram("match: {comm: worker, cmd_line: x}"), []string{
		`demo.yaml:4: programs[0].match.cmd_line: unknown key, did you mean "cmdline"?`}},
	{"unknown match key far from any", withProgram("match:", "  comm: worker", "  parent_process: init"), []string{
		"demo.yaml:6: programs[0].match.parent_process: unknown key (known keys: comm, exe, cmdline, pidfile, user)"}},
	{"misspelt on_missing", withProgram("match: {comm: worker}", "on_mising: wait"), []string{
		`demo.yaml:5: programs[0].on_mising: unknown key, did you mean "on_missing"?`}},
	{"duplicate key", withProgram("dir: /a", "dir: /b"), []string{
		"demo.yaml:5: programs[0].dir: duplicate key, first on line 4"}},
	{"duplicate top-level key", "programs: []\nprograms: []\n", []string{
		"demo.yaml:2: programs: duplicate key, first on line 1"}},
	{"duplicate env key", withProgram("env: {A: 1, A: 2}"), []string{
		"demo.yaml:4: programs[0].env.A: duplicate key, first on line 4"}},

	// Wrong types.
	{"programs not a list", "programs: {name: api}\n", []string{
		"demo.yaml:1: programs: must be a list of programs, not a mapping"}},
	{"program not a mapping", "programs:\n  - api\n", []string{
		`demo.yaml:2: programs[0]: must be a mapping, not the string "api"`}},
	{"null program", "programs:\n  - ~\n", []string{
		"demo.yaml:2: programs[0]: must be a mapping, not null"}},
	{"command a string", "programs:\n  - name: api\n    command: /usr/bin/api --port 8080\n", []string{
		`demo.yaml:3: programs[0].command: must be a list of arguments such as ["/usr/bin/api", "--port", "8080"], not the string "/usr/bin/api --port 8080"`}},
	{"command element a list", "programs:\n  - name: api\n    command: [/bin/a, [b]]\n", []string{
		"demo.yaml:3: programs[0].command[1]: must be a string, not a list"}},
	{"command element null", "programs:\n  - name: api\n    command: [/bin/a, ~]\n", []string{
		"demo.yaml:3: programs[0].command[1]: must be a string, not null"}},
	{"name a list", "programs:\n  - name: [api]\n    command: [/bin/a]\n", []string{
		"demo.yaml:2: programs[0].name: must be a string, not a list"}},
	{"env a list", withProgram("env: [A=1]"), []string{
		"demo.yaml:4: programs[0].env: must be a mapping, not a list"}},
	{"env value a mapping", withProgram("env: {A: {b: 1}}"), []string{
		"demo.yaml:4: programs[0].env.A: must be a string, not a mapping"}},
	{"restart a string", withProgram("restart: always"), []string{
		`demo.yaml:4: programs[0].restart: must be a mapping, not the string "always"`}},
	{"multiplier a string", withProgram("restart: {backoff: {multiplier: two}}"), []string{
		`demo.yaml:4: programs[0].restart.backoff.multiplier: must be a number, not the string "two"`}},
	{"quoted number", "limits: {restart_burst: \"5\"}\n", []string{
		`demo.yaml:1: limits.restart_burst: must be an integer, not the string "5"`}},
	{"burst a float", withProgram("restart: {limit: {burst: 2.5}}"), []string{
		"demo.yaml:4: programs[0].restart.limit.burst: must be an integer, not a number"}},
	{"burst a boolean", withProgram("restart: {limit: {burst: true}}"), []string{
		"demo.yaml:4: programs[0].restart.limit.burst: must be an integer, not a boolean"}},
	{"binary string", withProgram("user: !!binary d3d3"), []string{
		"demo.yaml:4: programs[0].user: must be a string, not binary data"}},
	{"custom tag", withProgram("dir: !path /srv"), []string{
		`demo.yaml:4: programs[0].dir: must be a string, not a value tagged "!path"`}},
	{"timeout a list", withProgram("stop: {timeout: [1s]}"), []string{
		"demo.yaml:4: programs[0].stop.timeout: must be a duration such as 30s, not a list"}},
	{"memory a number", withProgram("memory: 256"), []string{
		"demo.yaml:4: programs[0].memory: must be a mapping, not an integer"}},

	// Required fields and names.
	{"missing name", "programs:\n  - command: [/bin/a]\n", []string{
		"demo.yaml:2: programs[0].name: is required"}},
	{"empty name", "programs:\n  - name: \"\"\n    command: [/bin/a]\n", []string{
		"demo.yaml:2: programs[0].name: must not be empty"}},
	{"missing command", "programs:\n  - name: api\n", []string{
		"demo.yaml:2: programs[0].command: is required"}},
	{"empty command", "programs:\n  - name: api\n    command: []\n", []string{
		"demo.yaml:3: programs[0].command: must not be empty"}},
	{"empty argv0", "programs:\n  - name: api\n    command: [\"\", x]\n", []string{
		"demo.yaml:3: programs[0].command[0]: must not be empty"}},
	{"argv0 on its own line", "programs:\n  - name: api\n    command:\n      - \"\"\n", []string{
		"demo.yaml:4: programs[0].command[0]: must not be empty"}},
	{"NUL in argument", "programs:\n  - name: api\n    command: [/bin/a, \"x\\0y\"]\n", []string{
		"demo.yaml:3: programs[0].command[1]: must not contain a NUL byte"}},
	{"upper-case name", "programs:\n  - name: API\n    command: [/bin/a]\n", []string{
		`demo.yaml:2: programs[0].name: invalid name "API": must match [a-z0-9_.-]+`}},
	{"name with slash", "programs:\n  - name: a/b\n    command: [/bin/a]\n", []string{
		`demo.yaml:2: programs[0].name: invalid name "a/b": must match [a-z0-9_.-]+`}},
	{"name dot", "programs:\n  - name: .\n    command: [/bin/a]\n", []string{
		`demo.yaml:2: programs[0].name: must not be "."`}},
	{"name dot dot", "programs:\n  - name: ..\n    command: [/bin/a]\n", []string{
		`demo.yaml:2: programs[0].name: must not be ".."`}},
	{"duplicate name", withProgram() + "  - name: api\n    command: [/bin/b]\n", []string{
		`demo.yaml:4: programs[1].name: duplicate name "api", first used by programs[0] on line 2`}},

	// Paths, environment, user.
	{"relative dir", withProgram("dir: srv/api"), []string{
		`demo.yaml:4: programs[0].dir: must be an absolute path, not "srv/api"`}},
	{"relative output file", withProgram("output: {file: api.log}"), []string{
		`demo.yaml:4: programs[0].output.file: must be an absolute path, not "api.log"`}},
	{"empty env key", withProgram(`env: {"": x}`), []string{
		`demo.yaml:4: programs[0].env[""]: variable name must not be empty`}},
	{"env key with =", withProgram(`env: {"A=B": x}`), []string{
		`demo.yaml:4: programs[0].env["A=B"]: variable name must not contain '='`}},
	{"NUL in env value", withProgram(`env: {A: "\0"}`), []string{
		`demo.yaml:4: programs[0].env.A: value must not contain a NUL byte`}},
	{"NUL in user", withProgram(`user: "a\0"`), []string{
		`demo.yaml:4: programs[0].user: must not contain a NUL byte`}},

	// Durations.
	{"duration without unit", withProgram("restart: {reset_after: 30}"), []string{
		`demo.yaml:4: programs[0].restart.reset_after: invalid duration "30" (want Go syntax such as 100ms, 30s or 1m30s)`}},
	{"duration bad unit", withProgram("stop: {timeout: 10 seconds}"), []string{
		`demo.yaml:4: programs[0].stop.timeout: invalid duration "10 seconds" (want Go syntax such as 100ms, 30s or 1m30s)`}},
	{"zero timeout", withProgram("stop: {timeout: 0s}"), []string{
		"demo.yaml:4: programs[0].stop.timeout: must be positive, not 0s"}},
	{"zero as duration", withProgram("restart: {reset_after: 0}"), []string{
		"demo.yaml:4: programs[0].restart.reset_after: must be positive, not 0s"}},
	{"negative initial", withProgram("restart: {backoff: {initial: -1s}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.initial: must be positive, not -1s"}},
	{"zero max", withProgram("restart: {backoff: {max: 0s}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.max: must be positive, not 0s"}},
	{"zero interval", withProgram("restart: {limit: {interval: 0s}}"), []string{
		"demo.yaml:4: programs[0].restart.limit.interval: must be positive, not 0s"}},

	// Impossible limits.
	{"initial above max", withProgram("restart:", "  backoff:", "    initial: 1m", "    max: 10s"), []string{
		"demo.yaml:7: programs[0].restart.backoff.max: must not be less than backoff.initial (1m0s)"}},
	{"initial above default max", withProgram("restart:", "  backoff:", "    initial: 1m"), []string{
		"demo.yaml:6: programs[0].restart.backoff.initial: must not exceed backoff.max (30s)"}},
	{"max below default initial", withProgram("restart: {backoff: {max: 10ms}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.max: must not be less than backoff.initial (100ms)"}},
	{"bad initial hides comparison", withProgram("restart: {backoff: {initial: soon, max: 10ms}}"), []string{
		`demo.yaml:4: programs[0].restart.backoff.initial: invalid duration "soon" (want Go syntax such as 100ms, 30s or 1m30s)`}},
	{"multiplier below 1", withProgram("restart: {backoff: {multiplier: 0.5}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.multiplier: must be at least 1, not 0.5"}},
	{"multiplier infinite", withProgram("restart: {backoff: {multiplier: .inf}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.multiplier: must be a finite number"}},
	{"jitter above 1", withProgram("restart: {backoff: {jitter: 1.5}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.jitter: must be between 0 and 1, not 1.5"}},
	{"jitter negative", withProgram("restart: {backoff: {jitter: -0.1}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.jitter: must be between 0 and 1, not -0.1"}},
	{"jitter NaN", withProgram("restart: {backoff: {jitter: .nan}}"), []string{
		"demo.yaml:4: programs[0].restart.backoff.jitter: must be between 0 and 1, not NaN"}},
	{"burst zero", withProgram("restart: {limit: {burst: 0}}"), []string{
		"demo.yaml:4: programs[0].restart.limit.burst: must be at least 1, not 0"}},
	{"restarts per second zero", "limits: {restarts_per_second: 0}\n", []string{
		"demo.yaml:1: limits.restarts_per_second: must be a positive number, not 0"}},
	{"restarts per second negative", "limits:\n  restarts_per_second: -1\n", []string{
		"demo.yaml:2: limits.restarts_per_second: must be a positive number, not -1"}},
	{"restart burst zero", "limits:\n  restart_burst: 0\n", []string{
		"demo.yaml:2: limits.restart_burst: must be at least 1, not 0"}},
	{"restart burst too large", "limits: {restart_burst: 99999999999999999999}\n", []string{
		"demo.yaml:1: limits.restart_burst: must be an integer, not a number"}},

	// Sizes.
	{"bad size", withProgram("memory: {max: 12XB}"), []string{
		`demo.yaml:4: programs[0].memory.max: invalid size "12XB" (want bytes or a unit such as 256MiB, 1GiB, 512M or 1G)`}},
	{"milli is not a size", withProgram("memory: {max: 512m}"), []string{
		`demo.yaml:4: programs[0].memory.max: invalid size "512m" (want bytes or a unit such as 256MiB, 1GiB, 512M or 1G)`}},
	{"size a boolean", withProgram("memory: {max: true}"), []string{
		"demo.yaml:4: programs[0].memory.max: must be a size such as 256MiB, not a boolean"}},
	{"max below 1MiB", withProgram("memory: {max: 512KiB}"), []string{
		"demo.yaml:4: programs[0].memory.max: must be at least 1MiB, not 512KiB"}},
	{"high below 1MiB", withProgram("memory: {high: 1000}"), []string{
		"demo.yaml:4: programs[0].memory.high: must be at least 1MiB, not 1000B"}},
	{"negative max", withProgram("memory: {max: -1GiB}"), []string{
		"demo.yaml:4: programs[0].memory.max: must be at least 1MiB, not -1073741824B"}},
	{"high above max", withProgram("memory:", "  max: 256MiB", "  high: 300MiB"), []string{
		"demo.yaml:6: programs[0].memory.high: must not exceed memory.max (256MiB)"}},
	{"negative swap", withProgram("memory: {swap_max: -1}"), []string{
		"demo.yaml:4: programs[0].memory.swap_max: must not be negative"}},

	// Policies, actions, signals.
	{"bad policy", withProgram("restart: {policy: sometimes}"), []string{
		`demo.yaml:4: programs[0].restart.policy: invalid policy "sometimes" (want always, on-failure, on-oom or never)`}},
	{"empty policy", withProgram(`restart: {policy: ""}`), []string{
		`demo.yaml:4: programs[0].restart.policy: invalid policy "" (want always, on-failure, on-oom or never)`}},
	{"policy case matters", withProgram("restart: {policy: Always}"), []string{
		`demo.yaml:4: programs[0].restart.policy: invalid policy "Always" (want always, on-failure, on-oom or never)`}},
	{"bad action", withProgram("restart: {limit: {action: stop}}"), []string{
		`demo.yaml:4: programs[0].restart.limit.action: invalid action "stop" (want backoff or give-up)`}},
	{"unknown signal", withProgram("stop: {signal: SIGFOO}"), []string{
		`demo.yaml:4: programs[0].stop.signal: unknown signal "SIGFOO"`}},
	{"signal number too large", withProgram("stop: {signal: 65}"), []string{
		`demo.yaml:4: programs[0].stop.signal: unknown signal "65"`}},
	{"signal zero", withProgram("stop: {signal: 0}"), []string{
		`demo.yaml:4: programs[0].stop.signal: unknown signal "0"`}},
	{"signal a list", withProgram("stop: {signal: [TERM]}"), []string{
		"demo.yaml:4: programs[0].stop.signal: must be a signal name or number, not a list"}},

	// match and on_missing.
	{"empty match", withProgram("match: {}"), []string{
		"demo.yaml:4: programs[0].match: must set at least one of comm, exe, cmdline or pidfile"}},
	{"null match", withProgram("match:"), []string{
		"demo.yaml:4: programs[0].match: must set at least one of comm, exe, cmdline or pidfile"}},
	{"match with only null keys", withProgram("match: {comm: ~}"), []string{
		"demo.yaml:4: programs[0].match: must set at least one of comm, exe, cmdline or pidfile",
		"demo.yaml:4: programs[0].match.comm: must not be empty"}},
	{"match by user alone", withProgram("match: {user: www-data}"), []string{
		"demo.yaml:4: programs[0].match: must set at least one of comm, exe, cmdline or pidfile; user only narrows them down"}},
	{"match a string", withProgram("match: worker"), []string{
		`demo.yaml:4: programs[0].match: must be a mapping, not the string "worker"`}},
	{"match key a list", withProgram("match: {comm: [worker]}"), []string{
		"demo.yaml:4: programs[0].match.comm: must be a string, not a list"}},
	{"comm too long", withProgram("match:", "  comm: legacy-worker-process"), []string{
		"demo.yaml:5: programs[0].match.comm: must be at most 15 bytes, not 21: the kernel cuts process names to 15 bytes (TASK_COMM_LEN is 16), so it would never match"}},
	{"comm NUL", withProgram(`match: {comm: "a\0"}`), []string{
		"demo.yaml:4: programs[0].match.comm: must not contain a NUL byte"}},
	{"relative exe", withProgram("match: {exe: bin/worker}"), []string{
		`demo.yaml:4: programs[0].match.exe: must be an absolute path, not "bin/worker"`}},
	{"relative pidfile", withProgram("match:", "  comm: worker", "  pidfile: worker.pid"), []string{
		`demo.yaml:6: programs[0].match.pidfile: must be an absolute path, not "worker.pid"`}},
	{"empty exe", withProgram(`match: {comm: worker, exe: ""}`), []string{
		"demo.yaml:4: programs[0].match.exe: must not be empty"}},
	{"bad cmdline", withProgram("match:", "  cmdline: 'worker --queue=[jobs'"), []string{
		`demo.yaml:5: programs[0].match.cmdline: invalid regular expression: missing closing ]: "[jobs"`}},
	{"bad cmdline repeat", withProgram("match: {cmdline: '*worker'}"), []string{
		`demo.yaml:4: programs[0].match.cmdline: invalid regular expression: missing argument to repetition operator: "*"`}},
	{"empty user", withProgram("match:", "  comm: worker", `  user: ""`), []string{
		"demo.yaml:6: programs[0].match.user: must not be empty"}},
	{"bad on_missing", withProgram("match: {comm: worker}", "on_missing: restart"), []string{
		`demo.yaml:5: programs[0].on_missing: invalid on_missing "restart" (want start or wait)`}},
	{"on_missing case matters", withProgram("match: {comm: worker}", "on_missing: Wait"), []string{
		`demo.yaml:5: programs[0].on_missing: invalid on_missing "Wait" (want start or wait)`}},
	{"on_missing a list", withProgram("match: {comm: worker}", "on_missing: [wait]"), []string{
		"demo.yaml:5: programs[0].on_missing: must be a string, not a list"}},
	{"on_missing without match", withProgram("on_missing: wait"), []string{
		"demo.yaml:4: programs[0].on_missing: on_missing needs match: it says what to do when no process matches"}},
	{"default on_missing without match", withProgram("on_missing: start"), []string{
		"demo.yaml:4: programs[0].on_missing: on_missing needs match: it says what to do when no process matches"}},
	{"bad on_missing without match", withProgram("on_missing: later"), []string{
		`demo.yaml:4: programs[0].on_missing: invalid on_missing "later" (want start or wait)`,
		"demo.yaml:4: programs[0].on_missing: on_missing needs match: it says what to do when no process matches"}},
	{"match still needs command", "programs:\n  - name: legacy\n    match: {comm: worker}\n", []string{
		"demo.yaml:2: programs[0].command: is required"}},
	{"every match problem", withProgram(
		"match:",
		"  comm: a-very-long-process-name",
		"  exe: worker",
		"  cmdline: '(worker'",
		"  pidfile: run/worker.pid",
		`  user: ""`,
		"on_missing: never"), []string{
		"demo.yaml:5: programs[0].match.comm: must be at most 15 bytes, not 24: the kernel cuts process names to 15 bytes (TASK_COMM_LEN is 16), so it would never match",
		`demo.yaml:6: programs[0].match.exe: must be an absolute path, not "worker"`,
		`demo.yaml:7: programs[0].match.cmdline: invalid regular expression: missing closing ): "(worker"`,
		`demo.yaml:8: programs[0].match.pidfile: must be an absolute path, not "run/worker.pid"`,
		"demo.yaml:9: programs[0].match.user: must not be empty",
		`demo.yaml:10: programs[0].on_missing: invalid on_missing "never" (want start or wait)`}},

	// The memory watchdog: memory.recycle, memory.warn_above, and the OOM
	// settings of restart and limits.
	{"percent without max", withProgram("memory:", "  recycle: {above: 90%}"), []string{
		"demo.yaml:5: programs[0].memory.recycle.above: 90% needs memory.max: a percentage is a share of that limit"}},
	{"warn percent without max", withProgram("memory:", "  high: 1GiB", "  warn_above: 80%"), []string{
		"demo.yaml:6: programs[0].memory.warn_above: 80% needs memory.max: a percentage is a share of that limit"}},
	{"percent zero", withProgram("memory:", "  max: 1GiB", "  recycle: {above: 0%}"), []string{
		"demo.yaml:6: programs[0].memory.recycle.above: percentage must be above 0% and at most 100%, not 0%"}},
	{"percent negative", withProgram("memory: {max: 1GiB, warn_above: -5%}"), []string{
		"demo.yaml:4: programs[0].memory.warn_above: percentage must be above 0% and at most 100%, not -5%"}},
	{"percent above 100", withProgram("memory:", "  max: 1GiB", "  recycle:", "    above: 100.5%"), []string{
		"demo.yaml:7: programs[0].memory.recycle.above: percentage must be above 0% and at most 100%, not 100.5%"}},
	{"percent with exponent", withProgram("memory: {max: 1GiB, recycle: {above: 1e1%}}"), []string{
		`demo.yaml:4: programs[0].memory.recycle.above: invalid percentage "1e1%" (want a number such as 90% or 12.5%)`}},
	{"percent with space", withProgram("memory: {max: 1GiB, recycle: {above: 90 %}}"), []string{
		`demo.yaml:4: programs[0].memory.recycle.above: invalid percentage "90 %" (want a number such as 90% or 12.5%)`}},
	{"bad threshold", withProgram("memory: {recycle: {above: lots}}"), []string{
		`demo.yaml:4: programs[0].memory.recycle.above: invalid threshold "lots" (want a size such as 460MiB or 512M, or a percentage of memory.max such as 90%)`}},
	{"threshold too large", withProgram("memory: {warn_above: 8EiB}"), []string{
		`demo.yaml:4: programs[0].memory.warn_above: size "8EiB" is too large`}},
	{"threshold a list", withProgram("memory: {recycle: {above: [90%]}}"), []string{
		"demo.yaml:4: programs[0].memory.recycle.above: must be a size such as 460MiB or a percentage such as 90%, not a list"}},
	{"threshold below 1MiB", withProgram("memory:", "  recycle: {above: 512KiB}", "  warn_above: 1000"), []string{
		"demo.yaml:5: programs[0].memory.recycle.above: must be at least 1MiB, not 512KiB",
		"demo.yaml:6: programs[0].memory.warn_above: must be at least 1MiB, not 1000B"}},
	{"threshold zero bytes", withProgram("memory: {recycle: {above: 0}}"), []string{
		"demo.yaml:4: programs[0].memory.recycle.above: must be at least 1MiB, not 0B"}},
	{"percent comes to less than 1MiB", withProgram("memory:", "  max: 4MiB", "  recycle: {above: 12.5%}"), []string{
		"demo.yaml:6: programs[0].memory.recycle.above: must come to at least 1MiB, not 512KiB (12.5% of memory.max 4MiB)"}},
	{"recycle above max", withProgram("memory:", "  max: 512MiB", "  recycle: {above: 600MiB}"), []string{
		"demo.yaml:6: programs[0].memory.recycle.above: must not exceed memory.max (512MiB)"}},
	{"warn above max", withProgram("memory:", "  max: 512MiB", "  warn_above: 1GiB"), []string{
		"demo.yaml:6: programs[0].memory.warn_above: must not exceed memory.max (512MiB)"}},
	{"warn not below recycle", withProgram("memory:", "  recycle: {above: 400MiB}", "  warn_above: 400MiB"), []string{
		"demo.yaml:6: programs[0].memory.warn_above: must be below recycle.above (400MiB), not 400MiB"}},
	{"warn percent above recycle percent", withProgram("memory:", "  max: 512MiB", "  recycle: {above: 80%}", "  warn_above: 90%"), []string{
		"demo.yaml:7: programs[0].memory.warn_above: must be below recycle.above (80% of 512MiB), not 90% of 512MiB"}},
	{"warn bytes above recycle percent", withProgram("memory:", "  max: 512MiB", "  recycle: {above: 90%}", "  warn_above: 500MiB"), []string{
		"demo.yaml:7: programs[0].memory.warn_above: must be below recycle.above (90% of 512MiB), not 500MiB"}},
	{"bad max hides percent", withProgram("memory:", "  max: 100KiB", "  recycle: {above: 90%}", "  warn_above: 80%"), []string{
		"demo.yaml:5: programs[0].memory.max: must be at least 1MiB, not 100KiB"}},
	{"undecodable max hides percent", withProgram("memory:", "  max: lots", "  recycle: {above: 90%}"), []string{
		`demo.yaml:5: programs[0].memory.max: invalid size "lots" (want bytes or a unit such as 256MiB, 1GiB, 512M or 1G)`}},
	{"empty recycle", withProgram("memory:", "  max: 1GiB", "  recycle: {}"), []string{
		"demo.yaml:6: programs[0].memory.recycle.above: is required (a size such as 460MiB, or a percentage of memory.max such as 90%)"}},
	{"null recycle", withProgram("memory:", "  recycle:"), []string{
		"demo.yaml:5: programs[0].memory.recycle.above: is required (a size such as 460MiB, or a percentage of memory.max such as 90%)"}},
	{"recycle without above", withProgram("memory:", "  recycle:", "    for: 1m", "    above: ~"), []string{
		"demo.yaml:5: programs[0].memory.recycle.above: is required (a size such as 460MiB, or a percentage of memory.max such as 90%)"}},
	{"recycle a string", withProgram("memory: {recycle: 90%}"), []string{
		`demo.yaml:4: programs[0].memory.recycle: must be a mapping, not the string "90%"`}},
	{"unknown recycle key", withProgram("memory: {recycle: {abov: 1GiB}}"), []string{
		`demo.yaml:4: programs[0].memory.recycle.abov: unknown key, did you mean "above"?`,
		"demo.yaml:4: programs[0].memory.recycle.above: is required (a size such as 460MiB, or a percentage of memory.max such as 90%)"}},
	{"recycle for negative", withProgram("memory:", "  recycle:", "    above: 1GiB", "    for: -1s"), []string{
		"demo.yaml:7: programs[0].memory.recycle.for: must be at least 0s, not -1s"}},
	{"recycle for above a day", withProgram("memory: {recycle: {above: 1GiB, for: 25h}}"), []string{
		"demo.yaml:4: programs[0].memory.recycle.for: must be at most 24h0m0s, not 25h0m0s"}},
	{"unknown measure", withProgram("memory:", "  recycle:", "    above: 1GiB", "    measure: vsz"), []string{
		`demo.yaml:7: programs[0].memory.recycle.measure: invalid measure "vsz" (want working_set, rss or anon)`}},
	{"measure case matters", withProgram("memory: {recycle: {above: 1GiB, measure: RSS}}"), []string{
		`demo.yaml:4: programs[0].memory.recycle.measure: invalid measure "RSS" (want working_set, rss or anon)`}},
	{"oom_hold not a boolean", withProgram("restart: {oom_hold: yes}"), []string{
		`demo.yaml:4: programs[0].restart.oom_hold: must be true or false, not the string "yes"`}},
	{"limits oom_hold a number", "limits:\n  oom_hold: 1\n", []string{
		"demo.yaml:2: limits.oom_hold: must be true or false, not an integer"}},
	{"oom_hold_max negative", withProgram("restart:", "  oom_hold_max: -1s"), []string{
		"demo.yaml:5: programs[0].restart.oom_hold_max: must be at least 0s, not -1s"}},
	{"oom_hold_max above a day", withProgram("restart: {oom_hold_max: 24h0m1s}"), []string{
		"demo.yaml:4: programs[0].restart.oom_hold_max: must be at most 24h0m0s, not 24h0m1s"}},
	{"limits oom_hold_max negative", "limits: {oom_hold_max: -2m}\n", []string{
		"demo.yaml:1: limits.oom_hold_max: must be at least 0s, not -2m0s"}},
	{"limits oom_hold_max above a day", "limits:\n  oom_hold_max: 48h\n", []string{
		"demo.yaml:2: limits.oom_hold_max: must be at most 24h0m0s, not 48h0m0s"}},
	{"oom_hold_max without unit", withProgram("restart: {oom_hold_max: 120}"), []string{
		`demo.yaml:4: programs[0].restart.oom_hold_max: invalid duration "120" (want Go syntax such as 100ms, 30s or 1m30s)`}},
	{"oom_loop negative", withProgram("restart:", "  oom_loop: -1"), []string{
		"demo.yaml:5: programs[0].restart.oom_loop: must be at least 0, not -1"}},
	{"oom_loop too large", withProgram("restart: {oom_loop: 1001}"), []string{
		"demo.yaml:4: programs[0].restart.oom_loop: must be at most 1000, not 1001"}},
	{"misspelt oom key", withProgram("restart: {oom_hold_mx: 1m}"), []string{
		`demo.yaml:4: programs[0].restart.oom_hold_mx: unknown key, did you mean "oom_hold_max"?`}},
	{"misspelt warn_above", withProgram("memory: {warn: 1GiB}"), []string{
		`demo.yaml:4: programs[0].memory.warn: unknown key (known keys: max, high, swap_max, recycle, warn_above)`}},

	// Aliases.
	{"alias to itself", "programs: &p\n  - *p\n", []string{
		"demo.yaml:2: programs[0]: must be a mapping, not a list"}},
	{"unknown anchor", "programs: *nope\n", []string{
		// The YAML parser gives no line for this one.
		`demo.yaml: yaml: unknown anchor 'nope' referenced`}},
}

func TestParseMatch(t *testing.T) {
	const in = `programs:
  - name: legacy-worker
    match: {comm: worker}
    command: ["/usr/bin/worker", "--queue=jobs"]
  - name: pinned
    match:
      pidfile: /run/pinned.pid
      cmdline: '^pinned .*--queue=(jobs|mail)( |$)'
      user: www-data
    command: [/usr/bin/pinned]
    on_missing: wait
  - name: by-exe
    match: {exe: /usr/bin/by-exe}
    command: [/usr/bin/by-exe]
    on_missing: ~
`
	c, err := Parse("demo.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		match     Match
		onMissing OnMissing
	}{
		{Match{Comm: "worker"}, OnMissingStart},
		{Match{Pidfile: "/run/pinned.pid", Cmdline: "^pinned .*--queue=(jobs|mail)( |$)", User: "www-data"}, OnMissingWait},
		{Match{Exe: "/usr/bin/by-exe"}, OnMissingStart},
	}
	if len(c.Programs) != len(want) {
		t.Fatalf("got %d programs", len(c.Programs))
	}
	for i, w := range want {
		p := c.Programs[i]
		if p.Match == nil || *p.Match != w.match || p.OnMissing != w.onMissing {
			t.Errorf("%s: match %+v, on_missing %q; want %+v, %q", p.Name, p.Match, p.OnMissing, w.match, w.onMissing)
		}
	}

	re, err := c.Programs[1].Match.CmdlineRegexp()
	if err != nil {
		t.Fatal(err)
	}
	for s, ok := range map[string]bool{
		"pinned --queue=jobs":           true,
		"pinned -v --queue=mail --once": true,
		"pinned --queue=jobs2":          false,
		"/usr/bin/pinned --queue=jobs":  false,
	} {
		if re.MatchString(s) != ok {
			t.Errorf("cmdline %q matches %q: %v, want %v", re, s, !ok, ok)
		}
	}
	if re, err := c.Programs[0].Match.CmdlineRegexp(); re != nil || err != nil {
		t.Errorf("CmdlineRegexp() without cmdline = %v, %v; want nil, nil", re, err)
	}
	if _, err := (&Match{Cmdline: "("}).CmdlineRegexp(); err == nil {
		t.Error("CmdlineRegexp() compiled \"(\"")
	}
}

// TestParseErrors checks every class of error, each by its exact text.
func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("demo.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config is not nil on error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestParseOutput checks the output section's keys, their bounds and that
// rotation needs a file, each error naming FILE:LINE: field.
func TestParseOutput(t *testing.T) {
	c, err := Parse("demo.yaml", []byte(`programs:
  - name: a
    command: [a]
    output: {file: /var/log/a.log, max_size: 0, timestamps: true}
  - name: b
    command: [b]
    output: {timestamps: true}
  - name: c
    command: [c]
    output: {file: /var/log/c.log, max_size: 64KiB, max_files: 100}
`))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Programs[0].Output; o.MaxSize != 0 || o.MaxFiles != DefaultOutputMaxFiles || !o.Timestamps {
		t.Errorf("a: output %+v", o)
	}
	if o := c.Programs[1].Output; o.File != "" || !o.Timestamps {
		t.Errorf("b: output %+v", o)
	}
	if o := c.Programs[2].Output; o.MaxSize != 64<<10 || o.MaxFiles != 100 {
		t.Errorf("c: output %+v", o)
	}

	_, err = Parse("demo.yaml", []byte(`programs:
  - name: a
    command: [a]
    output:
      max_size: 1MiB
      max_files: 3
  - name: b
    command: [b]
    output: {file: /var/log/b.log, max_size: 1KiB, max_files: 0}
  - name: c
    command: [c]
    output: {file: /var/log/c.log, max_size: -1, max_files: 101, timestamps: yes}
  - name: d
    command: [d]
    output: {file: /var/log/d.log, max_size: 2PiB, max_files: many}
`))
	want := strings.Join([]string{
		"demo.yaml:5: programs[0].output.max_size: needs output.file: only a file is rotated",
		"demo.yaml:6: programs[0].output.max_files: needs output.file: only a file is rotated",
		"demo.yaml:9: programs[1].output.max_size: must be 0 (never rotate) or at least 64KiB, not 1KiB",
		"demo.yaml:9: programs[1].output.max_files: must be at least 1, not 0",
		`demo.yaml:12: programs[2].output.timestamps: must be true or false, not the string "yes"`,
		"demo.yaml:12: programs[2].output.max_size: must not be negative",
		"demo.yaml:12: programs[2].output.max_files: must be at most 100, not 101",
		`demo.yaml:15: programs[3].output.max_files: must be an integer, not the string "many"`,
		"demo.yaml:15: programs[3].output.max_size: must be at most 1PiB, not 2PiB",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("errors:\n got %v\nwant %s", err, want)
	}
}

// manyMistakes has a problem on nearly every line.
const manyMistakes = `limits:
  restarts_per_second: 0
  restart_burst: 0
  extra: 1
programs:
  - name: Bad Name
    command: "/bin/sh -c 'run'"
    dir: relative
    env: {"": x, "K=V": y}
    restart:
      policy: sometimes
      backoff: {initial: 2m, max: 1m, multiplier: 0, jitter: 3}
      reset_after: -5s
      limit: {burst: 0, interval: forever, action: quit}
    stop: {signal: NOPE, timeout: 0s}
    output: {file: logs/out.log}
    memory: {max: 100KiB, high: lots, swap_max: -1, recycle: {above: 90%, measure: vsz}, warn_above: 0%}
  - name: ok
    command: ["/bin/ok"]
  - name: ok
    nmae: typo
  - 42
`

// TestParseManyMistakes checks that one pass reports every problem, in line
// order, each exactly once.
func TestParseManyMistakes(t *testing.T) {
	want := []string{
		"demo.yaml:2: limits.restarts_per_second: must be a positive number, not 0",
		"demo.yaml:3: limits.restart_burst: must be at least 1, not 0",
		"demo.yaml:4: limits.extra: unknown key (known keys: restarts_per_second, restart_burst, oom_hold, oom_hold_max)",
		`demo.yaml:6: programs[0].name: invalid name "Bad Name": must match [a-z0-9_.-]+`,
		`demo.yaml:7: programs[0].command: must be a list of arguments such as ["/usr/bin/api", "--port", "8080"], not the string "/bin/sh -c 'run'"`,
		`demo.yaml:8: programs[0].dir: must be an absolute path, not "relative"`,
		`demo.yaml:9: programs[0].env[""]: variable name must not be empty`,
		`demo.yaml:9: programs[0].env["K=V"]: variable name must not contain '='`,
		`demo.yaml:11: programs[0].restart.policy: invalid policy "sometimes" (want always, on-failure, on-oom or never)`,
		"demo.yaml:12: programs[0].restart.backoff.max: must not be less than backoff.initial (2m0s)",
		"demo.yaml:12: programs[0].restart.backoff.multiplier: must be at least 1, not 0",
		"demo.yaml:12: programs[0].restart.backoff.jitter: must be between 0 and 1, not 3",
		"demo.yaml:13: programs[0].restart.reset_after: must be positive, not -5s",
		`demo.yaml:14: programs[0].restart.limit.interval: invalid duration "forever" (want Go syntax such as 100ms, 30s or 1m30s)`,
		"demo.yaml:14: programs[0].restart.limit.burst: must be at least 1, not 0",
		`demo.yaml:14: programs[0].restart.limit.action: invalid action "quit" (want backoff or give-up)`,
		`demo.yaml:15: programs[0].stop.signal: unknown signal "NOPE"`,
		"demo.yaml:15: programs[0].stop.timeout: must be positive, not 0s",
		`demo.yaml:16: programs[0].output.file: must be an absolute path, not "logs/out.log"`,
		`demo.yaml:17: programs[0].memory.high: invalid size "lots" (want bytes or a unit such as 256MiB, 1GiB, 512M or 1G)`,
		"demo.yaml:17: programs[0].memory.warn_above: percentage must be above 0% and at most 100%, not 0%",
		"demo.yaml:17: programs[0].memory.max: must be at least 1MiB, not 100KiB",
		"demo.yaml:17: programs[0].memory.swap_max: must not be negative",
		`demo.yaml:17: programs[0].memory.recycle.measure: invalid measure "vsz" (want working_set, rss or anon)`,
		"demo.yaml:20: programs[2].command: is required",
		`demo.yaml:20: programs[2].name: duplicate name "ok", first used by programs[1] on line 18`,
		`demo.yaml:21: programs[2].nmae: unknown key, did you mean "name"?`,
		"demo.yaml:22: programs[3]: must be a mapping, not an integer",
	}
	_, err := Parse("demo.yaml", []byte(manyMistakes))
	got := Errors(err)
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d", len(got), len(want))
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i].Error()
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("error %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(path, []byte(withProgram()), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path || len(c.Programs) != 1 {
		t.Errorf("Load = %+v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("programs: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":1: programs: must be a list of programs, not an integer"; err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	if Errors(err) != nil {
		t.Errorf("Errors(%v) = %v, want none", err, Errors(err))
	}
}

func TestReferenceExample(t *testing.T) {
	c, err := Load("../examples/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Programs) == 0 {
		t.Fatal("no programs")
	}
	// The reference shows every key, so every optional part is set
	// somewhere.
	var memory, output, env, dir, user, group, match, onMissing, onExit, onExitOff bool
	var httpProbe, tcpProbe, execProbe, notifyAll bool
	for _, p := range c.Programs {
		if h := p.Health; h != nil {
			httpProbe = httpProbe || h.HTTP != nil && len(h.HTTP.Headers) > 0 && h.HTTP.ExpectStatus != DefaultStatusRange &&
				h.Period != 0 && h.Timeout != DefaultHealthTimeout && h.StartupGrace != 0
			tcpProbe = tcpProbe || h.TCP != nil
			execProbe = execProbe || h.Exec != nil
		}
		notifyAll = notifyAll || p.Notify != nil && p.Notify.Ready && p.Notify.Watchdog != 0
		onExit = onExit || p.OnExit != nil && !p.OnExit.Off() && p.OnExit.Reasons != nil && p.OnExit.User != "" && p.OnExit.Group != ""
		onExitOff = onExitOff || p.OnExit != nil && p.OnExit.Off()
		match = match || p.Match != nil && p.Match.Comm != "" && p.Match.Exe != "" && p.Match.Cmdline != "" && p.Match.Pidfile != "" && p.Match.User != ""
		onMissing = onMissing || p.Match != nil && p.OnMissing != DefaultOnMissing
		memory = memory || p.Memory != nil && p.Memory.Max != nil && p.Memory.High != nil && p.Memory.SwapMax != nil
		output = output || p.Output.File != ""
		env = env || len(p.Env) > 0
		dir = dir || p.Dir != ""
		user = user || p.User != ""
		group = group || p.Group != ""
	}
	if !memory || !output || !env || !dir || !user || !group || !match || !onMissing || !onExit || !onExitOff || c.Hooks.OnExit == nil {
		t.Errorf("reference lacks a key: memory %v, output %v, env %v, dir %v, user %v, group %v, match %v, on_missing %v, on_exit %v, on_exit off %v, hooks %v",
			memory, output, env, dir, user, group, match, onMissing, onExit, onExitOff, c.Hooks.OnExit != nil)
	}
	if !httpProbe || !tcpProbe || !execProbe || !notifyAll {
		t.Errorf("reference lacks a key: health.http with every key %v, health.tcp %v, health.exec %v, notify with ready and watchdog %v",
			httpProbe, tcpProbe, execProbe, notifyAll)
	}
}

// TestParseAliasExpansion checks that aliases cannot make a small file
// expensive, while a large file without them is fine.
func TestParseAliasExpansion(t *testing.T) {
	var b strings.Builder
	b.WriteString("programs:\n  - &p {name: a, command: [/bin/a], env: {")
	for i := range 2000 {
		fmt.Fprintf(&b, "K%d: v, ", i)
	}
	b.WriteString("}}\n  - " + strings.Repeat("*p\n  - ", 5000) + "*p\n")
	_, err := Parse("demo.yaml", []byte(b.String()))
	errs := Errors(err)
	if len(errs) != 1 || errs[0].Field != "config" || !strings.HasPrefix(errs[0].Msg, "too large: more than ") {
		t.Errorf("Parse(alias bomb) = %v", err)
	}

	b.Reset()
	b.WriteString("programs:\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  - name: p%d\n    command: [/bin/p, --id, %d]\n    env: {A: 1, B: 2}\n    restart: {backoff: {initial: 1s, max: 1m}}\n", i, i)
	}
	c, err := Parse("demo.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Programs) != 5000 {
		t.Errorf("got %d programs", len(c.Programs))
	}
}
