package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"
)

func codeProgram(name string) Program {
	p := DefaultProgram()
	p.Name = name
	p.Command = []string{"/usr/bin/" + name}
	return p
}

func TestValidateDefaults(t *testing.T) {
	c := &Config{Limits: DefaultLimits(), Programs: []Program{codeProgram("api"), codeProgram("worker")}}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	if err := codeProgram("api").Validate(); err != nil {
		t.Errorf("Program.Validate() = %v", err)
	}
	// The zero values are not defaults: a Config built in code starts from
	// DefaultProgram and DefaultLimits.
	if err := (&Config{}).Validate(); err == nil {
		t.Error("zero Limits accepted")
	}
}

func TestValidateInCode(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	bad := codeProgram("api")
	bad.Command = nil
	bad.Restart.Backoff = Backoff{Initial: time.Minute, Max: time.Second, Multiplier: math.NaN(), Jitter: -1}
	bad.Restart.Policy = ""
	bad.Restart.Limit.Action = "stop"
	bad.Stop.Signal = 0
	bad.Memory = &Memory{Max: i64(2 << 20), High: i64(4 << 20), SwapMax: i64(-1)}
	bad.Env = map[string]string{"B=": "", "A": "x\x00"}

	parsed := codeProgram("worker")
	parsed.Line = 12
	parsed.Dir = "tmp"

	c := &Config{
		File:     "demo.yaml",
		Limits:   Limits{RestartsPerSecond: math.Inf(1), RestartBurst: 0},
		Programs: []Program{bad, parsed, codeProgram("api")},
	}
	want := strings.Join([]string{
		"demo.yaml: limits.restarts_per_second: must be a positive number, not +Inf",
		"demo.yaml: limits.restart_burst: must be at least 1, not 0",
		"demo.yaml: programs[0].command: is required",
		`demo.yaml: programs[0].env.A: value must not contain a NUL byte`,
		`demo.yaml: programs[0].env["B="]: variable name must not contain '='`,
		`demo.yaml: programs[0].restart.policy: invalid policy "" (want always, on-failure, on-oom or never)`,
		"demo.yaml: programs[0].restart.backoff.max: must not be less than backoff.initial (1m0s)",
		"demo.yaml: programs[0].restart.backoff.multiplier: must be a finite number",
		"demo.yaml: programs[0].restart.backoff.jitter: must be between 0 and 1, not -1",
		`demo.yaml: programs[0].restart.limit.action: invalid action "stop" (want backoff or give-up)`,
		"demo.yaml: programs[0].stop.signal: invalid signal 0",
		"demo.yaml: programs[0].memory.high: must not exceed memory.max (2MiB)",
		"demo.yaml: programs[0].memory.swap_max: must not be negative",
		`demo.yaml:12: programs[1].dir: must be an absolute path, not "tmp"`,
		`demo.yaml: programs[2].name: duplicate name "api", first used by programs[0]`,
	}, "\n")
	err := c.Validate()
	if err == nil || err.Error() != want {
		t.Errorf("Validate():\n got %v\nwant %s", err, want)
	}

	// The same program on its own: fields relative to it, no file or line.
	want = strings.Join([]string{
		"command: is required",
		`env.A: value must not contain a NUL byte`,
	}, "\n")
	p := codeProgram("x")
	p.Command = []string{}
	p.Env = bad.Env
	delete(p.Env, "B=")
	if err := p.Validate(); err == nil || err.Error() != want {
		t.Errorf("Program.Validate():\n got %v\nwant %s", err, want)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Field: "programs[0].name", Msg: "is required"}, "a.yaml:3: programs[0].name: is required"},
		{Error{File: "a.yaml", Field: "limits.restart_burst", Msg: "must be at least 1, not 0"}, "a.yaml: limits.restart_burst: must be at least 1, not 0"},
		{Error{Line: 3, Field: "name", Msg: "is required"}, "3: name: is required"},
		{Error{Field: "name", Msg: "is required"}, "name: is required"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	a := &Error{File: "f", Line: 1, Field: "x", Msg: "a"}
	b := &Error{File: "f", Line: 2, Field: "y", Msg: "b"}
	joined := errors.Join(a, b)
	tests := []struct {
		name string
		err  error
		want []*Error
	}{
		{"nil", nil, nil},
		{"other", errors.New("boom"), nil},
		{"single", a, []*Error{a}},
		{"joined", joined, []*Error{a, b}},
		{"wrapped", fmt.Errorf("checking config: %w", joined), []*Error{a, b}},
		{"nested", errors.Join(joined, errors.New("x"), fmt.Errorf("w: %w", b)), []*Error{a, b, b}},
	}
	for _, tt := range tests {
		got := Errors(tt.err)
		if len(got) != len(tt.want) {
			t.Errorf("%s: Errors() = %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: Errors()[%d] = %v, want %v", tt.name, i, got[i], tt.want[i])
			}
		}
	}

	// errors.As finds the first one too.
	var e *Error
	_, err := Parse("demo.yaml", []byte("limits: {restart_burst: 0}\n"))
	if !errors.As(err, &e) || e.Line != 1 || e.Field != "limits.restart_burst" {
		t.Errorf("errors.As(%v) = %+v", err, e)
	}
}

