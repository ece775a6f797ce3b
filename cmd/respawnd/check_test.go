package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/watch"
)

func TestCheckValid(t *testing.T) {
	for _, f := range []string{"../../examples/demo.yaml", "../../examples/reference.yaml"} {
		var out, errOut bytes.Buffer
		if code := runCheck(f, &out, &errOut); code != 0 {
			t.Errorf("%s: exit %d: %s", f, code, errOut.String())
		}
		if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], filepath.Base(f)) {
			t.Errorf("%s: summary %q, want one line naming the file", f, out.String())
		}
	}
}

func TestCheckListsEveryError(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "bad.yaml", `programs:
  - name: API
    command: []
    restart: {policy: sometimes, backoff: {initial: fast}}
    bogus: 1
  - name: api2
    command: ["/bin/true"]
    stop: {signal: SIGNOPE}
`)
	var out, errOut bytes.Buffer
	if code := runCheck(f, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) < 6 {
		t.Errorf("got %d errors, want at least 6:\n%s", len(lines), errOut.String())
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(f) + `:\d+: [a-z_\[\]0-9.]+: .+`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("error %q is not FILE:LINE: field: message", l)
		}
	}
	for _, want := range []string{":2: programs[0].name", ":3: programs[0].command", ":4: programs[0].restart.policy", ":5: programs[0].bogus", ":8: programs[1].stop.signal"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("errors do not mention %q:\n%s", want, errOut.String())
		}
	}
}

// The variable a config may not set is the one that carries the tag.
func TestReservedEnvIsTheTag(t *testing.T) {
	if config.ReservedEnv != watch.TagKey {
		t.Errorf("config reserves %s, the tag is %s", config.ReservedEnv, watch.TagKey)
	}
}
