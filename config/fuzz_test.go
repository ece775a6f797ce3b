package config

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/respawnd/respawnd/restart"
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
	f.Add([]byte("programs: &a\n  - *a\n  - {name: x, command: *a}\n"))
	f.Add([]byte("a: &a {b: *a}\nprograms: [*a]\n"))
	f.Add([]byte("programs:\n  - name: a\n    command: [\"\\0\"]\n---\n"))
	f.Add([]byte("\xff\xfe"))
	for _, tt := range parseErrorTests {
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
		withProgram("restart:",
			"  backoff: {initial: 24h, max: 24h, multiplier: 100, jitter: 1}",
			"  reset_after: 24h",
			"  limit: {burst: 1000, interval: 24h, action: give-up}",
			"stop: {signal: 64, timeout: 1h}",
			"memory: {max: 1EiB, high: 1EiB, swap_max: 1EiB}"),
		withProgram("restart:",
			"  backoff: {initial: 24h0m0.000000001s, max: 24h0m0.000000001s, multiplier: 100.00000000000001, jitter: 1.0000000000000002}",
			"  reset_after: 86400000000001ns",
			"  limit: {burst: 1001, interval: 1441m}",
			"stop: {signal: 65, timeout: 3600000000001ns}",
			"memory: {max: 1152921504606846977, high: 1025PiB, swap_max: 2EiB}"),
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
