package config

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp/syntax"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/restart"
)

// fill returns s padded with 'x' to n bytes.
func fill(s string, n int) string {
	return s + strings.Repeat("x", n-len(s))
}

// maxCommand returns MaxCommandArgs arguments that take exactly
// MaxCommandSize, one of them MaxArgLen long.
func maxCommand() []string {
	argv := make([]string, MaxCommandArgs)
	argv[0] = "/usr/bin/api"
	argv[1] = fill("--long=", MaxArgLen)
	rest := MaxCommandSize - int(commandSize(argv[:2])) - (MaxCommandArgs-2)*int(execSize(0))
	for i := 2; i < MaxCommandArgs; i++ {
		n := rest / (MaxCommandArgs - i)
		argv[i] = fill("", n)
		rest -= n
	}
	return argv
}

// maxEnv returns MaxEnvVars variables that take exactly MaxEnvSize, one of
// them MaxArgLen long as NAME=value.
func maxEnv() map[string]string {
	env := make(map[string]string, MaxEnvVars)
	env["LONG"] = fill("", MaxArgLen-len("LONG="))
	rest := MaxEnvSize - int(envSize(env))
	for i := 1; i < MaxEnvVars; i++ {
		k := fmt.Sprintf("V%04d", i)
		n := rest/(MaxEnvVars-i) - int(execSize(len(k)+1))
		env[k] = fill("", n)
		rest -= int(execSize(len(k) + 1 + n))
	}
	return env
}

// maxConfig returns a configuration with every value at its upper bound:
// MaxPrograms programs; the first ten share one command and env at their
// bounds (as aliases would in a file), the first has every other setting
// at its bound too, and the commands of all take MaxExecTotal together.
// With full false it has the first program only.
func maxConfig(full bool) *Config {
	i64 := func(n int64) *int64 { return &n }
	p := DefaultProgram()
	p.Name = fill("a", MaxNameLen)
	p.Command = maxCommand()
	p.Env = maxEnv()
	p.Dir = fill("/srv/", MaxPathLen)
	p.User = fill("u", MaxUserLen)
	p.Group = fill("g", MaxUserLen)
	p.Restart = Restart{
		Policy:     PolicyOnFailure,
		Backoff:    Backoff{Initial: MaxDelay, Max: MaxDelay, Multiplier: MaxMultiplier, Jitter: 1},
		ResetAfter: MaxDelay,
		Limit:      Limit{Burst: MaxLimitBurst, Interval: MaxDelay, Action: ActionGiveUp},
		OOMHold:    new(false),
		OOMHoldMax: new(MaxOOMHoldMax),
		OOMLoop:    MaxOOMLoop,
	}
	p.Stop = Stop{Signal: maxSignal, Timeout: MaxStopTimeout}
	p.Output = Output{File: fill("/var/log/", MaxPathLen), MaxSize: MaxOutputMaxSize, MaxFiles: MaxOutputFiles, Timestamps: true}
	p.Memory = &Memory{
		Max: i64(MaxMemory), High: i64(MaxMemory), SwapMax: i64(MaxMemory),
		Recycle:   &Recycle{Above: Threshold{Percent: 100}, For: MaxRecycleFor, Measure: MeasureAnon},
		WarnAbove: &Threshold{Bytes: MaxMemory - 1},
	}
	p.Match = &Match{
		Comm:    fill("c", maxComm),
		Exe:     fill("/usr/bin/", MaxPathLen),
		Cmdline: fill("", MaxCmdlineLen),
		Pidfile: fill("/run/", MaxPathLen),
		User:    fill("m", MaxUserLen),
	}
	p.OnMissing = OnMissingWait
	p.OnExit = &Hook{
		Command: []string{"/usr/local/bin/notify", fill("--x=", MaxArgLen)},
		Reasons: append([]string(nil), ExitReasons...),
		Timeout: MaxHookTimeout,
		User:    fill("h", MaxUserLen),
		Group:   fill("k", MaxUserLen),
	}

	c := &Config{File: "max.yaml", Limits: Limits{RestartsPerSecond: MaxRestartsPerSecond, RestartBurst: MaxRestartBurst, OOMHold: true, OOMHoldMax: MaxOOMHoldMax}}
	c.Hooks.OnExit = &Hook{Command: []string{"notify"}, Timeout: MinHookTimeout}
	c.Programs = []Program{p}
	if !full {
		return c
	}
	c.Programs = make([]Program, MaxPrograms)
	c.Programs[0] = p
	for i := 1; i < MaxPrograms; i++ {
		q := DefaultProgram()
		q.Name = "p" + strconv.Itoa(i)
		q.Command = []string{"/bin/p"}
		if i < 10 {
			q.Command, q.Env = p.Command, p.Env
		}
		c.Programs[i] = q
	}
	// Fill the last program's command up to MaxExecTotal.
	var total int64
	for _, q := range c.Programs {
		total += commandSize(q.Command) + envSize(q.Env)
		if q.OnExit != nil {
			total += commandSize(q.OnExit.Command)
		}
	}
	total += commandSize(c.Hooks.OnExit.Command)
	last := &c.Programs[MaxPrograms-1]
	for rest := MaxExecTotal - total; rest > 0; {
		n := min(rest, MaxArgLen+execSize(0)) - execSize(0)
		last.Command = append(last.Command, fill("", int(n)))
		rest -= execSize(int(n))
	}
	return c
}

