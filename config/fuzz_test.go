package config

import (
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/respawnd/respawnd/restart"
	"golang.org/x/net/http/httpguts"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../examples/reference.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(manyMistakes))
	f.Add([]byte(""))
	f.Add([]byte(withProgram()))
	f.Add([]byte(withProgram("memory: {max: 1GiB, high: 512M, swap_max: 0}", "stop: {signal: 9}", `env: {"a.b": 1, "": 2}`)))
	f.Add([]byte(withProgram("match: {comm: api, exe: /usr/bin/api, cmdline: '^api .*--port=(80|443)$', pidfile: /run/api.pid, user: 33}", "on_missing: wait")))
	f.Add([]byte(withProgram("match: &m {comm: \"a b (c)\", cmdline: '[[:alpha:]]+\\x00'}", "on_missing: start") + "  - {name: b, command: [b], match: *m}\n"))
	f.Add([]byte(withProgram("match:", "on_missing:")))
	f.Add([]byte("limits: {oom_hold: false, oom_hold_max: 0s}\n" + withProgram(
		"restart: {oom_hold: true, oom_hold_max: 1m, oom_loop: 0}",
		"memory:",
		"  max: 512MiB",
		"  recycle: {above: 90%, for: 30s, measure: working_set}",
		"  warn_above: 80%")))
	f.Add([]byte(withProgram("memory: {recycle: {above: 460MiB, for: 0s, measure: anon}, warn_above: 400Mi}")))
	f.Add([]byte(withProgram("memory: {max: 1GiB, recycle: &r {above: 12.5%, measure: rss}, warn_above: .5%}") +
		"  - {name: b, command: [b], memory: {max: 2MiB, recycle: *r}}\n"))
	f.Add([]byte(withProgram("memory: {max: 4MiB, recycle: {above: 99.99999999999999999%}, warn_above: 4194303}")))
	f.Add([]byte(withProgram("memory: {recycle: ~, warn_above: 0%}", "restart: {oom_hold: ~, oom_hold_max: ~, oom_loop: ~}")))
	f.Add([]byte("programs: &a\n  - *a\n  - {name: x, command: *a}\n"))
	f.Add([]byte("a: &a {b: *a}\nprograms: [*a]\n"))
	f.Add([]byte("programs:\n  - name: a\n    command: [\"\\0\"]\n---\n"))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(withProgram(
		"health:",
		`  http: {url: "http://127.0.0.1:8080/healthz", expect_status: "200-399", headers: {X-Probe: "1", Host: "api:8080"}}`,
		"  period: 10s",
		"  timeout: 1s",
		"  failures: 3",
		"  startup_grace: 30s",
		"notify: {ready: true, start_timeout: 90s, watchdog: 30s}")))
	f.Add([]byte(withProgram("health: {tcp: {address: \"[::1]:5432\"}, period: 100ms, timeout: 100ms}", "notify: {watchdog: 24h}") +
		"  - {name: b, command: [b], health: {exec: {command: [check-db]}, failures: 100, startup_grace: 1h}, notify: {ready: true, start_timeout: 1h}}\n"))
	f.Add([]byte(withProgram("health: &h {http: {url: http://a/, expect_status: 204}}", "notify: &n {ready: true}") +
		"  - {name: b, command: [b], health: *h, notify: *n, env: {NOTIFY_SOCKET: x}}\n"))
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range healthErrorTests {
		f.Add([]byte(tt.in))
	}
	for _, in := range boundSeeds() {
		f.Add([]byte(in))
	}

	const file = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(file, data)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without an error")
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted what Validate refuses: %v", verr)
			}
			for _, p := range c.Programs {
				if p.Line < 1 {
					t.Errorf("program %q has line %d", p.Name, p.Line)
				}
				runPolicy(t, p)
				checkWatchdog(t, p, c.Limits)
				checkHealth(t, p)
			}
			runLimiter(t, c.Limits)
			if !strings.HasSuffix(c.Summary(), " OK") {
				t.Errorf("Summary() = %q", c.Summary())
			}
			return
		}
		if c != nil {
			t.Error("config is not nil on error")
		}
		list := Errors(err)
		if len(list) == 0 {
			t.Fatalf("error %q holds no *Error", err)
		}
		// YAML breaks lines at CR, LF and CRLF, and YAML 1.1 also at NEL,
		// LS and PS; this bounds the line count from above.
		lines := 1
		for _, br := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
			lines += strings.Count(string(data), br)
		}
		texts := make([]string, len(list))
		for i, e := range list {
			texts[i] = e.Error()
			checkError(t, file, lines, e)
			if i > 0 && e.Line < list[i-1].Line {
				t.Errorf("errors out of line order: %q after %q", texts[i], texts[i-1])
			}
		}
		if got, want := err.Error(), strings.Join(texts, "\n"); got != want {
			t.Errorf("err.Error() = %q, want the errors one per line: %q", got, want)
		}
	})
}

