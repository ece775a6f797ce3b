package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/units"
	"golang.org/x/net/http/httpguts"
)

// nameRE is what a program name must match; "." and ".." are refused
// separately because names become file and cgroup directory names.
var nameRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)

// ReservedEnv is the environment variable respawnd sets in every program
// (the instance tag); a program's env may not set it.
const ReservedEnv = "RESPAWND_INSTANCE"

// maxComm is the longest process name the kernel keeps: TASK_COMM_LEN is
// 16 bytes including the terminating NUL (include/linux/sched.h), and longer
// names are cut to 15 bytes in /proc/PID/comm.
const maxComm = 15

// maxSignal is the largest signal number Linux knows (SIGRTMAX).
const maxSignal = 64

// Validate checks c as Parse would and returns every problem as an error
// built with errors.Join from *Error values (see Errors), or nil. Fields are
// named as in the file; a program's problems carry its Line, and are left
// without a line when Line is 0, as for a Config built in code. Validate
// does not apply defaults: build programs from DefaultProgram and limits
// from DefaultLimits.
func (c *Config) Validate() error {
	v := &validator{file: c.File, lines: map[string]int{}}
	for i, p := range c.Programs {
		if p.Line > 0 {
			v.lines[indexField("programs", i)] = p.Line
		}
	}
	v.config(c)
	v.finish()
	return join(v.errs)
}

// Validate checks one program on its own, as `respawnd exec` needs: every
// rule of Config.Validate except the uniqueness of names. Field names are
// relative to the program ("restart.backoff.max"), and errors carry neither
// file nor line.
func (p Program) Validate() error {
	v := &validator{}
	v.program("", &p)
	v.finish()
	return join(v.errs)
}

// validator holds the rules shared by Parse and Validate and gathers the
// problems they find.
type validator struct {
	file string
	// lines maps a field to the line of its key or list entry; Parse fills
	// it for every field present in the file.
	lines map[string]int
	// bad holds fields whose value could not be decoded; rules about them
	// (and about anything below them) are not checked again.
	bad  map[string]bool
	errs []*Error
	// tooMany says that problems beyond maxProblems were dropped.
	tooMany bool
	// execTotal sums the programs' commandSize and envSize.
	execTotal int64
}

// add records a problem, unless maxProblems are already recorded.
func (v *validator) add(e *Error) {
	if len(v.errs) >= maxProblems {
		v.tooMany = true
		return
	}
	v.errs = append(v.errs, e)
}

// finish reports that problems were dropped, on the line of the last one
// kept so that the list stays in line order.
func (v *validator) finish() {
	if !v.tooMany {
		return
	}
	line := 0
	for _, e := range v.errs {
		line = max(line, e.Line)
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Field: "config", Msg: fmt.Sprintf("too many problems: only the first %d are listed", maxProblems)})
	v.tooMany = false
}

// line returns the line of field, or of its nearest ancestor with one.
func (v *validator) line(field string) int {
	for f := field; ; f = parent(f) {
		if l, ok := v.lines[f]; ok {
			return l
		}
		if f == "" {
			return 0
		}
	}
}

// isSet reports whether field was present in the file.
func (v *validator) isSet(field string) bool {
	_, ok := v.lines[field]
	return ok
}

// isBad reports whether field or one of its ancestors failed to decode.
func (v *validator) isBad(field string) bool {
	if len(v.bad) == 0 {
		return false
	}
	for f := field; ; f = parent(f) {
		if v.bad[f] {
			return true
		}
		if f == "" {
			return false
		}
	}
}