// render writes c as YAML, with the command and env of the first program
// anchored and every later use of the same ones an alias. Strings are
// JSON-quoted, which YAML reads as double-quoted scalars.
func render(c *Config) string {
	var b strings.Builder
	q := func(s string) string {
		j, _ := json.Marshal(s)
		return string(j)
	}
	same := func(a, b any) bool {
		va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
		return va.Len() > 0 && vb.Len() > 0 && va.Pointer() == vb.Pointer()
	}
	fmt.Fprintf(&b, "limits: {restarts_per_second: %s, restart_burst: %d, oom_hold: %v, oom_hold_max: %v}\n",
		strconv.FormatFloat(c.Limits.RestartsPerSecond, 'g', -1, 64), c.Limits.RestartBurst, c.Limits.OOMHold, c.Limits.OOMHoldMax)
	hook := func(h *Hook) string {
		args := make([]string, len(h.Command))
		for i, a := range h.Command {
			args[i] = q(a)
		}
		s := fmt.Sprintf("{command: [%s], timeout: %v, user: %s, group: %s", strings.Join(args, ", "), h.Timeout, q(h.User), q(h.Group))
		if h.Reasons != nil {
			s += ", reasons: [" + strings.Join(h.Reasons, ", ") + "]"
		}
		return s + "}"
	}
	if c.Hooks.OnExit != nil {
		b.WriteString("hooks: {on_exit: " + hook(c.Hooks.OnExit) + "}\n")
	}
	b.WriteString("programs:\n")
	def := DefaultProgram()
	for i, p := range c.Programs {
		fmt.Fprintf(&b, "  - name: %s\n", q(p.Name))
		switch {
		case i > 0 && same(p.Command, c.Programs[0].Command):
			b.WriteString("    command: *cmd\n")
		default:
			b.WriteString("    command: ")
			if i == 0 {
				b.WriteString("&cmd ")
			}
			b.WriteString("[")
			for j, a := range p.Command {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(q(a))
			}
			b.WriteString("]\n")
		}
		switch {
		case len(p.Env) == 0:
		case i > 0 && same(p.Env, c.Programs[0].Env):
			b.WriteString("    env: *env\n")
		default:
			b.WriteString("    env: ")
			if i == 0 {
				b.WriteString("&env ")
			}
			b.WriteString("{")
			j := 0
			for k, v := range p.Env {
				if j > 0 {
					b.WriteString(", ")
				}
				j++
				fmt.Fprintf(&b, "%s: %s", q(k), q(v))
			}
			b.WriteString("}\n")
		}
		for _, kv := range [][2]string{{"dir", p.Dir}, {"user", p.User}, {"group", p.Group}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "    %s: %s\n", kv[0], q(kv[1]))
			}
		}
		if p.Restart != def.Restart {
			r := p.Restart
			fmt.Fprintf(&b, "    restart: {policy: %s, backoff: {initial: %v, max: %v, multiplier: %s, jitter: %s}, reset_after: %v, limit: {burst: %d, interval: %v, action: %s}, oom_loop: %d",
				r.Policy, r.Backoff.Initial, r.Backoff.Max, strconv.FormatFloat(r.Backoff.Multiplier, 'g', -1, 64), strconv.FormatFloat(r.Backoff.Jitter, 'g', -1, 64),
				r.ResetAfter, r.Limit.Burst, r.Limit.Interval, r.Limit.Action, r.OOMLoop)
			if r.OOMHold != nil {
				fmt.Fprintf(&b, ", oom_hold: %v", *r.OOMHold)
			}
			if r.OOMHoldMax != nil {
				fmt.Fprintf(&b, ", oom_hold_max: %v", *r.OOMHoldMax)
			}
			b.WriteString("}\n")
		}
		if p.Stop != def.Stop {
			fmt.Fprintf(&b, "    stop: {signal: %d, timeout: %v}\n", p.Stop.Signal, p.Stop.Timeout)
		}
		if p.Output != def.Output {
			fmt.Fprintf(&b, "    output: {file: %s, max_size: %d, max_files: %d, timestamps: %v}\n", q(p.Output.File), p.Output.MaxSize, p.Output.MaxFiles, p.Output.Timestamps)
		}
		if m := p.Memory; m != nil {
			var parts []string
			for _, kv := range []struct {
				k string
				v *int64
			}{{"max", m.Max}, {"high", m.High}, {"swap_max", m.SwapMax}} {
				if kv.v != nil {
					parts = append(parts, fmt.Sprintf("%s: %d", kv.k, *kv.v))
				}
			}
			if r := m.Recycle; r != nil {
				parts = append(parts, fmt.Sprintf("recycle: {above: %s, for: %v, measure: %s}", q(r.Above.String()), r.For, q(string(r.Measure))))
			}
			if m.WarnAbove != nil {
				parts = append(parts, "warn_above: "+q(m.WarnAbove.String()))
			}
			b.WriteString("    memory: {" + strings.Join(parts, ", ") + "}\n")
		}
		if m := p.Match; m != nil {
			fmt.Fprintf(&b, "    match: {comm: %s, exe: %s, cmdline: %s, pidfile: %s, user: %s}\n", q(m.Comm), q(m.Exe), q(m.Cmdline), q(m.Pidfile), q(m.User))
		}
		if p.OnMissing != def.OnMissing {
			fmt.Fprintf(&b, "    on_missing: %s\n", p.OnMissing)
		}
		if p.OnExit != nil {
			b.WriteString("    on_exit: " + hook(p.OnExit) + "\n")
		}
	}
	return b.String()
}

