package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/units"
)

// nameRE is what a program name must match; "." and ".." are refused
// separately because names become file and cgroup directory names.
var nameRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)

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
	return join(v.errs)
}

// Validate checks one program on its own, as `respawnd exec` needs: every
// rule of Config.Validate except the uniqueness of names. Field names are
// relative to the program ("restart.backoff.max"), and errors carry neither
// file nor line.
func (p Program) Validate() error {
	v := &validator{}
	v.program("", &p)
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
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) config(c *Config) {
	v.limits("limits", &c.Limits)
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
}

func (v *validator) limits(pf string, l *Limits) {
	if f := childField(pf, "restarts_per_second"); !positiveFloat(l.RestartsPerSecond) {
		v.errorf(f, "must be a positive number, not %v", l.RestartsPerSecond)
	}
	if l.RestartBurst < 1 {
		v.errorf(childField(pf, "restart_burst"), "must be at least 1, not %d", l.RestartBurst)
	}
}

func (v *validator) program(pf string, p *Program) {
	f := func(name string) string { return childField(pf, name) }

	switch {
	case p.Name == "" && v.isSet(f("name")):
		v.errorf(f("name"), "must not be empty")
	case p.Name == "":
		v.errorf(f("name"), "is required")
	case p.Name == "." || p.Name == "..":
		v.errorf(f("name"), "must not be %q", p.Name)
	case !nameRE.MatchString(p.Name):
		v.errorf(f("name"), "invalid name %q: must match [a-z0-9_.-]+", p.Name)
	}

	switch {
	case len(p.Command) == 0 && v.isSet(f("command")):
		v.errorf(f("command"), "must not be empty")
	case len(p.Command) == 0:
		v.errorf(f("command"), "is required")
	case p.Command[0] == "":
		v.errorf(indexField(f("command"), 0), "must not be empty")
	}
	for i, arg := range p.Command {
		v.noNUL(indexField(f("command"), i), "", arg)
	}

	v.absPath(f("dir"), p.Dir)
	v.noNUL(f("user"), "", p.User)
	v.noNUL(f("group"), "", p.Group)

	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ef := childField(f("env"), k)
		switch {
		case k == "":
			v.errorf(ef, "variable name must not be empty")
		case strings.Contains(k, "="):
			v.errorf(ef, "variable name must not contain '='")
		default:
			v.noNUL(ef, "variable name ", k)
		}
		v.noNUL(ef, "value ", p.Env[k])
	}

	v.restart(f("restart"), &p.Restart)
	v.stop(f("stop"), &p.Stop)
	v.absPath(childField(f("output"), "file"), p.Output.File)
	if p.Memory != nil {
		v.memory(f("memory"), p.Memory)
	}
	if p.Match != nil {
		v.match(f("match"), p.Match)
	}
	v.onMissing(f("on_missing"), p)
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
	if _, err := m.CmdlineRegexp(); err != nil {
		v.errorf(f("cmdline"), "invalid regular expression: %s", regexpError(err))
	}
	v.noNUL(f("user"), "", m.User)
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
		v.errorf(field, "invalid on_missing %q (want start or wait)", o)
	}
	if p.Match == nil && (v.isSet(field) || o != "" && o != DefaultOnMissing) {
		v.errorf(field, "on_missing needs match: it says what to do when no process matches")
	}
}

func (v *validator) restart(pf string, r *Restart) {
	if !r.Policy.valid() {
		v.errorf(childField(pf, "policy"), "invalid policy %q (want always, on-failure, on-oom or never)", r.Policy)
	}

	bf := childField(pf, "backoff")
	initial, maxf := childField(bf, "initial"), childField(bf, "max")
	okInitial := v.positive(initial, r.Backoff.Initial)
	okMax := v.positive(maxf, r.Backoff.Max)
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
	}
	if j := r.Backoff.Jitter; math.IsNaN(j) || j < 0 || j > 1 {
		v.errorf(childField(bf, "jitter"), "must be between 0 and 1, not %v", j)
	}

	v.positive(childField(pf, "reset_after"), r.ResetAfter)

	lf := childField(pf, "limit")
	if r.Limit.Burst < 1 {
		v.errorf(childField(lf, "burst"), "must be at least 1, not %d", r.Limit.Burst)
	}
	v.positive(childField(lf, "interval"), r.Limit.Interval)
	if !r.Limit.Action.valid() {
		v.errorf(childField(lf, "action"), "invalid action %q (want backoff or give-up)", r.Limit.Action)
	}
}

func (v *validator) stop(pf string, s *Stop) {
	if !validSignal(s.Signal) {
		v.errorf(childField(pf, "signal"), "invalid signal %d", int(s.Signal))
	}
	v.positive(childField(pf, "timeout"), s.Timeout)
}

func (v *validator) memory(pf string, m *Memory) {
	maxf, high := childField(pf, "max"), childField(pf, "high")
	okMax := m.Max == nil || v.atLeastMin(maxf, *m.Max)
	okHigh := m.High == nil || v.atLeastMin(high, *m.High)
	if m.Max != nil && m.High != nil && okMax && okHigh && *m.High > *m.Max && !v.isBad(maxf) {
		v.errorf(high, "must not exceed memory.max (%s)", formatSize(*m.Max))
	}
	if m.SwapMax != nil && *m.SwapMax < 0 {
		v.errorf(childField(pf, "swap_max"), "must not be negative")
	}
}

// positive reports a duration that is zero or negative, and says whether d
// is fine.
func (v *validator) positive(field string, d time.Duration) bool {
	if d > 0 {
		return true
	}
	v.errorf(field, "must be positive, not %v", d)
	return false
}

// atLeastMin reports a memory limit below MinMemory, and says whether n is
// fine.
func (v *validator) atLeastMin(field string, n int64) bool {
	if n >= MinMemory {
		return true
	}
	v.errorf(field, "must be at least %s, not %s", formatSize(MinMemory), formatSize(n))
	return false
}

func (v *validator) absPath(field, p string) {
	if p == "" {
		return
	}
	if !filepath.IsAbs(p) {
		v.errorf(field, "must be an absolute path, not %q", p)
		return
	}
	v.noNUL(field, "", p)
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
