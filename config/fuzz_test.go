package config

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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
				if h1, h2 := p.Hash(), p.Hash(); h1 != h2 {
					t.Errorf("program %q hashes differently twice", p.Name)
				}
			}
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