// checkError checks that e has the documented form
// "FILE:LINE: field: message".
func checkError(t *testing.T, file string, lines int, e *Error) {
	t.Helper()
	text := e.Error()
	if e.File != file {
		t.Errorf("%q: File = %q, want %q", text, e.File, file)
	}
	if e.Line < 0 || e.Line > lines {
		t.Errorf("%q: line %d outside the file's %d lines", text, e.Line, lines)
	}
	prefix := file + ": "
	if e.Line > 0 {
		prefix = file + ":" + strconv.Itoa(e.Line) + ": "
	}
	if want := prefix + e.Field + ": " + e.Msg; text != want {
		t.Errorf("Error() = %q, want %q", text, want)
	}
	if e.Field == "" || strings.ContainsAny(e.Field, "\n ") && !strings.Contains(e.Field, `["`) {
		t.Errorf("%q: bad field %q", text, e.Field)
	}
	if strings.Contains(e.Field, "\n") || strings.Contains(e.Msg, "\n") {
		t.Errorf("%q: contains a newline", text)
	}
	if e.Msg == "" || strings.HasSuffix(e.Msg, ".") {
		t.Errorf("%q: bad message %q", text, e.Msg)
	}
	if r, _ := utf8.DecodeRuneInString(e.Msg); unicode.IsUpper(r) {
		t.Errorf("%q: message starts in upper case", text)
	}
}

// runPolicy builds the restart policy of an accepted program, as the
// supervisor does, and drives it through a crash loop and a long run: it
// must neither panic nor give a delay outside [0, backoff.max].
func runPolicy(t *testing.T, p Program) {
	t.Helper()
	policy := restart.NewPolicy(policyConfig(p))
	now := time.Unix(0, 0)
	for i := range 50 {
		ran := time.Millisecond
		if i == 25 {
			ran = p.Restart.ResetAfter
		}
		policy.Started(now)
		d := policy.Exited(now, now.Add(ran))
		if d.Delay < 0 || d.Delay > p.Restart.Backoff.Max {
			t.Fatalf("program %q: exit %d: delay %v outside [0, %v]", p.Name, i, d.Delay, p.Restart.Backoff.Max)
		}
		now = now.Add(ran + d.Delay)
	}
}

// checkWatchdog checks what the daemon relies on in an accepted program's
// watchdog settings: every threshold resolves, within [MinMemory,
// memory.max], warn_above below recycle.above, and the OOM hold within its
// bounds.
func checkWatchdog(t *testing.T, p Program, l Limits) {
	t.Helper()
	above, okAbove := p.RecycleAbove()
	warn, okWarn := p.WarnAbove()
	var limit int64 = MaxMemory
	if p.Memory != nil && p.Memory.Max != nil {
		limit = *p.Memory.Max
	}
	if p.Memory != nil && p.Memory.Recycle != nil {
		r := p.Memory.Recycle
		if !okAbove || above < MinMemory || above > limit {
			t.Errorf("program %q: recycle.above %s resolves to %d, %v (memory.max %d)", p.Name, r.Above, above, okAbove, limit)
		}
		if r.For < 0 || r.For > MaxRecycleFor || !r.Measure.valid() {
			t.Errorf("program %q: recycle %+v", p.Name, r)
		}
	}
	if p.Memory != nil && p.Memory.WarnAbove != nil {
		if !okWarn || warn < MinMemory || warn > limit || okAbove && warn >= above {
			t.Errorf("program %q: warn_above %s resolves to %d, %v (recycle.above %d, memory.max %d)", p.Name, p.Memory.WarnAbove, warn, okWarn, above, limit)
		}
	}
	if d := p.OOMHoldMax(l); d < 0 || d > MaxOOMHoldMax {
		t.Errorf("program %q: oom_hold_max %v", p.Name, d)
	}
	if n := p.Restart.OOMLoop; n < 0 || n > MaxOOMLoop {
		t.Errorf("program %q: oom_loop %d", p.Name, n)
	}
}