// TestBoundsAccepted checks that a configuration with every value at its
// bound is valid, in code and as a file.
func TestBoundsAccepted(t *testing.T) {
	c := maxConfig(true)
	if got := commandSize(c.Programs[0].Command); got != MaxCommandSize || len(c.Programs[0].Command) != MaxCommandArgs {
		t.Fatalf("maxCommand: %d arguments, size %d", len(c.Programs[0].Command), got)
	}
	if got := envSize(c.Programs[0].Env); got != MaxEnvSize || len(c.Programs[0].Env) != MaxEnvVars {
		t.Fatalf("maxEnv: %d variables, size %d", len(c.Programs[0].Env), got)
	}
	re, err := syntax.Parse(c.Programs[0].Match.Cmdline, syntax.Perl)
	if err != nil || regexpSize(re) != MaxCmdlineSize {
		t.Fatalf("cmdline size %d, %v", regexpSize(re), err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}

	text := render(c)
	if len(text) > MaxFileSize {
		t.Fatalf("rendered file is %d bytes, more than MaxFileSize", len(text))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	parsed, err := Parse("max.yaml", []byte(text))
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Parse: %v", firstErrors(err))
	}
	// The file has 10 programs of 1.5 MiB each through aliases; decoding
	// copies only string headers for them.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("Parse allocated %d MiB", alloc>>20)
	}
	t.Logf("%d bytes parsed in %v", len(text), elapsed)
	for i := range c.Programs {
		c.Programs[i].Line = parsed.Programs[i].Line
	}
	c.File = parsed.File
	if !reflect.DeepEqual(parsed, c) {
		for i := range c.Programs {
			if !reflect.DeepEqual(parsed.Programs[i], c.Programs[i]) {
				t.Fatalf("programs[%d] differs after a round trip through YAML", i)
			}
		}
		t.Fatalf("limits differ: %+v, want %+v", parsed.Limits, c.Limits)
	}
}

