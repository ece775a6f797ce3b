package config

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
)

// hashVersion opens every encoding that Hash digests. Change it only
// together with the encoding; a new optional setting needs no new version,
// since a setting at its default is left out.
const hashVersion = "respawnd program v1"

// Hash returns the hex SHA-256 digest of the program's definition, so that
// a reload, or a respawnd started again, can tell a changed program from an
// unchanged one.
//
// The digest covers the values of the definition, not the Go types that
// hold them: settings are named by their YAML keys, and a setting equal to
// its default is left out. So the digest of a program stays the same across
// respawnd versions, including ones that add optional settings, and a
// program written with or without its defaults spelled out hashes the same.
// Map order does not matter, a nil map or slice hashes like an empty one,
// and Line is not part of it. See canonical for the encoding.
func (p Program) Hash() string {
	sum := sha256.Sum256(p.canonical())
	return hex.EncodeToString(sum[:])
}

// canonical returns the encoding that Hash digests: hashVersion, then a key
// and a value for each setting that differs from DefaultProgram, in the
// order docs/config.md lists them. Keys are YAML key paths as in errors
// ("restart.backoff.max", "command[0]", "env.GOMAXPROCS", `env["A=B"]`,
// "health.http.headers.X-Probe"); env and headers are sorted by name.
// Values are canonical text: strings as they are, integers and sizes in
// decimal, durations in nanoseconds, numbers in Go's shortest 'g' form,
// signals by number, booleans as true or false, thresholds as a size in
// decimal or a number in 'g' form followed by "%", and an HTTP probe's
// expect_status as a status ("204") or a range ("200-399"). Within the
// health and notify sections, a setting is compared with the default Parse
// gives it there (DefaultHealthPeriod, DefaultStatusRange,
// DefaultStartTimeout, …). A memory, memory.recycle, match, health,
// health.http, health.tcp, health.exec or notify section that is present
// gets its own key with an empty value, since an empty section is not the
// same as none. A setting that inherits from limits when it is unset
// (restart.oom_hold, restart.oom_hold_max) is written whenever it is set,
// even to the value that limits holds: Limits are not part of the digest.
// Every string is written as a netstring (LENGTH:BYTES,), so the encoding is
// unambiguous.
//
// health and notify are part of the digest: a changed probe restarts the
// program onto it, and notify changes the program's environment
// (NOTIFY_SOCKET, WATCHDOG_USEC), which only a new instance gets. A program
// without them keeps the digest it had before they existed. on_exit is left
// out, like limits and hooks: a hook is what respawnd does after the
// program exits, not part of the program, so a reload that changes only a
// hook restarts nothing.
func (p Program) canonical() []byte {
	def := DefaultProgram()
	var e encoder
	e.netstring(hashVersion)

	e.str("name", p.Name, def.Name)
	for i, arg := range p.Command {
		e.pair(indexField("command", i), arg)
	}
	e.str("dir", p.Dir, def.Dir)
	e.sortedMap("env", p.Env)
	e.str("user", p.User, def.User)
	e.str("group", p.Group, def.Group)

	r, dr := &p.Restart, &def.Restart
	e.str("restart.policy", string(r.Policy), string(dr.Policy))
	e.duration("restart.backoff.initial", r.Backoff.Initial, dr.Backoff.Initial)
	e.duration("restart.backoff.max", r.Backoff.Max, dr.Backoff.Max)
	e.float("restart.backoff.multiplier", r.Backoff.Multiplier, dr.Backoff.Multiplier)
	e.float("restart.backoff.jitter", r.Backoff.Jitter, dr.Backoff.Jitter)
	e.duration("restart.reset_after", r.ResetAfter, dr.ResetAfter)
	e.int("restart.limit.burst", int64(r.Limit.Burst), int64(dr.Limit.Burst))
	e.duration("restart.limit.interval", r.Limit.Interval, dr.Limit.Interval)
	e.str("restart.limit.action", string(r.Limit.Action), string(dr.Limit.Action))
	if r.OOMHold != nil {
		e.pair("restart.oom_hold", strconv.FormatBool(*r.OOMHold))
	}
	if r.OOMHoldMax != nil {
		e.pair("restart.oom_hold_max", strconv.FormatInt(int64(*r.OOMHoldMax), 10))
	}
	e.int("restart.oom_loop", int64(r.OOMLoop), int64(dr.OOMLoop))

	e.int("stop.signal", int64(p.Stop.Signal), int64(def.Stop.Signal))
	e.duration("stop.timeout", p.Stop.Timeout, def.Stop.Timeout)
	e.str("output.file", p.Output.File, def.Output.File)
	e.int("output.max_size", p.Output.MaxSize, def.Output.MaxSize)
	e.int("output.max_files", int64(p.Output.MaxFiles), int64(def.Output.MaxFiles))
	if p.Output.Timestamps {
		e.pair("output.timestamps", "true")
	}

	if m := p.Memory; m != nil {
		e.pair("memory", "")
		e.size("memory.max", m.Max)
		e.size("memory.high", m.High)
		e.size("memory.swap_max", m.SwapMax)
		if rc := m.Recycle; rc != nil {
			e.pair("memory.recycle", "")
			if rc.Above != (Threshold{}) {
				e.pair("memory.recycle.above", canonicalThreshold(rc.Above))
			}
			e.duration("memory.recycle.for", rc.For, DefaultRecycleFor)
			e.str("memory.recycle.measure", string(rc.Measure), string(DefaultMeasure))
		}
		if t := m.WarnAbove; t != nil {
			e.pair("memory.warn_above", canonicalThreshold(*t))
		}
	}
	if m := p.Match; m != nil {
		e.pair("match", "")
		e.str("match.comm", m.Comm, "")
		e.str("match.exe", m.Exe, "")
		e.str("match.cmdline", m.Cmdline, "")
		e.str("match.pidfile", m.Pidfile, "")
		e.str("match.user", m.User, "")
	}
	e.str("on_missing", string(p.OnMissing), string(def.OnMissing))

	if h := p.Health; h != nil {
		e.pair("health", "")
		if pr := h.HTTP; pr != nil {
			e.pair("health.http", "")
			e.str("health.http.url", pr.URL, "")
			if pr.ExpectStatus != DefaultStatusRange {
				e.pair("health.http.expect_status", statusText(pr.ExpectStatus))
			}
			e.sortedMap("health.http.headers", pr.Headers)
		}
		if t := h.TCP; t != nil {
			e.pair("health.tcp", "")
			e.str("health.tcp.address", t.Address, "")
		}
		if x := h.Exec; x != nil {
			e.pair("health.exec", "")
			for i, arg := range x.Command {
				e.pair(indexField("health.exec.command", i), arg)
			}
		}
		e.duration("health.period", h.Period, DefaultHealthPeriod)
		e.duration("health.timeout", h.Timeout, DefaultHealthTimeout)
		e.int("health.failures", int64(h.Failures), DefaultHealthFailures)
		e.duration("health.startup_grace", h.StartupGrace, 0)
	}
	if n := p.Notify; n != nil {
		e.pair("notify", "")
		if n.Ready {
			e.pair("notify.ready", "true")
		}
		e.duration("notify.start_timeout", n.StartTimeout, DefaultStartTimeout)
		e.duration("notify.watchdog", n.Watchdog, 0)
	}
	return e.b
}