// checkHealth checks what the probes and the notify server rely on in an
// accepted program's health and notify sections: one probe that Go's
// clients can use, timings within their bounds, and a notify section that
// does something.
func checkHealth(t *testing.T, p Program) {
	t.Helper()
	if h := p.Health; h != nil {
		probes := 0
		for _, set := range []bool{h.HTTP != nil, h.TCP != nil, h.Exec != nil} {
			if set {
				probes++
			}
		}
		if probes != 1 || h.Probe() == "" {
			t.Errorf("program %q: %d probes", p.Name, probes)
		}
		if h.Period < MinHealthPeriod || h.Period > MaxHealthPeriod || h.Timeout <= 0 || h.Timeout > h.Period ||
			h.Failures < 1 || h.Failures > MaxHealthFailures || h.StartupGrace < 0 || h.StartupGrace > MaxStartupGrace {
			t.Errorf("program %q: health timings %+v", p.Name, h)
		}
		if pr := h.HTTP; pr != nil {
			req, err := http.NewRequest(http.MethodGet, pr.URL, nil)
			if err != nil || req.URL.Hostname() == "" || req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				t.Errorf("program %q: url %q: %v", p.Name, pr.URL, err)
			}
			r := pr.ExpectStatus
			if r.Min < 100 || r.Max > 599 || r.Min > r.Max || !r.Contains(r.Min) || r.Contains(r.Max+1) {
				t.Errorf("program %q: expect_status %+v", p.Name, r)
			}
			if len(pr.Headers) > MaxHealthHeaders {
				t.Errorf("program %q: %d headers", p.Name, len(pr.Headers))
			}
			for k, v := range pr.Headers {
				if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
					t.Errorf("program %q: header %q: %q", p.Name, k, v)
				}
			}
		}
		if pr := h.TCP; pr != nil {
			host, port, err := net.SplitHostPort(pr.Address)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				t.Errorf("program %q: address %q", p.Name, pr.Address)
			}
		}
		if pr := h.Exec; pr != nil && (len(pr.Command) == 0 || pr.Command[0] == "") {
			t.Errorf("program %q: exec command %q", p.Name, pr.Command)
		}
	}
	if n := p.Notify; n != nil {
		if !n.Ready && n.Watchdog == 0 {
			t.Errorf("program %q: notify without effect", p.Name)
		}
		if n.Ready && (n.StartTimeout < MinStartTimeout || n.StartTimeout > MaxStartTimeout) {
			t.Errorf("program %q: start_timeout %v", p.Name, n.StartTimeout)
		}
		if n.Watchdog != 0 && (n.Watchdog < MinWatchdog || n.Watchdog > MaxWatchdog) {
			t.Errorf("program %q: watchdog %v", p.Name, n.Watchdog)
		}
		for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
			if _, ok := p.Env[k]; ok {
				t.Errorf("program %q: env sets %s", p.Name, k)
			}
		}
	}
}

// FuzzThreshold checks that ParseThreshold never accepts what String does
// not give back, and that an accepted percentage resolves within memory.max.
func FuzzThreshold(f *testing.F) {
	for _, s := range []string{"90%", "12.5%", ".5%", "100%", "0%", "-5%", "100.5%", "1e1%", "460MiB", "512M", "4096", "0", "-1GiB", "1.5GiB", "8EiB", "1GiB512MiB", "lots", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThreshold(s)
		if err != nil {
			if th != (Threshold{}) {
				t.Errorf("ParseThreshold(%q) = %+v with error %v", s, th, err)
			}
			return
		}
		if th.Bytes != 0 && th.Percent != 0 {
			t.Fatalf("ParseThreshold(%q) = %+v: both set", s, th)
		}
		back, err := ParseThreshold(th.String())
		if err != nil || back != th {
			t.Errorf("ParseThreshold(%q) = %+v, but its String %q reads back as %+v, %v", s, th, th.String(), back, err)
		}
		if th.Percent != 0 {
			for _, limit := range []int64{1, MinMemory, 512 << 20, MaxMemory, math.MaxInt64} {
				n, ok := th.Resolve(limit)
				if !ok || n < 0 || n > limit {
					t.Errorf("%+v.Resolve(%d) = %d, %v", th, limit, n, ok)
				}
			}
		}
	})
}

// runLimiter builds the global restart limiter of an accepted file and
// takes a few tokens.
func runLimiter(t *testing.T, l Limits) {
	t.Helper()
	limiter := restart.NewLimiter(l.RestartsPerSecond, l.RestartBurst)
	now := time.Unix(0, 0)
	for i := range 10 {
		if d, _ := limiter.Reserve(now); d < 0 {
			t.Fatalf("reservation %d: delay %v", i, d)
		}
	}
}