// firstErrors shortens an error list for a message.
func firstErrors(err error) string {
	list := Errors(err)
	var b strings.Builder
	for i, e := range list {
		if i == 5 {
			fmt.Fprintf(&b, "\n... and %d more", len(list)-i)
			break
		}
		b.WriteString("\n" + truncate(e.Error()))
	}
	return b.String()
}

// TestBoundsRefused takes the configuration of TestBoundsAccepted past each
// bound in turn (by one, or by the next float64 for numbers), and checks
// that that field is refused, in code and as a file. Bounds on a program
// are tried on the first program alone, to keep the test quick.
func TestBoundsRefused(t *testing.T) {
	next := func(f float64) float64 { return math.Nextafter(f, math.Inf(1)) }
	prev := func(f float64) float64 { return math.Nextafter(f, math.Inf(-1)) }
	p0 := func(c *Config) *Program { return &c.Programs[0] }
	setCommand := func(c *Config, change func(argv []string) []string) {
		p0(c).Command = change(append([]string(nil), p0(c).Command...))
	}
	setEnv := func(c *Config, change func(env map[string]string)) {
		env := cloneEnv(p0(c).Env)
		change(env)
		p0(c).Env = env
	}
	tests := []struct {
		field  string
		mutate func(c *Config)
	}{
		{"limits.restarts_per_second", func(c *Config) { c.Limits.RestartsPerSecond = next(MaxRestartsPerSecond) }},
		{"limits.restarts_per_second", func(c *Config) { c.Limits.RestartsPerSecond = prev(MinRestartsPerSecond) }},
		{"limits.restart_burst", func(c *Config) { c.Limits.RestartBurst++ }},
		{"programs", func(c *Config) {
			for len(c.Programs) <= MaxPrograms {
				c.Programs = append(c.Programs, codeProgram("p"+strconv.Itoa(len(c.Programs))))
			}
		}},
		{"programs", func(c *Config) {
			// Ten programs with the first one's command and env and one with
			// its command alone take MaxExecTotal; one byte more.
			for i := 1; i <= 10; i++ {
				q := codeProgram("p" + strconv.Itoa(i))
				q.Command, q.Env = p0(c).Command, p0(c).Env
				c.Programs = append(c.Programs, q)
			}
			last := &c.Programs[10]
			last.Env = nil
			last.Command = append([]string(nil), last.Command...)
			last.Command[len(last.Command)-1] += "x"
		}},
		{"programs[0].name", func(c *Config) { p0(c).Name += "a" }},
		{"programs[0].command", func(c *Config) {
			setCommand(c, func(argv []string) []string { return append(argv, "") })
		}},
		{"programs[0].command", func(c *Config) {
			setCommand(c, func(argv []string) []string { argv[2] += "x"; return argv })
		}},
		{"programs[0].command[1]", func(c *Config) {
			setCommand(c, func(argv []string) []string { argv[1] += "x"; argv[2] = argv[2][1:]; return argv })
		}},
		{"programs[0].env", func(c *Config) {
			setEnv(c, func(env map[string]string) { env["V0001"] += "x" })
		}},
		{"programs[0].env", func(c *Config) {
			setEnv(c, func(env map[string]string) { env["V0001"] = ""; env["V9999"] = "" })
		}},
		{"programs[0].env.LONG", func(c *Config) {
			setEnv(c, func(env map[string]string) { env["LONG"] += "x"; env["V0001"] = env["V0001"][1:] })
		}},
		{"programs[0].dir", func(c *Config) { p0(c).Dir += "x" }},
		{"programs[0].user", func(c *Config) { p0(c).User += "x" }},
		{"programs[0].group", func(c *Config) { p0(c).Group += "x" }},
		{"programs[0].restart.backoff.initial", func(c *Config) { p0(c).Restart.Backoff.Initial++ }},
		{"programs[0].restart.backoff.max", func(c *Config) { p0(c).Restart.Backoff.Max++ }},
		{"programs[0].restart.backoff.multiplier", func(c *Config) { p0(c).Restart.Backoff.Multiplier = next(MaxMultiplier) }},
		{"programs[0].restart.backoff.jitter", func(c *Config) { p0(c).Restart.Backoff.Jitter = next(1) }},
		{"programs[0].restart.reset_after", func(c *Config) { p0(c).Restart.ResetAfter++ }},
		{"programs[0].restart.limit.burst", func(c *Config) { p0(c).Restart.Limit.Burst++ }},
		{"programs[0].restart.limit.interval", func(c *Config) { p0(c).Restart.Limit.Interval++ }},
		{"programs[0].stop.signal", func(c *Config) { p0(c).Stop.Signal++ }},
		{"programs[0].stop.timeout", func(c *Config) { p0(c).Stop.Timeout++ }},
		{"programs[0].output.file", func(c *Config) { p0(c).Output.File += "x" }},
		{"programs[0].output.max_size", func(c *Config) { p0(c).Output.MaxSize++ }},
		{"programs[0].output.max_size", func(c *Config) { p0(c).Output.MaxSize = MinOutputMaxSize - 1 }},
		{"programs[0].output.max_files", func(c *Config) { p0(c).Output.MaxFiles++ }},
		{"programs[0].output.max_files", func(c *Config) { p0(c).Output.MaxFiles = 0 }},
		{"programs[0].memory.max", func(c *Config) { *p0(c).Memory.Max++ }},
		{"programs[0].memory.high", func(c *Config) { *p0(c).Memory.High++ }},
		{"programs[0].memory.swap_max", func(c *Config) { *p0(c).Memory.SwapMax++ }},
		{"programs[0].memory.recycle.above", func(c *Config) { p0(c).Memory.Recycle.Above.Percent = next(100) }},
		{"programs[0].memory.recycle.above", func(c *Config) { p0(c).Memory.Recycle.Above = Threshold{Bytes: MaxMemory + 1} }},
		{"programs[0].memory.recycle.above", func(c *Config) { p0(c).Memory.Recycle.Above = Threshold{Bytes: MinMemory - 1} }},
		{"programs[0].memory.recycle.for", func(c *Config) { p0(c).Memory.Recycle.For++ }},
		{"programs[0].memory.recycle.for", func(c *Config) { p0(c).Memory.Recycle.For = -1 }},
		{"programs[0].memory.warn_above", func(c *Config) { p0(c).Memory.WarnAbove.Bytes = MaxMemory + 1 }},
		{"programs[0].memory.warn_above", func(c *Config) { p0(c).Memory.WarnAbove.Bytes = MinMemory - 1 }},
		{"programs[0].memory.warn_above", func(c *Config) { p0(c).Memory.WarnAbove.Bytes = MaxMemory }},
		{"programs[0].restart.oom_hold_max", func(c *Config) { *p0(c).Restart.OOMHoldMax++ }},
		{"programs[0].restart.oom_hold_max", func(c *Config) { *p0(c).Restart.OOMHoldMax = -1 }},
		{"programs[0].restart.oom_loop", func(c *Config) { p0(c).Restart.OOMLoop++ }},
		{"programs[0].restart.oom_loop", func(c *Config) { p0(c).Restart.OOMLoop = -1 }},
		{"limits.oom_hold_max", func(c *Config) { c.Limits.OOMHoldMax++ }},
		{"limits.oom_hold_max", func(c *Config) { c.Limits.OOMHoldMax = -1 }},
		{"programs[0].match.comm", func(c *Config) { p0(c).Match.Comm += "x" }},
		{"programs[0].match.exe", func(c *Config) { p0(c).Match.Exe += "x" }},
		{"programs[0].match.cmdline", func(c *Config) { p0(c).Match.Cmdline += "x" }},
		{"programs[0].match.cmdline", func(c *Config) { p0(c).Match.Cmdline = "(?:aaaa){1000}a{97}" }},
		{"programs[0].match.pidfile", func(c *Config) { p0(c).Match.Pidfile += "x" }},
		{"programs[0].match.user", func(c *Config) { p0(c).Match.User += "x" }},
		{"programs[0].on_exit.command[1]", func(c *Config) {
			h := *p0(c).OnExit
			h.Command = []string{h.Command[0], h.Command[1] + "x"}
			p0(c).OnExit = &h
		}},
		{"programs[0].on_exit.reasons", func(c *Config) { p0(c).OnExit.Reasons = append(p0(c).OnExit.Reasons, "signal") }},
		{"programs[0].on_exit.timeout", func(c *Config) { p0(c).OnExit.Timeout++ }},
		{"programs[0].on_exit.user", func(c *Config) { p0(c).OnExit.User += "x" }},
		{"programs[0].on_exit.group", func(c *Config) { p0(c).OnExit.Group += "x" }},
		{"hooks.on_exit.timeout", func(c *Config) { c.Hooks.OnExit.Timeout-- }},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i)+"/"+tt.field, func(t *testing.T) {
			c := maxConfig(false)
			tt.mutate(c)
			checkRefused(t, c, tt.field)
		})
	}
}