// errorf reports a problem with field unless field already failed to decode.
func (v *validator) errorf(field, format string, args ...any) {
	if v.isBad(field) {
		return
	}
	v.add(&Error{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) config(c *Config) {
	v.limits("limits", &c.Limits)
	if h := c.Hooks.OnExit; h != nil {
		v.hook("hooks.on_exit", h, false)
	}
	if n := len(c.Programs); n > MaxPrograms {
		v.errorf("programs", "must have at most %d programs, not %d", MaxPrograms, n)
	}
	first := map[string]int{}
	for i := range c.Programs {
		pf := indexField("programs", i)
		p := &c.Programs[i]
		v.program(pf, p)
		if p.Name == "" || v.isBad(pf) {
			continue
		}
		j, dup := first[p.Name]
		if !dup {
			first[p.Name] = i
			continue
		}
		msg := fmt.Sprintf("duplicate name %q, first used by programs[%d]", p.Name, j)
		if l := v.line(indexField("programs", j)); l > 0 {
			msg += " on line " + strconv.Itoa(l)
		}
		v.errorf(childField(pf, "name"), "%s", msg)
	}
	if v.execTotal > MaxExecTotal {
		v.errorf("programs", "commands and environments of all programs must take at most %s together, an alias counted each time it is used, not %d bytes", formatSize(MaxExecTotal), v.execTotal)
	}
}

func (v *validator) limits(pf string, l *Limits) {
	switch f, r := childField(pf, "restarts_per_second"), l.RestartsPerSecond; {
	case !positiveFloat(r):
		v.errorf(f, "must be a positive number, not %v", r)
	case r < MinRestartsPerSecond:
		v.errorf(f, "must be at least %v (a restart every %v), not %v", MinRestartsPerSecond, time.Duration(float64(time.Second)/MinRestartsPerSecond), r)
	case r > MaxRestartsPerSecond:
		v.errorf(f, "must be at most %v, not %v", MaxRestartsPerSecond, r)
	}
	v.intRange(childField(pf, "restart_burst"), l.RestartBurst, 1, MaxRestartBurst)
	v.durationFrom0(childField(pf, "oom_hold_max"), l.OOMHoldMax, MaxOOMHoldMax)
}

func (v *validator) program(pf string, p *Program) {
	f := func(name string) string { return childField(pf, name) }

	switch {
	case !v.required(f("name"), p.Name == ""):
	case p.Name == "." || p.Name == "..":
		v.errorf(f("name"), "must not be %q", p.Name)
	case len(p.Name) > MaxNameLen:
		v.errorf(f("name"), "must be at most %d bytes, not %d", MaxNameLen, len(p.Name))
	case !nameRE.MatchString(p.Name):
		v.errorf(f("name"), "invalid name %q: must match [a-z0-9_.-]+", truncate(p.Name))
	}

	v.command(f("command"), p.Command)
	v.absPath(f("dir"), p.Dir)
	v.userName(f("user"), p.User)
	v.userName(f("group"), p.Group)
	v.env(f("env"), p.Env)

	v.restart(f("restart"), &p.Restart)
	v.stop(f("stop"), &p.Stop)
	v.output(f("output"), &p.Output)
	if p.Memory != nil {
		v.memory(f("memory"), p.Memory)
	}
	if p.Match != nil {
		v.match(f("match"), p.Match)
	}
	v.onMissing(f("on_missing"), p)
	if p.OnExit != nil {
		v.hook(f("on_exit"), p.OnExit, true)
	}
	if p.Health != nil {
		v.health(f("health"), p.Health)
	}
	if p.Notify != nil {
		v.notify(f("notify"), p.Notify)
		v.notifyEnv(f("env"), p.Env)
	}
}

// hook checks an on_exit section. mayBeOff says that an empty command is
// allowed and turns the hook off (a program's on_exit, not the default).
func (v *validator) hook(pf string, h *Hook, mayBeOff bool) {
	f := func(name string) string { return childField(pf, name) }
	cf := f("command")
	if len(h.Command) == 0 {
		switch {
		case !v.isSet(cf) && (v.isSet(pf) || !mayBeOff):
			v.errorf(cf, "is required")
		case !mayBeOff:
			v.errorf(cf, "must not be empty")
		default:
			// Turned off: anything else set would be ignored.
			if h.Reasons != nil || v.isSet(f("reasons")) {
				v.errorf(f("reasons"), "has no effect: the empty command turns the hook off")
			}
			if v.isSet(f("timeout")) {
				v.errorf(f("timeout"), "has no effect: the empty command turns the hook off")
			}
			if h.User != "" || v.isSet(f("user")) {
				v.errorf(f("user"), "has no effect: the empty command turns the hook off")
			}
			if h.Group != "" || v.isSet(f("group")) {
				v.errorf(f("group"), "has no effect: the empty command turns the hook off")
			}
		}
		return
	}
	v.lookedUpCommand(cf, h.Command)

	rf := f("reasons")
	switch {
	case h.Reasons == nil:
	case len(h.Reasons) == 0:
		v.errorf(rf, "must not be empty (leave it out for every reason but exit_success and memory_recycle)")
	case len(h.Reasons) > len(ExitReasons):
		v.errorf(rf, "must have at most %d reasons, not %d", len(ExitReasons), len(h.Reasons))
	}
	for i, r := range h.Reasons {
		if i >= len(ExitReasons) {
			break
		}
		switch j := slices.Index(h.Reasons, r); {
		case !slices.Contains(ExitReasons, r):
			v.errorf(indexField(rf, i), "invalid reason %q (want %s)", truncate(r), strings.Join(ExitReasons, ", "))
		case j < i:
			v.errorf(indexField(rf, i), "duplicate reason %q, first at reasons[%d]", r, j)
		}
	}

	switch tf, t := f("timeout"), h.Timeout; {
	case t < MinHookTimeout:
		v.errorf(tf, "must be at least %v, not %v", MinHookTimeout, t)
	case t > MaxHookTimeout:
		v.errorf(tf, "must be at most %v, not %v", MaxHookTimeout, t)
	}
	v.userName(f("user"), h.User)
	v.userName(f("group"), h.Group)
}

// lookedUpCommand checks the command of a hook or an exec probe: a
// program's command whose command[0] is an absolute path or a name looked up
// in PATH, never a path relative to a directory that respawnd does not
// promise.
func (v *validator) lookedUpCommand(field string, argv []string) {
	v.command(field, argv)
	if len(argv) == 0 {
		return
	}
	if a := argv[0]; strings.Contains(a, "/") && !filepath.IsAbs(a) {
		v.errorf(indexField(field, 0), "must be an absolute path or a name looked up in PATH, not the relative path %q", truncate(a))
	}
}

func (v *validator) output(pf string, o *Output) {
	v.absPath(childField(pf, "file"), o.File)
	maxSize, maxFiles := childField(pf, "max_size"), childField(pf, "max_files")
	for _, f := range []string{maxSize, maxFiles} {
		if o.File == "" && v.isSet(f) {
			v.errorf(f, "needs output.file: only a file is rotated")
		}
	}
	switch {
	case o.MaxSize == 0:
	case o.MaxSize < 0:
		v.errorf(maxSize, "must not be negative")
	case o.MaxSize < MinOutputMaxSize:
		v.errorf(maxSize, "must be 0 (never rotate) or at least %s, not %s", formatSize(MinOutputMaxSize), formatSize(o.MaxSize))
	case o.MaxSize > MaxOutputMaxSize:
		v.errorf(maxSize, "must be at most %s, not %s", formatSize(MaxOutputMaxSize), formatSize(o.MaxSize))
	}
	v.intRange(maxFiles, o.MaxFiles, 1, MaxOutputFiles)
}

// required reports a field whose value is empty: "is required" when the
// file leaves it out, "must not be empty" when it gives it empty. It
// returns whether the value is there.
func (v *validator) required(field string, empty bool) bool {
	switch {
	case !empty:
		return true
	case v.isSet(field):
		v.errorf(field, "must not be empty")
	default:
		v.errorf(field, "is required")
	}
	return false
}

func (v *validator) command(field string, argv []string) {
	switch {
	case !v.required(field, len(argv) == 0):
	case len(argv) > MaxCommandArgs:
		v.errorf(field, "must have at most %d arguments, not %d", MaxCommandArgs, len(argv))
	case argv[0] == "":
		v.errorf(indexField(field, 0), "must not be empty")
	}
	for i, arg := range argv {
		af := indexField(field, i)
		if len(arg) > MaxArgLen {
			v.errorf(af, "must be at most %d bytes (the kernel's MAX_ARG_STRLEN, 128KiB with the NUL), not %d", MaxArgLen, len(arg))
			continue
		}
		v.noNUL(af, "", arg)
	}
	size := commandSize(argv)
	v.execTotal += size
	if size > MaxCommandSize {
		v.errorf(field, "must take at most %s counted as execve does (each argument's bytes, a NUL and an 8-byte pointer), not %d bytes", formatSize(MaxCommandSize), size)
	}
}

func (v *validator) env(field string, env map[string]string) {
	if len(env) > MaxEnvVars {
		v.errorf(field, "must have at most %d variables, not %d", MaxEnvVars, len(env))
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ef := childField(field, k)
		if n := len(k) + 1 + len(env[k]); n > MaxArgLen {
			v.errorf(ef, "must be at most %d bytes as NAME=value (the kernel's MAX_ARG_STRLEN, 128KiB with the NUL), not %d", MaxArgLen, n)
			continue
		}
		switch {
		case k == "":
			v.errorf(ef, "variable name must not be empty")
		case strings.Contains(k, "="):
			v.errorf(ef, "variable name must not contain '='")
		case k == ReservedEnv:
			v.errorf(ef, "%s is reserved: respawnd sets it to know the program's processes again after its own restart", k)
		default:
			v.noNUL(ef, "variable name ", k)
		}
		v.noNUL(ef, "value ", env[k])
	}
	size := envSize(env)
	v.execTotal += size
	if size > MaxEnvSize {
		v.errorf(field, "must take at most %s counted as execve does (each NAME=value's bytes, a NUL and an 8-byte pointer), not %d bytes", formatSize(MaxEnvSize), size)
	}
}

// userName checks a user or group name or number.
func (v *validator) userName(field, s string) {
	if len(s) > MaxUserLen {
		v.errorf(field, "must be at most %d bytes (LOGIN_NAME_MAX is 256 with the NUL), not %d", MaxUserLen, len(s))
		return
	}
	v.noNUL(field, "", s)
}

func (v *validator) match(pf string, m *Match) {
	f := func(name string) string { return childField(pf, name) }
	badKey := slices.ContainsFunc(matchKeys, func(k string) bool { return v.isBad(f(k)) })
	if m.Comm == "" && m.Exe == "" && m.Cmdline == "" && m.Pidfile == "" && !badKey {
		if m.User == "" {
			v.errorf(pf, "must set at least one of comm, exe, cmdline or pidfile")
		} else {
			v.errorf(pf, "must set at least one of comm, exe, cmdline or pidfile; user only narrows them down")
		}
	}
	for _, k := range matchKeys {
		if v.isSet(f(k)) && matchValue(m, k) == "" {
			v.errorf(f(k), "must not be empty")
		}
	}

	if len(m.Comm) > maxComm {
		v.errorf(f("comm"), "must be at most %d bytes, not %d: the kernel cuts process names to %d bytes (TASK_COMM_LEN is 16), so it would never match", maxComm, len(m.Comm), maxComm)
	} else {
		v.noNUL(f("comm"), "", m.Comm)
	}
	v.absPath(f("exe"), m.Exe)
	v.absPath(f("pidfile"), m.Pidfile)
	v.cmdline(f("cmdline"), m)
	v.userName(f("user"), m.User)
}

// cmdline checks that m.Cmdline compiles, cheaply: its size is estimated
// from the parse tree before anything is compiled.
func (v *validator) cmdline(field string, m *Match) {
	if m.Cmdline == "" {
		return
	}
	if len(m.Cmdline) > MaxCmdlineLen {
		v.errorf(field, "must be at most %d bytes, not %d", MaxCmdlineLen, len(m.Cmdline))
		return
	}
	re, err := syntax.Parse(m.Cmdline, syntax.Perl)
	if err == nil {
		if n := regexpSize(re); n > MaxCmdlineSize {
			v.errorf(field, "must compile to at most %d instructions, not about %d (a repetition such as x{100} multiplies what it repeats)", MaxCmdlineSize, n)
			return
		}
		_, err = m.CmdlineRegexp()
	}
	if err != nil {
		v.errorf(field, "invalid regular expression: %s", regexpError(err))
	}
}

// matchValue returns the field of m named by its key in the file.
func matchValue(m *Match, key string) string {
	switch key {
	case "comm":
		return m.Comm
	case "exe":
		return m.Exe
	case "cmdline":
		return m.Cmdline
	case "pidfile":
		return m.Pidfile
	case "user":
		return m.User
	}
	return ""
}

// regexpError describes an error from regexp.Compile on one line.
func regexpError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s: %q", se.Code, truncate(se.Expr))
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (v *validator) onMissing(field string, p *Program) {
	o := p.OnMissing
	if !o.valid() && (o != "" || p.Match != nil) {
		v.errorf(field, "invalid on_missing %q (want start or wait)", truncate(string(o)))
	}
	if p.Match == nil && (v.isSet(field) || o != "" && o != DefaultOnMissing) {
		v.errorf(field, "on_missing needs match: it says what to do when no process matches")
	}
}

func (v *validator) restart(pf string, r *Restart) {
	if !r.Policy.valid() {
		v.errorf(childField(pf, "policy"), "invalid policy %q (want always, on-failure, on-oom or never)", truncate(string(r.Policy)))
	}

	bf := childField(pf, "backoff")
	initial, maxf := childField(bf, "initial"), childField(bf, "max")
	okInitial := v.duration(initial, r.Backoff.Initial, MaxDelay)
	okMax := v.duration(maxf, r.Backoff.Max, MaxDelay)
	if okInitial && okMax && r.Backoff.Initial > r.Backoff.Max && !v.isBad(initial) && !v.isBad(maxf) {
		// Blame the setting the file actually holds.
		if v.isSet(initial) && !v.isSet(maxf) {
			v.errorf(initial, "must not exceed backoff.max (%v)", r.Backoff.Max)
		} else {
			v.errorf(maxf, "must not be less than backoff.initial (%v)", r.Backoff.Initial)
		}
	}
	switch m := r.Backoff.Multiplier; {
	case math.IsNaN(m) || math.IsInf(m, 0):
		v.errorf(childField(bf, "multiplier"), "must be a finite number")
	case m < 1:
		v.errorf(childField(bf, "multiplier"), "must be at least 1, not %v", m)
	case m > MaxMultiplier:
		v.errorf(childField(bf, "multiplier"), "must be at most %v, not %v", MaxMultiplier, m)
	}
	if j := r.Backoff.Jitter; math.IsNaN(j) || j < 0 || j > 1 {
		v.errorf(childField(bf, "jitter"), "must be between 0 and 1, not %v", j)
	}

	v.duration(childField(pf, "reset_after"), r.ResetAfter, MaxDelay)

	lf := childField(pf, "limit")
	v.intRange(childField(lf, "burst"), r.Limit.Burst, 1, MaxLimitBurst)
	v.duration(childField(lf, "interval"), r.Limit.Interval, MaxDelay)
	if !r.Limit.Action.valid() {
		v.errorf(childField(lf, "action"), "invalid action %q (want backoff or give-up)", truncate(string(r.Limit.Action)))
	}

	if r.OOMHoldMax != nil {
		v.durationFrom0(childField(pf, "oom_hold_max"), *r.OOMHoldMax, MaxOOMHoldMax)
	}
	v.intRange(childField(pf, "oom_loop"), r.OOMLoop, 0, MaxOOMLoop)
}

func (v *validator) stop(pf string, s *Stop) {
	if !validSignal(s.Signal) {
		v.errorf(childField(pf, "signal"), "invalid signal %d", int(s.Signal))
	}
	v.duration(childField(pf, "timeout"), s.Timeout, MaxStopTimeout)
}

func (v *validator) memory(pf string, m *Memory) {
	maxf, high := childField(pf, "max"), childField(pf, "high")
	okMax := m.Max == nil || v.size(maxf, *m.Max, MinMemory)
	okHigh := m.High == nil || v.size(high, *m.High, MinMemory)
	if m.Max != nil && m.High != nil && okMax && okHigh && *m.High > *m.Max && !v.isBad(maxf) {
		v.errorf(high, "must not exceed memory.max (%s)", formatSize(*m.Max))
	}
	if m.SwapMax != nil {
		v.size(childField(pf, "swap_max"), *m.SwapMax, 0)
	}

	// limit is memory.max for the rules that compare with it: nil when it
	// is unset, and also when it is refused (its own error says why), in
	// which case maxOK is false and those rules are skipped.
	limit, maxOK := m.Max, okMax && !v.isBad(maxf)
	if !maxOK {
		limit = nil
	}
	var above int64
	okAbove := false
	if r := m.Recycle; r != nil {
		rf := childField(pf, "recycle")
		af := childField(rf, "above")
		if r.Above == (Threshold{}) && !v.isSet(af) {
			v.errorf(af, "is required (a size such as 460MiB, or a percentage of memory.max such as 90%%)")
		} else {
			above, okAbove = v.threshold(af, r.Above, limit, maxOK)
		}
		v.durationFrom0(childField(rf, "for"), r.For, MaxRecycleFor)
		if !r.Measure.valid() {
			v.errorf(childField(rf, "measure"), "invalid measure %q (want working_set, rss or anon)", truncate(string(r.Measure)))
		}
	}
	if m.WarnAbove != nil {
		wf := childField(pf, "warn_above")
		warn, okWarn := v.threshold(wf, *m.WarnAbove, limit, maxOK)
		if okWarn && okAbove && warn >= above {
			v.errorf(wf, "must be below recycle.above (%s), not %s", thresholdText(m.Recycle.Above, limit), thresholdText(*m.WarnAbove, limit))
		}
	}
}

// threshold checks t, given at field, against memory.max (limit, nil when
// unset), and returns it in bytes when it is fine. maxOK is false when
// memory.max is given but refused: then rules that need it are skipped.
func (v *validator) threshold(field string, t Threshold, limit *int64, maxOK bool) (int64, bool) {
	switch {
	case t.Bytes != 0 && t.Percent != 0:
		v.errorf(field, "must be either a size or a percentage, not both (%d bytes and %s%%)", t.Bytes, strconv.FormatFloat(t.Percent, 'f', -1, 64))
		return 0, false
	case t.Percent == 0:
		if !v.size(field, t.Bytes, MinMemory) {
			return 0, false
		}
		if limit != nil && t.Bytes > *limit {
			v.errorf(field, "must not exceed memory.max (%s)", formatSize(*limit))
			return 0, false
		}
		return t.Bytes, true
	case !(t.Percent > 0 && t.Percent <= 100): // NaN fails too
		v.errorf(field, "percentage must be above 0%% and at most 100%%, not %s", t)
		return 0, false
	case limit == nil:
		if maxOK {
			v.errorf(field, "%s needs memory.max: a percentage is a share of that limit", t)
		}
		return 0, false
	}
	n, _ := t.Resolve(*limit)
	if n < MinMemory {
		v.errorf(field, "must come to at least %s, not %s (%s of memory.max %s)", formatSize(MinMemory), formatSize(n), t, formatSize(*limit))
		return 0, false
	}
	return n, true
}

// thresholdText describes t for a message: a percentage names the limit it
// is a share of.
func thresholdText(t Threshold, limit *int64) string {
	if t.Percent != 0 && limit != nil {
		return t.String() + " of " + formatSize(*limit)
	}
	return t.String()
}

// duration reports a duration that is zero, negative or above limit, and
// says whether d is fine.
func (v *validator) duration(field string, d, limit time.Duration) bool {
	switch {
	case d <= 0:
		v.errorf(field, "must be positive, not %v", d)
	case d > limit:
		v.errorf(field, "must be at most %v, not %v", limit, d)
	default:
		return true
	}
	return false
}

// durationFrom0 reports a duration that is negative or above limit; 0 is
// fine.
func (v *validator) durationFrom0(field string, d, limit time.Duration) {
	switch {
	case d < 0:
		v.errorf(field, "must be at least 0s, not %v", d)
	case d > limit:
		v.errorf(field, "must be at most %v, not %v", limit, d)
	}
}

// intRange reports an integer outside [lo, hi].
func (v *validator) intRange(field string, n, lo, hi int) {
	switch {
	case n < lo:
		v.errorf(field, "must be at least %d, not %d", lo, n)
	case n > hi:
		v.errorf(field, "must be at most %d, not %d", hi, n)
	}
}

// size reports a memory limit below lo or above MaxMemory, and says
// whether n is fine.
func (v *validator) size(field string, n, lo int64) bool {
	switch {
	case n < 0 && lo == 0:
		v.errorf(field, "must not be negative")
	case n < lo:
		v.errorf(field, "must be at least %s, not %s", formatSize(lo), formatSize(n))
	case n > MaxMemory:
		v.errorf(field, "must be at most %s, not %s", formatSize(MaxMemory), formatSize(n))
	default:
		return true
	}
	return false
}

func (v *validator) absPath(field, p string) {
	switch {
	case p == "":
	case len(p) > MaxPathLen:
		v.errorf(field, "must be at most %d bytes (PATH_MAX is 4096 with the NUL), not %d", MaxPathLen, len(p))
	case !filepath.IsAbs(p):
		v.errorf(field, "must be an absolute path, not %q", truncate(p))
	default:
		v.noNUL(field, "", p)
	}
}

// noNUL reports a string that cannot be passed to the kernel.
func (v *validator) noNUL(field, what, s string) {
	if strings.IndexByte(s, 0) >= 0 {
		v.errorf(field, "%smust not contain a NUL byte", what)
	}
}

func positiveFloat(f float64) bool {
	return f > 0 && !math.IsInf(f, 0) // NaN fails f > 0
}

func validSignal(s syscall.Signal) bool {
	return s >= 1 && s <= maxSignal
}

// formatSize renders a byte count the way the file may write it.
func formatSize(n int64) string {
	if n < 0 {
		return strconv.FormatInt(n, 10) + "B"
	}
	return units.Base2Bytes(n).String()
}

// childField returns the path of key below parent. Keys other than plain
// words are quoted so that paths stay unambiguous.
func childField(parent, key string) string {
	if !plainKey(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexField returns the path of list entry i below parent.
func indexField(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parent undoes childField and indexField; the parent of a top-level field
// is "".
func parent(field string) string {
	if strings.HasSuffix(field, `"]`) {
		// A quoted key: find the `["` that opens a valid quoted string.
		for end := len(field); end > 0; {
			i := strings.LastIndex(field[:end], `["`)
			if i < 0 {
				break
			}
			if _, err := strconv.Unquote(field[i+1 : len(field)-1]); err == nil {
				return field[:i]
			}
			end = i
		}
	}
	if strings.HasSuffix(field, "]") {
		if i := strings.LastIndexByte(field, '['); i >= 0 {
			return field[:i]
		}
	}
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[:i]
	}
	return ""
}

func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// notifyEnv are the variables respawnd sets in a program with notify, as
// systemd does for a service of Type=notify or with WatchdogSec=.
var notifyEnv = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}

// probeKeys are the keys of health that name a probe, in the order of
// healthKeys.
var probeKeys = []string{"http", "tcp", "exec"}

func (v *validator) health(pf string, h *Health) {
	f := func(name string) string { return childField(pf, name) }

	var probes []string
	for _, k := range probeKeys {
		if probeSet(h, k) {
			probes = append(probes, k)
		}
	}
	badProbe := slices.ContainsFunc(probeKeys, func(k string) bool { return v.isBad(f(k)) })
	switch {
	case len(probes) == 0 && !badProbe:
		v.errorf(pf, "must set one of http, tcp or exec")
	case len(probes) > 1:
		for _, k := range probes[1:] {
			v.errorf(f(k), "must not be set together with %s: a health check has one probe", probes[0])
		}
	}

	if pr := h.HTTP; pr != nil {
		hf := f("http")
		v.probeURL(childField(hf, "url"), pr.URL)
		v.statusRange(childField(hf, "expect_status"), pr.ExpectStatus)
		v.headers(childField(hf, "headers"), pr.Headers)
	}
	if t := h.TCP; t != nil {
		v.tcpAddress(childField(f("tcp"), "address"), t.Address)
	}
	if e := h.Exec; e != nil {
		v.lookedUpCommand(childField(f("exec"), "command"), e.Command)
	}

	period, timeout := f("period"), f("timeout")
	okPeriod := v.durationIn(period, h.Period, MinHealthPeriod, MaxHealthPeriod)
	switch {
	case h.Timeout <= 0:
		v.errorf(timeout, "must be positive, not %v", h.Timeout)
	case h.Timeout > h.Period && okPeriod && !v.isBad(period):
		// Blame the setting the file actually holds.
		if v.isSet(period) && !v.isSet(timeout) {
			v.errorf(period, "must not be less than timeout (%v): a probe may not outlast its period", h.Timeout)
		} else {
			v.errorf(timeout, "must not exceed period (%v): a probe may not outlast its period", h.Period)
		}
	}
	v.intRange(f("failures"), h.Failures, 1, MaxHealthFailures)
	v.durationFrom0(f("startup_grace"), h.StartupGrace, MaxStartupGrace)
}

// probeSet reports whether the probe named by key is set in h.
func probeSet(h *Health, key string) bool {
	switch key {
	case "http":
		return h.HTTP != nil
	case "tcp":
		return h.TCP != nil
	case "exec":
		return h.Exec != nil
	}
	return false
}

// probeURL checks an HTTP probe's URL: absolute, http or https, with a host.
func (v *validator) probeURL(field, s string) {
	switch {
	case !v.required(field, s == ""):
		return
	case len(s) > MaxURLLen:
		v.errorf(field, "must be at most %d bytes, not %d", MaxURLLen, len(s))
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error() // without the URL, quoted in full
		}
		v.errorf(field, "invalid URL %q: %s", truncate(s), strings.Join(strings.Fields(msg), " "))
		return
	}
	switch port := u.Port(); {
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(field, "must be an absolute http:// or https:// URL, not %q", truncate(s))
	case u.Hostname() == "":
		v.errorf(field, "must name a host, as in http://127.0.0.1:8080/healthz, not %q", truncate(s))
	case port != "" && !validPort(port):
		v.errorf(field, "port must be a number from 1 to 65535, not %q", truncate(port))
	}
}

// statusRange checks an HTTP probe's expect_status.
func (v *validator) statusRange(field string, r StatusRange) {
	switch {
	case r.Min < 100 || r.Max > 599 || r.Max < 100 || r.Min > 599:
		v.errorf(field, "statuses must be from 100 to 599, not %s", statusText(r))
	case r.Min > r.Max:
		v.errorf(field, "must go from the lower status to the higher, not %s", statusText(r))
	}
}

// statusText writes r as the file does: "204" or "200-399".
func statusText(r StatusRange) string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// headers checks an HTTP probe's headers: names that HTTP accepts, each at
// most once whatever its case, and values without control characters, as
// Go's HTTP client demands (it refuses to send any other).
func (v *validator) headers(field string, hs map[string]string) {
	if len(hs) > MaxHealthHeaders {
		v.errorf(field, "must have at most %d headers, not %d", MaxHealthHeaders, len(hs))
	}
	names := make([]string, 0, len(hs))
	for k := range hs {
		names = append(names, k)
	}
	slices.Sort(names)
	first := map[string]string{}
	for _, k := range names {
		hf, val := childField(field, k), hs[k]
		if n := len(k) + len(": ") + len(val); n > MaxHeaderLen {
			v.errorf(hf, "must be at most %d bytes as Name: value, not %d", MaxHeaderLen, n)
			continue
		}
		lower := strings.ToLower(k)
		switch prev, dup := first[lower]; {
		case !httpguts.ValidHeaderFieldName(k):
			v.errorf(hf, "invalid header name %q: must be an HTTP token (letters, digits and !#$%%&'*+-.^_`|~)", truncate(k))
			continue
		case dup:
			v.errorf(hf, "duplicate header: names are case-insensitive, and %q is set too", prev)
			continue
		}
		first[lower] = k
		switch {
		case !httpguts.ValidHeaderFieldValue(val):
			v.errorf(hf, "value must not contain control characters such as CR, LF or NUL")
		case lower == "host" && (val == "" || !httpguts.ValidHostHeader(val)):
			v.errorf(hf, "invalid Host %q: want host or host:port", truncate(val))
		}
	}
}

// tcpAddress checks a TCP probe's address: host:port with a numeric port.
func (v *validator) tcpAddress(field, a string) {
	switch {
	case !v.required(field, a == ""):
		return
	case len(a) > MaxAddressLen:
		v.errorf(field, "must be at most %d bytes, not %d", MaxAddressLen, len(a))
		return
	}
	host, port, err := net.SplitHostPort(a)
	switch {
	case err != nil:
		v.errorf(field, "invalid address %q: want host:port, such as 127.0.0.1:5432 or [::1]:5432", truncate(a))
	case host == "":
		v.errorf(field, "must name a host, as in 127.0.0.1:5432, not %q", truncate(a))
	case !validPort(port):
		v.errorf(field, "port must be a number from 1 to 65535, not %q", truncate(port))
	case strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		v.errorf(field, "host must not contain spaces or control characters")
	}
}

// validPort reports whether s is a port number from 1 to 65535, in decimal
// digits: a service name such as "http" would be looked up at every probe.
func validPort(s string) bool {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(s)
	return n >= 1 && n <= 65535
}

func (v *validator) notify(pf string, n *Notify) {
	rf, sf, wf := childField(pf, "ready"), childField(pf, "start_timeout"), childField(pf, "watchdog")
	noEffect := !n.Ready && n.Watchdog == 0
	if noEffect && !v.isBad(rf) && !v.isBad(wf) {
		v.errorf(pf, "has no effect: set ready, watchdog or both")
	}
	switch {
	case n.Ready:
		v.durationIn(sf, n.StartTimeout, MinStartTimeout, MaxStartTimeout)
	case noEffect || v.isBad(rf):
		// Said of the section already, or ready could not be read.
	case v.isSet(sf) || n.StartTimeout != 0 && n.StartTimeout != DefaultStartTimeout:
		v.errorf(sf, "has no effect without ready: true (it bounds the wait for READY=1)")
	}
	switch d := n.Watchdog; {
	case d == 0:
	case d < MinWatchdog:
		v.errorf(wf, "must be 0 (no watchdog) or at least %v, not %v", MinWatchdog, d)
	case d > MaxWatchdog:
		v.errorf(wf, "must be at most %v, not %v", MaxWatchdog, d)
	}
}

// notifyEnv refuses, in the env of a program with notify, the variables
// respawnd sets for it.
func (v *validator) notifyEnv(field string, env map[string]string) {
	for _, k := range notifyEnv {
		if _, ok := env[k]; ok {
			v.errorf(childField(field, k), "is reserved with notify: respawnd sets it")
		}
	}
}

// durationIn reports a duration outside [lo, hi], and says whether d is
// fine.
func (v *validator) durationIn(field string, d, lo, hi time.Duration) bool {
	switch {
	case d < lo:
		v.errorf(field, "must be at least %v, not %v", lo, d)
	case d > hi:
		v.errorf(field, "must be at most %v, not %v", hi, d)
	default:
		return true
	}
	return false
}
