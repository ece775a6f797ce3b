package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
)

// mutation is one entry of the list: a one-line change of production code
// and the packages whose tests must notice it.
type mutation struct {
	ID   string
	File string // slash-separated, relative to the module root
	// Line is the original line, or a substring of it that occurs in
	// exactly one line of File (and once in that line).
	Line string
	// After, when set, narrows the lines that contain Line to those with
	// After in one of the afterWindow lines above.
	After string
	// To replaces Line's text within the line; empty deletes it.
	To   string
	Pkgs []string // ./dir patterns
	Desc string
	// at is the line number in the list file where the entry starts.
	at int
}

// afterWindow is how many lines above a candidate line After is looked
// for.
const afterWindow = 3

// idRE is what an id looks like.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)

// parseList reads the list format: blocks of "key: value" lines separated
// by blank lines; lines starting with # are comments. The value is the rest
// of the line after "key:" and one space; trailing blanks are dropped.
func parseList(r io.Reader, name string) ([]mutation, error) {
	var (
		out  []mutation
		cur  *mutation
		seen = map[string]bool{}
		errs []error
		keys map[string]bool
	)
	finish := func() {
		if cur == nil {
			return
		}
		m := *cur
		cur = nil
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %s", name, m.at, m.ID, fmt.Sprintf(format, args...)))
		}
		for _, k := range []string{"id", "file", "line", "to", "pkgs", "desc"} {
			if !keys[k] {
				bad("missing %q", k)
			}
		}
		switch {
		case !idRE.MatchString(m.ID):
			bad("id must match %s", idRE)
		case seen[m.ID]:
			bad("duplicate id")
		}
		seen[m.ID] = true
		if m.File != "" && (path.IsAbs(m.File) || strings.HasPrefix(path.Clean(m.File), "..") || strings.Contains(m.File, `\`)) {
			bad("file must be a slash-separated path inside the module")
		}
		if keys["line"] && strings.TrimSpace(m.Line) == "" {
			bad("line is empty")
		}
		if m.Line == m.To {
			bad("to is the same as line")
		}
		for _, p := range m.Pkgs {
			if !strings.HasPrefix(p, "./") {
				bad("package %q must start with ./", p)
			}
		}
		out = append(out, m)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimRight(sc.Text(), " \t\r")
		if strings.HasPrefix(text, "#") {
			continue
		}
		if text == "" {
			finish()
			continue
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: want \"key: value\"", name, n))
			continue
		}
		val = strings.TrimPrefix(val, " ")
		if cur == nil {
			cur = &mutation{at: n}
			keys = map[string]bool{}
		}
		if keys[key] {
			errs = append(errs, fmt.Errorf("%s:%d: %q given twice", name, n, key))
			continue
		}
		keys[key] = true
		switch key {
		case "id":
			cur.ID = val
		case "file":
			cur.File = val
		case "line":
			cur.Line = strings.TrimLeft(val, " \t")
		case "after":
			cur.After = strings.TrimLeft(val, " \t")
		case "to":
			cur.To = val
		case "pkgs":
			cur.Pkgs = strings.Fields(val)
		case "desc":
			cur.Desc = val
		default:
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", name, n, key))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	finish()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// apply returns src with the mutation applied and the 1-based number of the
// line it changed. It fails unless exactly one line matches (and contains
// Line once).
func (m *mutation) apply(src []byte) ([]byte, int, error) {
	lines := strings.SplitAfter(string(src), "\n")
	match := -1
	count := 0
	for i, l := range lines {
		if !strings.Contains(l, m.Line) {
			continue
		}
		if m.After != "" && !slices.ContainsFunc(lines[max(0, i-afterWindow):i], func(above string) bool {
			return strings.Contains(above, m.After)
		}) {
			continue
		}
		count++
		match = i
	}
	switch {
	case count == 0 && m.After != "":
		return nil, 0, fmt.Errorf("no line contains %q within %d lines below one containing %q", m.Line, afterWindow, m.After)
	case count == 0:
		return nil, 0, fmt.Errorf("no line contains %q", m.Line)
	case count > 1:
		return nil, 0, fmt.Errorf("%d lines contain %q (narrow it with after:)", count, m.Line)
	}
	if n := strings.Count(lines[match], m.Line); n != 1 {
		return nil, 0, fmt.Errorf("line %d contains %q %d times", match+1, m.Line, n)
	}
	lines[match] = strings.Replace(lines[match], m.Line, m.To, 1)
	return []byte(strings.Join(lines, "")), match + 1, nil
}

// pkgOf returns the package pattern of the mutated file.
func (m *mutation) pkgOf() string {
	dir := path.Dir(m.File)
	if dir == "." {
		return "."
	}
	return "./" + dir
}