// checkRefused checks that Validate and Parse refuse c, naming field.
func checkRefused(t *testing.T, c *Config, field string) {
	t.Helper()
	check := func(how string, err error) {
		t.Helper()
		for _, e := range Errors(err) {
			if e.Field == field {
				return
			}
		}
		t.Errorf("%s past its bound, %s: no error names it:%s", field, how, firstErrors(err))
	}
	check("Validate", c.Validate())
	if !strings.Contains(field, "command") && !strings.Contains(field, "env") && field != "programs" {
		// Parsing a megabyte of arguments is slow under the race
		// detector; other fields are refused alike without them.
		c.Programs[0].Command, c.Programs[0].Env = []string{"/usr/bin/api"}, nil
	}
	_, err := Parse("max.yaml", []byte(render(c)))
	if err == nil {
		t.Errorf("%s past its bound: Parse accepted it", field)
		return
	}
	check("Parse", err)
}

func cloneEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

// TestBoundsCheap checks that the restart policy and limiter built from the
// largest values Validate accepts take little memory: nothing in them is
// sized by a configured number.
func TestBoundsCheap(t *testing.T) {
	c := maxConfig(false)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := c.Programs[0]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(10, func() {
		policy := restart.NewPolicy(policyConfig(p))
		limiter := restart.NewLimiter(c.Limits.RestartsPerSecond, c.Limits.RestartBurst)
		now := time.Unix(0, 0)
		policy.Started(now)
		policy.Exited(now, now.Add(time.Millisecond))
		limiter.Reserve(now)
	})
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<10 {
		t.Errorf("building a policy and a limiter at the bounds allocated %d bytes", grown)
	}
	if allocs > 20 {
		t.Errorf("building a policy and a limiter at the bounds took %v allocations", allocs)
	}
}

