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

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in   string
		want Threshold
	}{
		{"90%", Threshold{Percent: 90}},
		{"12.5%", Threshold{Percent: 12.5}},
		{"100%", Threshold{Percent: 100}},
		{"0.5%", Threshold{Percent: 0.5}},
		{".5%", Threshold{Percent: 0.5}},
		{"90.%", Threshold{Percent: 90}},
		{"+90%", Threshold{Percent: 90}},
		{"100.000%", Threshold{Percent: 100}},
		{"460MiB", Threshold{Bytes: 460 << 20}},
		{"460Mi", Threshold{Bytes: 460 << 20}},
		{"512M", Threshold{Bytes: 512e6}},
		{"1.5GiB", Threshold{Bytes: 3 << 29}},
		{"4096", Threshold{Bytes: 4096}},
		{"0", Threshold{}},
		// Sizes are checked against MinMemory by Validate, not here.
		{"-1GiB", Threshold{Bytes: -1 << 30}},
		{"100", Threshold{Bytes: 100}},
	}
	for _, tt := range tests {
		got, err := ParseThreshold(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseThreshold(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, want string }{
		{"", `invalid threshold "" (want a size such as 460MiB or 512M, or a percentage of memory.max such as 90%)`},
		{"lots", `invalid threshold "lots" (want a size such as 460MiB or 512M, or a percentage of memory.max such as 90%)`},
		{"512m", `invalid threshold "512m" (want a size such as 460MiB or 512M, or a percentage of memory.max such as 90%)`},
		{"90 %", `invalid percentage "90 %" (want a number such as 90% or 12.5%)`},
		{"%", `invalid percentage "%" (want a number such as 90% or 12.5%)`},
		{"90%%", `invalid percentage "90%%" (want a number such as 90% or 12.5%)`},
		{"1e1%", `invalid percentage "1e1%" (want a number such as 90% or 12.5%)`},
		{"0x10%", `invalid percentage "0x10%" (want a number such as 90% or 12.5%)`},
		{"NaN%", `invalid percentage "NaN%" (want a number such as 90% or 12.5%)`},
		{"inf%", `invalid percentage "inf%" (want a number such as 90% or 12.5%)`},
		{"1_0%", `invalid percentage "1_0%" (want a number such as 90% or 12.5%)`},
		{"90%MiB", `invalid threshold "90%MiB" (want a size such as 460MiB or 512M, or a percentage of memory.max such as 90%)`},
		{"0%", "percentage must be above 0% and at most 100%, not 0%"},
		{"-0%", "percentage must be above 0% and at most 100%, not -0%"},
		{"0.0%", "percentage must be above 0% and at most 100%, not 0.0%"},
		{"-5%", "percentage must be above 0% and at most 100%, not -5%"},
		{"100.5%", "percentage must be above 0% and at most 100%, not 100.5%"},
		{"1" + strings.Repeat("0", 400) + "%", "percentage must be above 0% and at most 100%, not 1" + strings.Repeat("0", 40) + "..."},
		{"0." + strings.Repeat("0", 400) + "1%", "percentage must be above 0% and at most 100%, not 0." + strings.Repeat("0", 39) + "..."},
		{"8EiB", `size "8EiB" is too large`},
	}
	for _, tt := range bad {
		got, err := ParseThreshold(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseThreshold(%q) = %+v, %v; want error %s", tt.in, got, err, tt.want)
		}
	}
}

func TestThresholdResolve(t *testing.T) {
	tests := []struct {
		t    Threshold
		max  int64
		want int64
		ok   bool
	}{
		{Threshold{Bytes: 460 << 20}, 512 << 20, 460 << 20, true},
		// A size needs no memory.max, and is returned even above it:
		// Validate refuses that, Resolve only converts.
		{Threshold{Bytes: 460 << 20}, 0, 460 << 20, true},
		{Threshold{Bytes: 1 << 30}, 512 << 20, 1 << 30, true},
		{Threshold{Percent: 90}, 512 << 20, 483183820, true}, // 483183820.8
		{Threshold{Percent: 50}, 1000, 500, true},
		{Threshold{Percent: 12.5}, 4 << 20, 512 << 10, true},
		{Threshold{Percent: 100}, 512 << 20, 512 << 20, true},
		{Threshold{Percent: 100}, MaxMemory, MaxMemory, true},
		{Threshold{Percent: 100}, math.MaxInt64, math.MaxInt64, true},
		// float64 holds 2^63 - 1024 as the nearest value below 2^63.
		{Threshold{Percent: 99.99999999999999}, math.MaxInt64, math.MaxInt64 - 1023, true},
		{Threshold{Percent: 1e-9}, 1 << 30, 0, true},
		{Threshold{Percent: 90}, 0, 0, false},
		{Threshold{Percent: 90}, -1, 0, false},
		{Threshold{Percent: 0.5, Bytes: 1}, 1 << 30, 0, false},
		{Threshold{Percent: -5}, 1 << 30, 0, false},
		{Threshold{Percent: 150}, 1 << 30, 0, false},
		{Threshold{Percent: math.NaN()}, 1 << 30, 0, false},
		{Threshold{Percent: math.Inf(1)}, 1 << 30, 0, false},
		{Threshold{}, 1 << 30, 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.t.Resolve(tt.max)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%+v.Resolve(%d) = %d, %v; want %d, %v", tt.t, tt.max, got, ok, tt.want, tt.ok)
		}
	}
}

func TestThresholdString(t *testing.T) {
	tests := []struct {
		t    Threshold
		want string
	}{
		{Threshold{Percent: 90}, "90%"},
		{Threshold{Percent: 12.5}, "12.5%"},
		{Threshold{Percent: 1e-7}, "0.0000001%"},
		{Threshold{Bytes: 460 << 20}, "460MiB"},
		{Threshold{Bytes: 1 << 30}, "1GiB"},
		{Threshold{Bytes: 3 << 29}, "1536MiB"},
		{Threshold{Bytes: 483183820}, "483183820"},
		{Threshold{Bytes: 1000}, "1000"},
		{Threshold{Bytes: 1 << 10}, "1KiB"},
		{Threshold{Bytes: MaxMemory}, "1EiB"},
		{Threshold{Bytes: math.MaxInt64}, "9223372036854775807"},
		{Threshold{Bytes: -5}, "-5"},
		{Threshold{Bytes: -1 << 30}, "-1073741824"},
		{Threshold{}, "0"},
		{Threshold{Bytes: 5, Percent: 3}, "5 and 3%"},
	}
	for _, tt := range tests {
		got := tt.t.String()
		if got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.t, got, tt.want)
		}
		if tt.t.Bytes != 0 && tt.t.Percent != 0 {
			continue
		}
		if back, err := ParseThreshold(got); err != nil && tt.t.Percent != 0 || err == nil && back != tt.t {
			t.Errorf("ParseThreshold(%q) = %+v, %v; want %+v back", got, back, err, tt.t)
		}
	}
}

