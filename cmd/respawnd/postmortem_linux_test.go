package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// runWhy runs `respawnd why ARGS` against the daemon of stateDir.
func runWhy(t *testing.T, stateDir string, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"why", "--state.dir", stateDir}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("respawnd why %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

// A program that prints a known line and is OOM-killed, and one that prints
// a known line and exits 3: `respawnd why` tells each reason, the memory at
// death and that line; the records outlive a kill -9 of respawnd; each
// program's hook runs once, with the exit's environment and its record.
func TestDeathRecordsAndHooks(t *testing.T) {
	testenv.RequireRoot(t, "memory cgroups for a real OOM kill")
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	hookOut := filepath.Join(dir, "hooks")
	// The hook of flaky runs as nobody, and writes here.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(hookOut, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(hookOut, 0o1777); err != nil {
		t.Fatal(err)
	}
	hog := yamlList(append([]string{"/bin/sh", "-c", `echo "hog's last words"; exec "$0" "$@"`}, testenv.HelperArgv("hog")...))
	hook := yamlList([]string{"/bin/sh", "-c", `f=` + hookOut + `/$RESPAWND_PROGRAM.$RESPAWND_GENERATION; env | grep ^RESPAWND_ | sort > $f.env; cat "$RESPAWND_RECORD" > $f.json; id -u > $f.uid; echo ran >> ` + hookOut + `/$RESPAWND_PROGRAM.pid$RESPAWND_PID.runs`})
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`hooks:
  on_exit: {command: %s, timeout: 30s}
programs:
  - name: hog
    command: %s
    memory: {max: 32MiB, swap_max: 0}
    restart: {policy: never}
  - name: flaky
    command: ["/bin/sh", "-c", "echo flaky failing >&2; exit 3"]
    user: nobody
    restart: {policy: never}
`, hook, hog))
	first := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)

	var hogOut, flakyOut string
	waitFor(t, "both deaths recorded", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl := api.NewClient(api.SocketPath(stateDir))
		h, err1 := cl.Deaths(ctx, "hog", 10)
		f, err2 := cl.Deaths(ctx, "flaky", 10)
		return err1 == nil && err2 == nil && len(h) == 1 && len(f) == 1
	})
	hogOut = runWhy(t, stateDir, "hog")
	flakyOut = runWhy(t, stateDir, "flaky")
	for _, want := range []string{"hog: oom_kill SIGKILL", "oom kill CONSTRAINT_MEMCG", "memory (cgroup", "peak", "at oom kill", "events      oom_kill +1", "stdout | hog's last words"} {
		if !strings.Contains(hogOut, want) {
			t.Errorf("respawnd why hog lacks %q:\n%s", want, hogOut)
		}
	}
	for _, want := range []string{"flaky: exit_error (exit code 3)", "memory (cgroup", "stderr | flaky failing"} {
		if !strings.Contains(flakyOut, want) {
			t.Errorf("respawnd why flaky lacks %q:\n%s", want, flakyOut)
		}
	}

	// Each hook ran once, with the exit's variables and its record.
	waitFor(t, "both hooks", func() bool {
		a, _ := filepath.Glob(filepath.Join(hookOut, "*.uid"))
		return len(a) == 2
	})
	for _, h := range []struct {
		program, reason, code, signal, uid string
	}{
		{"hog", "oom_kill", "", "SIGKILL", "0"},
		{"flaky", "exit_error", "3", "", "65534"},
	} {
		base := filepath.Join(hookOut, h.program+".1")
		env, err := os.ReadFile(base + ".env")
		if err != nil {
			t.Fatalf("hook of %s: %v", h.program, err)
		}
		var rec api.Death
		if b, err := os.ReadFile(base + ".json"); err != nil || json.Unmarshal(b, &rec) != nil {
			t.Fatalf("hook of %s: record %v: %q", h.program, err, b)
		}
		for _, want := range []string{"RESPAWND_PROGRAM=" + h.program, "RESPAWND_REASON=" + h.reason, "RESPAWND_EXIT_CODE=" + h.code + "\n",
			"RESPAWND_SIGNAL=" + h.signal + "\n", fmt.Sprintf("RESPAWND_PID=%d\n", rec.PID), "RESPAWND_GENERATION=1\n"} {
			if !strings.Contains(string(env), want) {
				t.Errorf("hook of %s: environment lacks %q:\n%s", h.program, want, env)
			}
		}
		if rec.Program != h.program || rec.Reason != h.reason || rec.PID == 0 {
			t.Errorf("hook of %s got the record %+v", h.program, rec)
		}
		if uid, _ := os.ReadFile(base + ".uid"); strings.TrimSpace(string(uid)) != h.uid {
			t.Errorf("hook of %s ran as uid %s, want the program's %s", h.program, uid, h.uid)
		}
	}

	// The records outlive respawnd.
	kill9(t, first)
	startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	waitFor(t, "the second respawnd's socket", func() bool {
		_, err := os.Stat(api.SocketPath(stateDir))
		return err == nil
	})
	waitFor(t, "the records read back", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := api.NewClient(api.SocketPath(stateDir)).Deaths(ctx, "hog", 10)
		return err == nil && len(d) >= 1
	})
	// The second respawnd starts both programs again (restart: never holds
	// within one daemon's life), so new records come; the old ones stay.
	again := runWhy(t, stateDir, "hog", "-n", "5")
	if !strings.Contains(again, "hog's last words") || !strings.Contains(again, "generation 1") {
		t.Errorf("after kill -9 and a restart of respawnd, why hog -n 5:\n%s", again)
	}
	// Every exit ran its hook once, never twice. The second respawnd's own
	// exits (two new pids) come after any exit it reports again from its
	// state file: the records are written in order and one hook runs at a
	// time per program, so once their hooks ran, a second run of an old
	// one would be on disk too.
	var runs []string
	waitFor(t, "the hooks of the second respawnd's exits", func() bool {
		runs, _ = filepath.Glob(filepath.Join(hookOut, "*.runs"))
		return len(runs) >= 4
	})
	for _, r := range runs {
		if b, _ := os.ReadFile(r); string(b) != "ran\n" {
			t.Errorf("%s: hook ran %d times for one exit", filepath.Base(r), strings.Count(string(b), "ran"))
		}
	}
}