// policyConfig maps a program's restart settings to a restart.PolicyConfig
// as the supervisor does: restart treats a jitter of 0 as "default", where
// the configuration means none.
func policyConfig(p Program) restart.PolicyConfig {
	b := p.Restart.Backoff
	if b.Jitter == 0 {
		b.Jitter = -1
	}
	return restart.PolicyConfig{
		Initial:    b.Initial,
		Max:        b.Max,
		Multiplier: b.Multiplier,
		Jitter:     b.Jitter,
		ResetAfter: p.Restart.ResetAfter,
		Burst:      p.Restart.Limit.Burst,
		Interval:   p.Restart.Limit.Interval,
		GiveUp:     p.Restart.Limit.Action == ActionGiveUp,
	}
}

// TestReproBurst is the configuration from the security review: a burst
// that passed check and made the daemon preallocate 2^63 start times.
func TestReproBurst(t *testing.T) {
	_, err := Parse("repro.yaml", []byte(withProgram("restart:", "  limit: {burst: 9223372036854775807}")))
	want := "repro.yaml:5: programs[0].restart.limit.burst: must be at most 1000, not 9223372036854775807"
	if err == nil || err.Error() != want {
		t.Errorf("Parse() = %v, want %s", err, want)
	}
}

func TestFileSize(t *testing.T) {
	dir := t.TempDir()
	// Comments only: the largest file is valid and has no programs.
	// A file at the bound is read and parsed: the YAML parser, not the
	// size, refuses this one, at once.
	at := "\t" + strings.Repeat("x", MaxFileSize-1)
	path := filepath.Join(dir, "at.yaml")
	if err := os.WriteFile(path, []byte(at), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), ": yaml: ") {
		t.Errorf("Load(%d bytes) = %v, want a YAML error", len(at), err)
	}

	path = filepath.Join(dir, "over.yaml")
	if err := os.WriteFile(path, []byte(at+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := path + ": config: file is larger than the 4MiB allowed"
	if _, err := Load(path); err == nil || err.Error() != want {
		t.Errorf("Load(%d bytes) = %v, want %s", len(at)+1, err, want)
	}
	if _, err := Parse("over.yaml", []byte(at+"\n")); err == nil || err.Error() != "over.yaml: config: file is larger than the 4MiB allowed" {
		t.Errorf("Parse(%d bytes) = %v", len(at)+1, err)
	}

	// A file that goes on and on is read only up to the cap. The writer
	// holds the FIFO open for reading too, so that it neither blocks in
	// open nor stops at the first byte Load leaves unread; it gives up
	// after 64 MiB, or when it is closed.
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan int64, 1) // one total, sent once
	go func() {
		var n int64
		chunk := []byte(strings.Repeat("#", 64<<10))
		for n < 64<<20 {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		_ = w.Close()
		written <- n
	}()
	if _, err := Load(fifo); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(endless FIFO) = %v", err)
	}
	_ = w.Close()
	if n := <-written; n > MaxFileSize+1<<20 {
		t.Errorf("Load read %d bytes of an endless FIFO, want at most %d", n, MaxFileSize+1)
	}
}

