package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// nodeBudget bounds the work of decoding a file of n bytes. Aliases let a
// small file name the same node many times over; without them a file has
// fewer nodes than bytes (and the decoder visits some nodes twice).
func nodeBudget(n int) int {
	return 1<<16 + 4*n
}

// The keys each mapping accepts, in the order the documentation lists them.
var (
	configKeys  = []string{"limits", "hooks", "programs"}
	hooksKeys   = []string{"on_exit"}
	hookKeys    = []string{"command", "reasons", "timeout", "user", "group"}
	limitsKeys  = []string{"restarts_per_second", "restart_burst", "oom_hold", "oom_hold_max"}
	programKeys = []string{"name", "command", "dir", "env", "user", "group", "restart", "stop", "output", "memory", "match", "on_missing", "on_exit", "health", "notify"}
	restartKeys = []string{"policy", "backoff", "reset_after", "limit", "oom_hold", "oom_hold_max", "oom_loop"}
	backoffKeys = []string{"initial", "max", "multiplier", "jitter"}
	limitKeys   = []string{"burst", "interval", "action"}
	stopKeys    = []string{"signal", "timeout"}
	outputKeys  = []string{"file", "max_size", "max_files", "timestamps"}
	memoryKeys  = []string{"max", "high", "swap_max", "recycle", "warn_above"}
	recycleKeys = []string{"above", "for", "measure"}
	matchKeys   = []string{"comm", "exe", "cmdline", "pidfile", "user"}
	healthKeys  = []string{"http", "tcp", "exec", "period", "timeout", "failures", "startup_grace"}
	httpKeys    = []string{"url", "expect_status", "headers"}
	tcpKeys     = []string{"address"}
	execKeys    = []string{"command"}
	notifyKeys  = []string{"ready", "start_timeout", "watchdog"}
)

// Load reads the configuration file at path and decodes it with Parse. An
// error reading the file is returned unchanged, so errors.Is(err,
// fs.ErrNotExist) works. Load reads at most one byte more than
// MaxFileSize, and a longer file is an error.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes a configuration from data, applies defaults to every
// optional setting left out, and validates the result. file names the source
// in Config.File and in errors.
//
// Decoding is strict: unknown and duplicate keys, values of the wrong type
// and more than one YAML document are errors. Parse reports every problem it
// finds, not just the first, as one error built with errors.Join from *Error
// values sorted by line; see Errors. On error the Config is nil. An empty
// file, or one without programs, is valid and has no programs. data longer
// than MaxFileSize is refused before it is parsed.
func Parse(file string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, join([]*Error{{File: file, Field: "config", Msg: fmt.Sprintf("file is larger than the %s allowed", formatSize(MaxFileSize))}})
	}
	d := &decoder{
		validator: validator{file: file, lines: map[string]int{}, bad: map[string]bool{}},
		maxNodes:  nodeBudget(len(data)),
	}
	c := &Config{File: file, Limits: DefaultLimits()}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	if root != nil {
		d.decodeRoot(root, c)
	}
	if !d.exhausted {
		d.validator.config(c)
	}
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		d.finish()
		return nil, join(d.errs)
	}
	return c, nil
}

// decoder walks a yaml.Node tree into a Config, recording the line of every
// field for the validator.
type decoder struct {
	validator
	nodes     int // visited so far
	maxNodes  int
	exhausted bool
}

// yamlLineRE finds the line in an error from the YAML parser.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// document parses data into a node tree and returns its root, or nil for an
// empty document.
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, d.syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, d.syntaxError(err)
	default:
		return nil, join([]*Error{{File: d.file, Line: extra.Line, Field: "config", Msg: "must be a single YAML document"}})
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := d.node(doc.Content[0])
	if isNull(root) {
		return nil, nil
	}
	return root, nil
}

// syntaxError turns an error from the YAML parser into an *Error.
func (d *decoder) syntaxError(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if msg == "" {
		msg = "invalid document"
	}
	return join([]*Error{{File: d.file, Line: line, Field: "yaml", Msg: msg}})
}

// node follows an alias to the node it names and counts the node against
// the budget.
func (d *decoder) node(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	d.nodes++
	switch {
	case d.exhausted:
	case d.nodes > d.maxNodes:
		d.exhausted = true
		d.add(&Error{File: d.file, Line: n.Line, Field: "config", Msg: fmt.Sprintf("too large: more than %d nodes after expanding aliases", d.maxNodes)})
	case d.tooMany:
		// Decoding on would only find more problems to drop.
		d.exhausted = true
	}
	return n
}