func TestFieldPaths(t *testing.T) {
	tests := []struct{ parent, key, want string }{
		{"", "limits", "limits"},
		{"programs[0]", "env", "programs[0].env"},
		{"programs[0].env", "GOMAXPROCS", "programs[0].env.GOMAXPROCS"},
		{"programs[0].env", "A=B", `programs[0].env["A=B"]`},
		{"programs[0].env", "", `programs[0].env[""]`},
		{"programs[0].env", `a["]`, `programs[0].env["a[\"]"]`},
		{"", "a.b", `["a.b"]`},
	}
	for _, tt := range tests {
		got := childField(tt.parent, tt.key)
		if got != tt.want {
			t.Errorf("childField(%q, %q) = %q, want %q", tt.parent, tt.key, got, tt.want)
		}
		if p := parent(got); p != tt.parent {
			t.Errorf("parent(%q) = %q, want %q", got, p, tt.parent)
		}
	}
	if p := parent("programs[12]"); p != "programs" {
		t.Errorf("parent(programs[12]) = %q", p)
	}
}

func TestSummary(t *testing.T) {
	c := &Config{File: "demo.yaml"}
	for _, n := range []string{"api", "worker", "cron"} {
		c.Programs = append(c.Programs, codeProgram(n))
	}
	if got, want := c.Summary(), "demo.yaml: 3 programs (api, worker, cron) OK"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	c.Programs = c.Programs[:1]
	if got, want := c.Summary(), "demo.yaml: 1 program (api) OK"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	c = &Config{}
	for i := range 12 {
		c.Programs = append(c.Programs, codeProgram(fmt.Sprint("p", i)))
	}
	if got, want := c.Summary(), "config: 12 programs (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, and 2 more) OK"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"4096", 4096},
		{"100B", 100},
		{"256MiB", 256 << 20},
		{"256Mi", 256 << 20},
		{"1GiB", 1 << 30},
		{"1.5GiB", 3 << 29},
		{"2KiB", 2048},
		{"512M", 512e6},
		{"512MB", 512e6},
		{"1G", 1e9},
		{"100k", 100e3},
		{"100K", 100e3},
		{"1T", 1e12},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "x", "1X", "1m", "1kiB", "1 GiB", "GiB", "1GiBB", "1e3", "0x10", "9999999999999999999", "8EiB", "16EiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		ok   bool
	}{
		{"SIGTERM", syscall.SIGTERM, true},
		{"TERM", syscall.SIGTERM, true},
		{"term", syscall.SIGTERM, true},
		{"SigHup", syscall.SIGHUP, true},
		{"sigkill", syscall.SIGKILL, true},
		{"15", syscall.SIGTERM, true},
		{"64", 64, true},
		{"0", 0, false},
		{"65", 0, false},
		{"-1", 0, false},
		{"SIG", 0, false},
		{"", 0, false},
		{"SIGTERM ", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseSignal(tt.in)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidateMatchInCode(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *Program)
		want   string // "" for valid
	}{
		{"no match, default on_missing", func(*Program) {}, ""},
		{"no match, empty on_missing", func(p *Program) { p.OnMissing = "" }, ""},
		{"match by comm", func(p *Program) { p.Match = &Match{Comm: "worker"} }, ""},
		{"match and wait", func(p *Program) { p.Match, p.OnMissing = &Match{Exe: "/usr/bin/worker", User: "0"}, OnMissingWait }, ""},
		{"empty match", func(p *Program) { p.Match = &Match{} },
			"match: must set at least one of comm, exe, cmdline or pidfile"},
		{"match with empty on_missing", func(p *Program) { p.Match, p.OnMissing = &Match{Comm: "worker"}, "" },
			`on_missing: invalid on_missing "" (want start or wait)`},
		{"wait without match", func(p *Program) { p.OnMissing = OnMissingWait },
			"on_missing: on_missing needs match: it says what to do when no process matches"},
		{"bad match", func(p *Program) {
			p.Match = &Match{Comm: "0123456789abcdef", Exe: "worker", Cmdline: `\8`, Pidfile: "a\x00", User: "x\x00"}
		}, strings.Join([]string{
			"match.comm: must be at most 15 bytes, not 16: the kernel cuts process names to 15 bytes (TASK_COMM_LEN is 16), so it would never match",
			`match.exe: must be an absolute path, not "worker"`,
			`match.pidfile: must be an absolute path, not "a\x00"`,
			`match.cmdline: invalid regular expression: invalid escape sequence: "\\8"`,
			"match.user: must not contain a NUL byte",
		}, "\n")},
	}
	for _, tt := range tests {
		p := codeProgram("worker")
		tt.mutate(&p)
		err := p.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Validate() = %v", tt.name, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%s: Validate():\n got %v\nwant %s", tt.name, err, tt.want)
		}
	}
}

func TestReservedEnvRefused(t *testing.T) {
	p := DefaultProgram()
	p.Name, p.Command = "p", []string{"/bin/true"}
	p.Env = map[string]string{ReservedEnv: "v1:forged"}
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), "env."+ReservedEnv) || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("Validate = %v, want the reserved variable refused", err)
	}
}