// TestParseCountsBeforeDecoding checks that an oversized list or mapping is
// refused before any of its entries is decoded, even when aliases make it.
func TestParseCountsBeforeDecoding(t *testing.T) {
	items := func(n int, item string) string {
		return "[" + strings.Repeat(item+", ", n-1) + item + "]"
	}
	var env strings.Builder
	env.WriteString("{")
	for i := range MaxEnvVars + 1 {
		fmt.Fprintf(&env, "V%d: x, ", i)
	}
	env.WriteString("}")
	tests := []struct {
		in   string
		want string
	}{
		{"programs: " + items(MaxPrograms+1, "{name: a, command: [a]}") + "\n",
			"demo.yaml:1: programs: must have at most 10000 programs, not 10001"},
		{"x: &a " + items(MaxCommandArgs+1, "a") + "\nprograms:\n  - name: api\n    command: *a\n",
			"demo.yaml:4: programs[0].command: must have at most 4096 arguments, not 4097"},
		{withProgram("env: " + env.String()),
			"demo.yaml:4: programs[0].env: must have at most 4096 variables, not 4097"},
	}
	for _, tt := range tests {
		_, err := Parse("demo.yaml", []byte(tt.in))
		list := Errors(err)
		found := false
		for _, e := range list {
			found = found || e.Error() == tt.want
		}
		if !found {
			t.Errorf("Parse: no error %q in%s", tt.want, firstErrors(err))
		}
	}
}