// TestValidateWatchdogInCode checks the watchdog rules on programs and
// limits built in code, including values that no file can hold.
func TestValidateWatchdogInCode(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	dur := func(d time.Duration) *time.Duration { return &d }
	recycle := func(t Threshold) *Recycle {
		return &Recycle{Above: t, For: DefaultRecycleFor, Measure: DefaultMeasure}
	}
	tests := []struct {
		name   string
		mutate func(p *Program)
		want   string // "" for valid
	}{
		{"recycle by percent", func(p *Program) {
			p.Memory = &Memory{Max: i64(1 << 30), Recycle: recycle(Threshold{Percent: 90}), WarnAbove: &Threshold{Percent: 89.9}}
		}, ""},
		{"recycle by bytes without max", func(p *Program) {
			p.Memory = &Memory{Recycle: recycle(Threshold{Bytes: 1 << 30}), WarnAbove: &Threshold{Bytes: 1<<30 - 1}}
		}, ""},
		{"warn alone", func(p *Program) { p.Memory = &Memory{WarnAbove: &Threshold{Bytes: MinMemory}} }, ""},
		{"recycle at max, for 0", func(p *Program) {
			p.Memory = &Memory{Max: i64(MinMemory), Recycle: &Recycle{Above: Threshold{Bytes: MinMemory}, Measure: MeasureAnon}}
		}, ""},
		{"overrides at bounds", func(p *Program) {
			yes := false
			p.Restart.OOMHold, p.Restart.OOMHoldMax, p.Restart.OOMLoop = &yes, dur(MaxOOMHoldMax), MaxOOMLoop
		}, ""},
		{"overrides at zero", func(p *Program) { p.Restart.OOMHoldMax, p.Restart.OOMLoop = dur(0), 0 }, ""},
		{"zero recycle", func(p *Program) { p.Memory = &Memory{Recycle: &Recycle{}} },
			"memory.recycle.above: is required (a size such as 460MiB, or a percentage of memory.max such as 90%)\n" +
				`memory.recycle.measure: invalid measure "" (want working_set, rss or anon)`},
		{"zero warn_above", func(p *Program) { p.Memory = &Memory{WarnAbove: &Threshold{}} },
			"memory.warn_above: must be at least 1MiB, not 0B"},
		{"both bytes and percent", func(p *Program) {
			p.Memory = &Memory{Max: i64(1 << 30), Recycle: recycle(Threshold{Bytes: 1 << 29, Percent: 50})}
		}, "memory.recycle.above: must be either a size or a percentage, not both (536870912 bytes and 50%)"},
		{"percent NaN", func(p *Program) {
			p.Memory = &Memory{Max: i64(1 << 30), WarnAbove: &Threshold{Percent: math.NaN()}}
		}, "memory.warn_above: percentage must be above 0% and at most 100%, not NaN%"},
		{"percent negative", func(p *Program) {
			p.Memory = &Memory{Max: i64(1 << 30), Recycle: recycle(Threshold{Percent: -1})}
		}, "memory.recycle.above: percentage must be above 0% and at most 100%, not -1%"},
		{"percent above 100", func(p *Program) {
			p.Memory = &Memory{Max: i64(1 << 30), Recycle: recycle(Threshold{Percent: math.Nextafter(100, 101)})}
		}, "memory.recycle.above: percentage must be above 0% and at most 100%, not 100.00000000000001%"},
		{"percent without max", func(p *Program) { p.Memory = &Memory{Recycle: recycle(Threshold{Percent: 90})} },
			"memory.recycle.above: 90% needs memory.max: a percentage is a share of that limit"},
		{"bytes above MaxMemory", func(p *Program) { p.Memory = &Memory{WarnAbove: &Threshold{Bytes: MaxMemory + 1}} },
			"memory.warn_above: must be at most 1EiB, not 1EiB1B"},
		{"warn equal to recycle", func(p *Program) {
			p.Memory = &Memory{Max: i64(1000 << 20), Recycle: recycle(Threshold{Percent: 50}), WarnAbove: &Threshold{Bytes: 500 << 20}}
		}, "memory.warn_above: must be below recycle.above (50% of 1000MiB), not 500MiB"},
		{"warn checked against a bad recycle only", func(p *Program) {
			p.Memory = &Memory{Recycle: recycle(Threshold{Bytes: 1}), WarnAbove: &Threshold{Bytes: 2 << 20}}
		}, "memory.recycle.above: must be at least 1MiB, not 1B"},
		{"bad for and measure", func(p *Program) {
			p.Memory = &Memory{Recycle: &Recycle{Above: Threshold{Bytes: 1 << 30}, For: -time.Nanosecond, Measure: "pss"}}
		}, "memory.recycle.for: must be at least 0s, not -1ns\n" +
			`memory.recycle.measure: invalid measure "pss" (want working_set, rss or anon)`},
		{"for above bound", func(p *Program) {
			p.Memory = &Memory{Recycle: &Recycle{Above: Threshold{Bytes: 1 << 30}, For: MaxRecycleFor + 1, Measure: MeasureRSS}}
		}, "memory.recycle.for: must be at most 24h0m0s, not 24h0m0.000000001s"},
		{"bad overrides", func(p *Program) { p.Restart.OOMHoldMax, p.Restart.OOMLoop = dur(-time.Second), -1 },
			"restart.oom_hold_max: must be at least 0s, not -1s\nrestart.oom_loop: must be at least 0, not -1"},
		{"overrides above bounds", func(p *Program) { p.Restart.OOMHoldMax, p.Restart.OOMLoop = dur(MaxOOMHoldMax+1), MaxOOMLoop+1 },
			"restart.oom_hold_max: must be at most 24h0m0s, not 24h0m0.000000001s\nrestart.oom_loop: must be at most 1000, not 1001"},
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

	// Limits, through Config.Validate.
	for _, tt := range []struct {
		max  time.Duration
		want string
	}{
		{0, ""},
		{MaxOOMHoldMax, ""},
		{-1, "demo.yaml: limits.oom_hold_max: must be at least 0s, not -1ns"},
		{MaxOOMHoldMax + 1, "demo.yaml: limits.oom_hold_max: must be at most 24h0m0s, not 24h0m0.000000001s"},
	} {
		l := DefaultLimits()
		l.OOMHoldMax = tt.max
		err := (&Config{File: "demo.yaml", Limits: l}).Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("limits.oom_hold_max %v: Validate() = %v, want %q", tt.max, err, tt.want)
		}
	}
}