// tooLong reports a list or mapping at field with more than limit entries,
// before any entry is decoded, and says whether it did.
func (d *decoder) tooLong(n *yaml.Node, field string, limit int, format string) bool {
	n = d.node(n)
	entries := len(n.Content)
	if n.Kind == yaml.MappingNode {
		entries /= 2
	}
	if d.exhausted || entries <= limit || n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
		return false
	}
	d.fail(field, format, limit, entries)
	return true
}

// fail reports a value that could not be decoded and marks field bad, so
// that the validator says nothing more about it.
func (d *decoder) fail(field, format string, args ...any) {
	d.errorf(field, format, args...)
	d.bad[field] = true
}

// errAt reports a problem at an explicit line.
func (d *decoder) errAt(line int, field, format string, args ...any) {
	d.add(&Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping decodes a mapping at field, calling fn for each entry. With keys
// non-nil, other keys are errors. A null value counts as an empty mapping.
func (d *decoder) mapping(n *yaml.Node, field string, keys []string, fn func(key string, val *yaml.Node, field string)) {
	n = d.node(n)
	if d.exhausted || isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(field, "must be a mapping, not %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content) && !d.exhausted; i += 2 {
		k, val := d.node(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errAt(k.Line, orConfig(field), "keys must be strings, not %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errAt(k.Line, orConfig(field), "merge keys (<<) are not supported")
			continue
		}
		key := k.Value
		cf := childField(field, key)
		if first, dup := seen[key]; dup {
			d.errAt(k.Line, cf, "duplicate key, first on line %d", first)
			continue
		}
		seen[key] = k.Line
		if keys != nil && !slices.Contains(keys, key) {
			d.errAt(k.Line, cf, "%s", unknownKey(key, keys))
			continue
		}
		d.lines[cf] = k.Line
		fn(key, val, cf)
	}
}

// sequence decodes a list at field, calling fn for each entry. what names
// the expected value in errors. A null value counts as an empty list.
func (d *decoder) sequence(n *yaml.Node, field, what string, fn func(i int, item *yaml.Node, field string)) {
	n = d.node(n)
	if d.exhausted || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(field, "must be %s, not %s", what, describe(n))
		return
	}
	for i, item := range n.Content {
		if d.exhausted {
			return
		}
		cf := indexField(field, i)
		d.lines[cf] = item.Line
		fn(i, item, cf)
	}
}

// scalar returns n as a scalar whose tag is one of tags, or reports what was
// wanted. ok is false for null (the setting is left unset) and on error.
func (d *decoder) scalar(n *yaml.Node, field, want string, tags ...string) (s *yaml.Node, ok bool) {
	n = d.node(n)
	if d.exhausted || isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || !slices.Contains(tags, n.ShortTag()) {
		d.fail(field, "must be %s, not %s", want, describe(n))
		return nil, false
	}
	return n, true
}

// stringTags are the scalars accepted where a string is expected: a
// command line argument such as 8080 or an environment value such as true
// is meant as text.
var stringTags = []string{"!!str", "!!int", "!!float", "!!bool", "!!timestamp"}

func (d *decoder) string(n *yaml.Node, field string, dst *string) {
	if s, ok := d.scalar(n, field, "a string", stringTags...); ok {
		*dst = s.Value
	}
}

func (d *decoder) int(n *yaml.Node, field string, dst *int) {
	s, ok := d.scalar(n, field, "an integer", "!!int")
	if !ok {
		return
	}
	var x int64
	if err := s.Decode(&x); err != nil || int64(int(x)) != x {
		d.fail(field, "invalid integer %q", truncate(s.Value))
		return
	}
	*dst = int(x)
}

func (d *decoder) float(n *yaml.Node, field string, dst *float64) {
	s, ok := d.scalar(n, field, "a number", "!!int", "!!float")
	if !ok {
		return
	}
	var x float64
	if err := s.Decode(&x); err != nil {
		d.fail(field, "invalid number %q", truncate(s.Value))
		return
	}
	*dst = x
}

// duration sets *dst and says whether it did.
func (d *decoder) duration(n *yaml.Node, field string, dst *time.Duration) bool {
	s, ok := d.scalar(n, field, "a duration such as 30s", "!!str", "!!int", "!!float")
	if !ok {
		return false
	}
	x, err := time.ParseDuration(s.Value)
	if err != nil {
		d.fail(field, "invalid duration %q (want Go syntax such as 100ms, 30s or 1m30s)", truncate(s.Value))
		return false
	}
	*dst = x
	return true
}

// bool sets *dst and says whether it did. Only true and false are
// booleans: YAML 1.2 reads yes, no, on and off as strings.
func (d *decoder) bool(n *yaml.Node, field string, dst *bool) bool {
	s, ok := d.scalar(n, field, "true or false", "!!bool")
	if !ok {
		return false
	}
	var x bool
	if err := s.Decode(&x); err != nil {
		d.fail(field, "invalid boolean %q", truncate(s.Value))
		return false
	}
	*dst = x
	return true
}

// threshold sets *dst and says whether it did.
func (d *decoder) threshold(n *yaml.Node, field string, dst *Threshold) bool {
	s, ok := d.scalar(n, field, "a size such as 460MiB or a percentage such as 90%", "!!str", "!!int", "!!float")
	if !ok {
		return false
	}
	t, err := ParseThreshold(s.Value)
	if err != nil {
		d.fail(field, "%v", err)
		return false
	}
	*dst = t
	return true
}

func (d *decoder) size(n *yaml.Node, field string, dst **int64) {
	s, ok := d.scalar(n, field, "a size such as 256MiB", "!!str", "!!int", "!!float")
	if !ok {
		return
	}
	x, err := parseSize(s.Value)
	if err != nil {
		d.fail(field, "%v", err)
		return
	}
	*dst = &x
}

func (d *decoder) signal(n *yaml.Node, field string, dst *syscall.Signal) {
	s, ok := d.scalar(n, field, "a signal name or number", "!!str", "!!int")
	if !ok {
		return
	}
	sig, ok := parseSignal(s.Value)
	if !ok {
		d.fail(field, "unknown signal %q", truncate(s.Value))
		return
	}
	*dst = sig
}

// decodeRoot decodes the document's top-level mapping into c.
func (d *decoder) decodeRoot(root *yaml.Node, c *Config) {
	if root.Kind != yaml.MappingNode {
		d.errAt(root.Line, "config", "must be a mapping with limits and programs, not %s", describe(root))
		return
	}
	d.mapping(root, "", configKeys, func(key string, val *yaml.Node, field string) {
		switch key {
		case "limits":
			d.decodeLimits(val, field, &c.Limits)
		case "hooks":
			d.mapping(val, field, hooksKeys, func(_ string, val *yaml.Node, field string) {
				c.Hooks.OnExit = d.decodeHook(val, field)
			})
		case "programs":
			if d.tooLong(val, field, MaxPrograms, "must have at most %d programs, not %d") {
				return
			}
			d.sequence(val, field, "a list of programs", func(_ int, item *yaml.Node, field string) {
				p := DefaultProgram()
				p.Line = item.Line
				d.decodeProgram(item, field, &p)
				c.Programs = append(c.Programs, p)
			})
		}
	})
}

func (d *decoder) decodeLimits(n *yaml.Node, field string, l *Limits) {
	d.mapping(n, field, limitsKeys, func(key string, val *yaml.Node, field string) {
		switch key {
		case "restarts_per_second":
			d.float(val, field, &l.RestartsPerSecond)
		case "restart_burst":
			d.int(val, field, &l.RestartBurst)
		case "oom_hold":
			d.bool(val, field, &l.OOMHold)
		case "oom_hold_max":
			d.duration(val, field, &l.OOMHoldMax)
		}
	})
}

func (d *decoder) decodeProgram(n *yaml.Node, field string, p *Program) {
	if m := d.node(n); !d.exhausted && m.Kind != yaml.MappingNode {
		// Even a null entry is a mistake here: it would be a program with
		// neither name nor command.
		d.fail(field, "must be a mapping, not %s", describe(m))
		return
	}
	d.mapping(n, field, programKeys, func(key string, val *yaml.Node, field string) {
		switch key {
		case "name":
			d.string(val, field, &p.Name)
		case "command":
			p.Command = []string{}
			d.argv(val, field, &p.Command)
		case "dir":
			d.string(val, field, &p.Dir)
		case "env":
			if d.tooLong(val, field, MaxEnvVars, "must have at most %d variables, not %d") {
				return
			}
			d.mapping(val, field, nil, func(key string, val *yaml.Node, field string) {
				if p.Env == nil {
					p.Env = map[string]string{}
				}
				var s string // null stands for the empty string
				d.string(val, field, &s)
				p.Env[key] = s
			})
		case "user":
			d.string(val, field, &p.User)
		case "group":
			d.string(val, field, &p.Group)
		case "restart":
			d.decodeRestart(val, field, &p.Restart)
		case "stop":
			d.mapping(val, field, stopKeys, func(key string, val *yaml.Node, field string) {
				switch key {
				case "signal":
					d.signal(val, field, &p.Stop.Signal)
				case "timeout":
					d.duration(val, field, &p.Stop.Timeout)
				}
			})
		case "output":
			d.mapping(val, field, outputKeys, func(key string, val *yaml.Node, field string) {
				switch key {
				case "file":
					d.string(val, field, &p.Output.File)
				case "max_size":
					var n *int64
					if d.size(val, field, &n); n != nil {
						p.Output.MaxSize = *n
					}
				case "max_files":
					d.int(val, field, &p.Output.MaxFiles)
				case "timestamps":
					d.bool(val, field, &p.Output.Timestamps)
				}
			})
		case "memory":
			var m Memory
			d.mapping(val, field, memoryKeys, func(key string, val *yaml.Node, field string) {
				switch key {
				case "max":
					d.size(val, field, &m.Max)
				case "high":
					d.size(val, field, &m.High)
				case "swap_max":
					d.size(val, field, &m.SwapMax)
				case "recycle":
					m.Recycle = d.decodeRecycle(val, field)
				case "warn_above":
					var t Threshold
					if d.threshold(val, field, &t) {
						m.WarnAbove = &t
					}
				}
			})
			if m != (Memory{}) {
				p.Memory = &m
			}
		case "match":
			// Unlike other sections, a null or empty match is kept (and
			// refused by the validator): read as left out, it would make
			// respawnd start a second copy of a program already running.
			m := &Match{}
			p.Match = m
			d.mapping(val, field, matchKeys, func(key string, val *yaml.Node, field string) {
				switch key {
				case "comm":
					d.string(val, field, &m.Comm)
				case "exe":
					d.string(val, field, &m.Exe)
				case "cmdline":
					d.string(val, field, &m.Cmdline)
				case "pidfile":
					d.string(val, field, &m.Pidfile)
				case "user":
					d.string(val, field, &m.User)
				}
			})
		case "on_missing":
			if isNull(d.node(val)) {
				delete(d.lines, field) // left out, as for any other key
				return
			}
			d.string(val, field, (*string)(&p.OnMissing))
		case "on_exit":
			p.OnExit = d.decodeHook(val, field)
		case "health":
			p.Health = d.decodeHealth(val, field)
		case "notify":
			p.Notify = d.decodeNotify(val, field)
		}
	})
}

// decodeHook decodes an on_exit section; a null one is left out (nil).
// An empty mapping is kept, and refused by the validator for want of a
// command.
func (d *decoder) decodeHook(n *yaml.Node, field string) *Hook {
	if isNull(d.node(n)) {
		delete(d.lines, field) // left out, as for any other key
		return nil
	}
	h := &Hook{Timeout: DefaultHookTimeout}
	d.mapping(n, field, hookKeys, func(key string, val *yaml.Node, field string) {
		if isNull(d.node(val)) {
			// Left out, as for any other key: a null command is not the
			// empty one that turns the hook off.
			delete(d.lines, field)
			return
		}
		switch key {
		case "command":
			h.Command = []string{}
			d.argv(val, field, &h.Command)
		case "reasons":
			h.Reasons = []string{}
			if d.tooLong(val, field, len(ExitReasons), "must have at most %d reasons, not %d") {
				return
			}
			d.sequence(val, field, "a list of exit reasons such as [oom_kill, signal]", func(_ int, item *yaml.Node, field string) {
				var r string
				if isNull(d.node(item)) {
					d.fail(field, "must be a string, not null")
				}
				d.string(item, field, &r)
				h.Reasons = append(h.Reasons, r)
			})
		case "timeout":
			d.duration(val, field, &h.Timeout)
		case "user":
			d.string(val, field, &h.User)
		case "group":
			d.string(val, field, &h.Group)
		}
	})
	return h
}

// present reports whether n, the value at field, is given. A null value is
// not: it counts as left out, as if the key were not written, so the
// default applies and "is required" rather than "must not be empty" is
// said of it.
func (d *decoder) present(n *yaml.Node, field string) bool {
	if isNull(d.node(n)) {
		delete(d.lines, field)
		return false
	}
	return true
}

// decodeHealth decodes a health section. A null one is left out (nil), as
// for on_exit; an empty mapping is kept, and refused by the validator for
// want of a probe. Null values within it count as left out.
func (d *decoder) decodeHealth(n *yaml.Node, field string) *Health {
	if !d.present(n, field) {
		return nil
	}
	h := DefaultHealth()
	d.mapping(n, field, healthKeys, func(key string, val *yaml.Node, field string) {
		if !d.present(val, field) {
			return
		}
		switch key {
		case "http":
			h.HTTP = d.decodeHTTPProbe(val, field)
		case "tcp":
			t := &TCPProbe{}
			h.TCP = t
			d.mapping(val, field, tcpKeys, func(_ string, val *yaml.Node, field string) {
				if d.present(val, field) {
					d.string(val, field, &t.Address)
				}
			})
		case "exec":
			e := &ExecProbe{}
			h.Exec = e
			d.mapping(val, field, execKeys, func(_ string, val *yaml.Node, field string) {
				if d.present(val, field) {
					e.Command = []string{}
					d.argv(val, field, &e.Command)
				}
			})
		case "period":
			d.duration(val, field, &h.Period)
		case "timeout":
			d.duration(val, field, &h.Timeout)
		case "failures":
			d.int(val, field, &h.Failures)
		case "startup_grace":
			d.duration(val, field, &h.StartupGrace)
		}
	})
	return &h
}

// decodeHTTPProbe decodes health.http, which the caller found present.
func (d *decoder) decodeHTTPProbe(n *yaml.Node, field string) *HTTPProbe {
	pr := &HTTPProbe{ExpectStatus: DefaultStatusRange}
	d.mapping(n, field, httpKeys, func(key string, val *yaml.Node, field string) {
		if !d.present(val, field) {
			return
		}
		switch key {
		case "url":
			d.string(val, field, &pr.URL)
		case "expect_status":
			d.statusRange(val, field, &pr.ExpectStatus)
		case "headers":
			if d.tooLong(val, field, MaxHealthHeaders, "must have at most %d headers, not %d") {
				return
			}
			d.mapping(val, field, nil, func(key string, val *yaml.Node, field string) {
				if pr.Headers == nil {
					pr.Headers = map[string]string{}
				}
				var s string // null stands for the empty value
				d.string(val, field, &s)
				pr.Headers[key] = s
			})
		}
	})
	return pr
}

// statusRange decodes an expect_status: "200-399", "204" or 204.
func (d *decoder) statusRange(n *yaml.Node, field string, dst *StatusRange) {
	s, ok := d.scalar(n, field, "a status such as 204 or a range such as 200-399", "!!str", "!!int")
	if !ok {
		return
	}
	r, err := parseStatusRange(s.Value)
	if err != nil {
		d.fail(field, "%v", err)
		return
	}
	*dst = r
}

// parseStatusRange reads an HTTP status ("204") or an inclusive range of
// them ("200-399"), in decimal digits. It does not check the bounds; the
// validator does, with a message that names them.
func parseStatusRange(s string) (StatusRange, error) {
	status := func(t string) (int, bool) {
		// Three digits make a status; up to nine still read as a number
		// that the validator can name in its message.
		if t == "" || len(t) > 9 || strings.Trim(t, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.Atoi(t)
		return n, err == nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	minStatus, ok := status(lo)
	maxStatus := minStatus
	if ok && isRange {
		maxStatus, ok = status(hi)
	}
	if !ok {
		return StatusRange{}, fmt.Errorf("invalid status range %q (want a status such as 204 or a range such as 200-399)", truncate(s))
	}
	return StatusRange{Min: minStatus, Max: maxStatus}, nil
}

// decodeNotify decodes a notify section. A null one is left out (nil); an
// empty mapping is kept, and refused by the validator as having no effect.
func (d *decoder) decodeNotify(n *yaml.Node, field string) *Notify {
	if !d.present(n, field) {
		return nil
	}
	nt := DefaultNotify()
	d.mapping(n, field, notifyKeys, func(key string, val *yaml.Node, field string) {
		if !d.present(val, field) {
			return
		}
		switch key {
		case "ready":
			d.bool(val, field, &nt.Ready)
		case "start_timeout":
			d.duration(val, field, &nt.StartTimeout)
		case "watchdog":
			d.duration(val, field, &nt.Watchdog)
		}
	})
	return &nt
}

// argv decodes a command line: a list of strings, never one string.
func (d *decoder) argv(n *yaml.Node, field string, dst *[]string) {
	if d.tooLong(n, field, MaxCommandArgs, "must have at most %d arguments, not %d") {
		return
	}
	d.sequence(n, field, `a list of arguments such as ["/usr/bin/api", "--port", "8080"]`, func(_ int, item *yaml.Node, field string) {
		var arg string
		if isNull(d.node(item)) {
			d.fail(field, "must be a string, not null")
		}
		d.string(item, field, &arg)
		*dst = append(*dst, arg)
	})
}

func (d *decoder) decodeRestart(n *yaml.Node, field string, r *Restart) {
	d.mapping(n, field, restartKeys, func(key string, val *yaml.Node, field string) {
		switch key {
		case "policy":
			d.string(val, field, (*string)(&r.Policy))
		case "backoff":
			d.mapping(val, field, backoffKeys, func(key string, val *yaml.Node, field string) {
				switch key {
				case "initial":
					d.duration(val, field, &r.Backoff.Initial)
				case "max":
					d.duration(val, field, &r.Backoff.Max)
				case "multiplier":
					d.float(val, field, &r.Backoff.Multiplier)
				case "jitter":
					d.float(val, field, &r.Backoff.Jitter)
				}
			})
		case "reset_after":
			d.duration(val, field, &r.ResetAfter)
		case "limit":
			d.mapping(val, field, limitKeys, func(key string, val *yaml.Node, field string) {
				switch key {
				case "burst":
					d.int(val, field, &r.Limit.Burst)
				case "interval":
					d.duration(val, field, &r.Limit.Interval)
				case "action":
					d.string(val, field, (*string)(&r.Limit.Action))
				}
			})
		case "oom_hold":
			var b bool
			if d.bool(val, field, &b) {
				r.OOMHold = &b
			}
		case "oom_hold_max":
			var x time.Duration
			if d.duration(val, field, &x) {
				r.OOMHoldMax = &x
			}
		case "oom_loop":
			d.int(val, field, &r.OOMLoop)
		}
	})
}

// decodeRecycle decodes a memory.recycle section. Like match, a null or
// empty section is kept (and refused by the validator, for want of above):
// read as left out, it would leave off the watchdog that the file asks for.
func (d *decoder) decodeRecycle(n *yaml.Node, field string) *Recycle {
	r := &Recycle{For: DefaultRecycleFor, Measure: DefaultMeasure}
	d.mapping(n, field, recycleKeys, func(key string, val *yaml.Node, field string) {
		switch key {
		case "above":
			if isNull(d.node(val)) {
				delete(d.lines, field) // left out: "is required", not "0B"
				return
			}
			d.threshold(val, field, &r.Above)
		case "for":
			d.duration(val, field, &r.For)
		case "measure":
			d.string(val, field, (*string)(&r.Measure))
		}
	})
	return r
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of value n holds, for "must be X, not Y" errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return fmt.Sprintf("the string %q", truncate(n.Value))
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	default:
		return fmt.Sprintf("a value tagged %q", truncate(tag))
	}
}

// truncate shortens s for quoting in a message.
func truncate(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	for i := range s {
		if i > limit {
			return s[:i] + "..."
		}
	}
	return s
}

// orConfig names the document as a whole when field is the root.
func orConfig(field string) string {
	if field == "" {
		return "config"
	}
	return field
}

// unknownKey explains an unknown key, suggesting the nearest known one.
func unknownKey(key string, keys []string) string {
	best, bestDist := "", 3
	for _, k := range keys {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key, did you mean %q?", best)
	}
	return "unknown key (known keys: " + strings.Join(keys, ", ") + ")"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 {
		return len(a) // far from every key; spare the work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