// TestParseTooManyProblems checks that a file with a problem on every line
// is reported with a bounded list, still in line order.
func TestParseTooManyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("programs:\n")
	for range 3000 {
		b.WriteString("  - 1\n")
	}
	_, err := Parse("demo.yaml", []byte(b.String()))
	list := Errors(err)
	if len(list) != maxProblems+1 {
		t.Fatalf("got %d problems, want %d and a note", len(list), maxProblems)
	}
	last := list[len(list)-1]
	if last.Field != "config" || last.Msg != "too many problems: only the first 1000 are listed" || last.Line < list[len(list)-2].Line {
		t.Errorf("last problem %q", last)
	}
	c := &Config{Limits: DefaultLimits()}
	for range 3000 {
		c.Programs = append(c.Programs, Program{})
	}
	if list := Errors(c.Validate()); len(list) != maxProblems+1 {
		t.Errorf("Validate: got %d problems, want %d and a note", len(list), maxProblems)
	}
}

// TestParseAliasBomb feeds alias bombs to Parse. The YAML library builds
// its node tree without expanding aliases and leaves that to us, so the
// classic exponential document (each level names the one below nine times)
// costs nothing until the decoder follows it; the decoder descends only
// where the schema has lists and mappings, and the node budget stops the
// expansion, quickly and in little memory.
func TestParseAliasBomb(t *testing.T) {
	laughs := func(leaf string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "  - &l0 [%s]\n", strings.TrimSuffix(strings.Repeat(leaf+", ", 9), ", "))
		for i := 1; i < 10; i++ {
			fmt.Fprintf(&b, "  - &l%d [%s]\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", "))
		}
		return b.String()
	}
	wide := func(n int) string {
		return strings.TrimSuffix(strings.Repeat("*p, ", n), ", ")
	}
	tests := []struct {
		name, in, want string
	}{
		{"laughs under an unknown key", "laughs:\n" + laughs("lol"), "laughs: unknown key"},
		{"laughs as the program list", "x:\n" + laughs("{name: a, command: [a]}") + "programs: *l9\n", "programs[0]: must be a mapping, not a list"},
		{"laughs as a command", "x:\n" + laughs("a") + "programs: [{name: a, command: *l9}]\n", "programs[0].command[0]: must be a string, not a list"},
		{"one program named 10000 times", "x: &c [" + strings.TrimSuffix(strings.Repeat("a, ", MaxCommandArgs), ", ") + "]\n" +
			"y: &p {name: a, command: *c}\nprograms: [" + wide(MaxPrograms) + "]\n", "config: too large: more than"},
	}
	for _, tt := range tests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := Parse("bomb.yaml", []byte(tt.in))
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse() = %s, want an error containing %q", tt.name, firstErrors(err), tt.want)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("%s: Parse allocated %d MiB", tt.name, alloc>>20)
		}
		if elapsed > 10*time.Second {
			t.Errorf("%s: Parse took %v", tt.name, elapsed)
		}
	}

	// Nesting is bounded by the YAML library itself.
	_, err := Parse("deep.yaml", []byte("programs: "+strings.Repeat("[", 20000)))
	if err == nil || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Errorf("Parse(deep nesting) = %v", err)
	}
}
