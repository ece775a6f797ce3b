package main

import (
	"os"
	"strings"
	"testing"
)

const sample = `# a comment

id: one
file: pkg/a.go
line: if x > 0 {
to: if x >= 0 {
pkgs: ./pkg ./other
desc: off by one

# the second of two identical lines
id: two
file: pkg/a.go
line: return nil
after: second()
to:
pkgs: ./pkg
desc: drops a return
`

const source = `package pkg

func f(x int) error {
	if x > 0 {
		first()
		return nil
	}
	second()
	return nil
}
`

func TestParseAndApply(t *testing.T) {
	ms, err := parseList(strings.NewReader(sample), "sample")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d mutations, want 2", len(ms))
	}
	if m := ms[0]; m.ID != "one" || m.File != "pkg/a.go" || m.Line != "if x > 0 {" || m.To != "if x >= 0 {" ||
		strings.Join(m.Pkgs, ",") != "./pkg,./other" || m.Desc != "off by one" || m.pkgOf() != "./pkg" {
		t.Errorf("first mutation %+v", m)
	}
	got, line, err := ms[0].apply([]byte(source))
	if err != nil || line != 4 || !strings.Contains(string(got), "\tif x >= 0 {\n") || strings.Count(string(got), "\n") != strings.Count(source, "\n") {
		t.Errorf("apply one = line %d, %v:\n%s", line, err, got)
	}
	got, line, err = ms[1].apply([]byte(source))
	if err != nil || line != 9 || strings.Count(string(got), "return nil") != 1 || !strings.Contains(string(got), "\t\tfirst()\n\t\treturn nil\n") {
		t.Errorf("apply two = line %d, %v:\n%s", line, err, got)
	}
}

func TestApplyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    mutation
		want string
	}{
		{"absent", mutation{Line: "return err"}, "no line contains"},
		{"twice", mutation{Line: "return nil"}, "2 lines contain"},
		{"twice in a line", mutation{Line: "x"}, "lines contain"},
		{"after absent", mutation{Line: "return nil", After: "third()"}, "within 3 lines below"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := tc.m.apply([]byte(source)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("apply = %v, want an error with %q", err, tc.want)
			}
		})
	}
	m := mutation{Line: "f(x int) error", To: "f(x int) (err error)"}
	if _, _, err := m.apply([]byte("func f(x int) error { return f(x int) error }\n")); err == nil {
		t.Error("a line with the text twice was mutated")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, list, want string }{
		{"missing key", "id: a\nfile: f.go\nline: x\nto: y\npkgs: ./p\n", `missing "desc"`},
		{"duplicate id", "id: a\nfile: f.go\nline: x\nto: y\npkgs: ./p\ndesc: d\n\nid: a\nfile: f.go\nline: x\nto: y\npkgs: ./p\ndesc: d\n", "duplicate id"},
		{"no change", "id: a\nfile: f.go\nline: x\nto: x\npkgs: ./p\ndesc: d\n", "same as line"},
		{"unknown key", "id: a\nfile: f.go\nline: x\nto: y\npkgs: ./p\ndesc: d\nwhy: w\n", "unknown key"},
		{"bad package", "id: a\nfile: f.go\nline: x\nto: y\npkgs: pkg\ndesc: d\n", "must start with ./"},
		{"outside", "id: a\nfile: ../f.go\nline: x\nto: y\npkgs: ./p\ndesc: d\n", "inside the module"},
		{"key twice", "id: a\nid: b\nfile: f.go\nline: x\nto: y\npkgs: ./p\ndesc: d\n", "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseList(strings.NewReader(tc.list), "l"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseList = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// The repository's list parses (whether each mutation still applies to
// the code is checked by go run ./test/mutate -check).
func TestMutationsListParses(t *testing.T) {
	f, err := os.Open("../mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := parseList(f, "test/mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 36 {
		t.Errorf("%d mutations, want the issue's 11 and at least 25 more", len(ms))
	}
}