// encoder builds the encoding of canonical.
type encoder struct{ b []byte }

func (e *encoder) netstring(s string) {
	e.b = strconv.AppendInt(e.b, int64(len(s)), 10)
	e.b = append(e.b, ':')
	e.b = append(e.b, s...)
	e.b = append(e.b, ',')
}

func (e *encoder) pair(key, value string) {
	e.netstring(key)
	e.netstring(value)
}

// sortedMap writes every entry of m, sorted by key, below field.
func (e *encoder) sortedMap(field string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.pair(childField(field, k), m[k])
	}
}

func (e *encoder) str(key, v, def string) {
	if v != def {
		e.pair(key, v)
	}
}

func (e *encoder) int(key string, v, def int64) {
	if v != def {
		e.pair(key, strconv.FormatInt(v, 10))
	}
}

func (e *encoder) duration(key string, v, def time.Duration) {
	e.int(key, int64(v), int64(def))
}

func (e *encoder) float(key string, v, def float64) {
	if v == def {
		return
	}
	if v == 0 {
		v = 0 // -0 and +0 mean the same; every NaN prints as NaN
	}
	e.pair(key, strconv.FormatFloat(v, 'g', -1, 64))
}

// canonicalThreshold writes t as canonical explains. A Threshold with both
// fields set, which validation refuses, still gets a text of its own.
func canonicalThreshold(t Threshold) string {
	b := strconv.FormatInt(t.Bytes, 10)
	p := strconv.FormatFloat(t.Percent, 'g', -1, 64) + "%"
	switch {
	case t.Percent == 0: // -0 too
		return b
	case t.Bytes == 0:
		return p
	}
	return b + " " + p
}

func (e *encoder) size(key string, v *int64) {
	if v != nil {
		e.pair(key, strconv.FormatInt(*v, 10))
	}
}