// boundSeeds are inputs at, just past and far past the bounds.
func boundSeeds() []string {
	long := func(n int) string { return strings.Repeat("x", n) }
	return []string{
		"limits: {restarts_per_second: 10000, restart_burst: 10000}\n",
		"limits: {restarts_per_second: 10000.000000000002, restart_burst: 10001}\n",
		"limits: {restarts_per_second: 0.001, restart_burst: 1}\n",
		"limits: {restarts_per_second: 0.0009999999999999998}\n",
		"limits: {restarts_per_second: 1e308, restart_burst: 9223372036854775807}\n",
		"limits: {restarts_per_second: 1e400, restart_burst: -9223372036854775808}\n",
		"limits: {restarts_per_second: .inf, restart_burst: 0x7fffffffffffffff}\n",
		"limits: {restarts_per_second: -.inf}\n",
		"limits: {restarts_per_second: .nan}\n",
		"limits: {restarts_per_second: 5e-324}\n",
		"limits: {oom_hold_max: 24h}\n",
		"limits: {oom_hold_max: 24h0m0.000000001s}\n",
		"limits: {oom_hold_max: -1ns}\n",
		withProgram("memory: {max: 1MiB, recycle: {above: 100%, for: 0s}, warn_above: 99.99999999999999%}", "restart: {oom_hold_max: 0s, oom_loop: 0}"),
		withProgram("memory: {max: 1MiB, recycle: {above: 1048575, for: -1ns}, warn_above: 1048576}", "restart: {oom_hold_max: -1ns, oom_loop: -1}"),
		withProgram("memory: {max: 9223372036854775807, recycle: {above: 9223372036854775807}, warn_above: 0.0000000000000000001%}"),
		withProgram("restart:",
			"  backoff: {initial: 24h, max: 24h, multiplier: 100, jitter: 1}",
			"  reset_after: 24h",
			"  limit: {burst: 1000, interval: 24h, action: give-up}",
			"  oom_hold_max: 24h",
			"  oom_loop: 1000",
			"stop: {signal: 64, timeout: 1h}",
			"memory: {max: 1EiB, high: 1EiB, swap_max: 1EiB, recycle: {above: 100%, for: 24h, measure: rss}, warn_above: 1152921504606846975}"),
		withProgram("restart:",
			"  backoff: {initial: 24h0m0.000000001s, max: 24h0m0.000000001s, multiplier: 100.00000000000001, jitter: 1.0000000000000002}",
			"  reset_after: 86400000000001ns",
			"  limit: {burst: 1001, interval: 1441m}",
			"  oom_hold_max: 86400000000001ns",
			"  oom_loop: 1001",
			"stop: {signal: 65, timeout: 3600000000001ns}",
			"memory: {max: 1152921504606846977, high: 1025PiB, swap_max: 2EiB, recycle: {above: 100.00000000000001%, for: 24h0m0.000000001s}, warn_above: 1025PiB}"),
		withProgram("restart:",
			"  backoff: {initial: 1ns, max: 2562047h47m16.854775807s, multiplier: 1.7976931348623157e308}",
			"  limit: {burst: 9223372036854775807, interval: -1ns}",
			"stop: {timeout: 9223372036854775807ns}",
			"memory: {max: 8EiB, high: 9223372036854775807, swap_max: -9223372036854775808}"),
		withProgram("restart: {backoff: {multiplier: .nan, jitter: -.inf}, limit: {burst: -1}}"),
		withProgram("restart: {backoff: {multiplier: 1e400, jitter: .nan}}"),
		withProgram("restart:", "  limit: {burst: 9223372036854775807}"),
		"programs:\n  - name: " + long(MaxNameLen) + "\n    command: [/bin/a]\n",
		"programs:\n  - name: " + long(MaxNameLen+1) + "\n    command: [/bin/a]\n",
		withProgram("dir: /"+long(MaxPathLen-1), "user: "+long(MaxUserLen), "group: "+long(MaxUserLen+1)),
		withProgram("output: {file: /"+long(MaxPathLen)+"}", "env: {A: "+long(MaxArgLen-2)+", B: "+long(MaxArgLen-1)+"}"),
		"programs:\n  - name: a\n    command: [/bin/a, " + long(MaxArgLen) + ", " + long(MaxArgLen+1) + "]\n",
		withProgram("match: {comm: " + long(maxComm) + ", cmdline: '" + long(MaxCmdlineLen) + "', exe: /" + long(MaxPathLen) + "}"),
		withProgram("match: {cmdline: '(?:\\pL\\pL\\pL\\pL){1000}'}"),
		withProgram("match: {cmdline: '((((a{10}){10}){10}){10})'}"),
		"x: &a [" + strings.Repeat("a, ", MaxCommandArgs) + "a]\nprograms: [{name: a, command: *a}]\n",
		"x: &p {name: a, command: [a]}\nprograms: [" + strings.Repeat("*p, ", 100) + "*p]\n",
	}
}
