package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

// testSource is the daemon's process source over the real /proc, with a
// tagger whose secret the test knows.
func testSource(t *testing.T) (*processSource, *watch.Tagger, string) {
	t.Helper()
	testenv.RequireRoot(t, "reading other processes' environment")
	scan, err := watch.New(watch.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watch.NewWatcher(watch.Config{})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := watch.BootID("/proc")
	if err != nil {
		t.Fatal(err)
	}
	tagger, err := watch.NewTagger([]byte("0123456789abcdef0123456789abcdef"), boot)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newProcessSource(scan, w, boot, tagger, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return src, tagger, boot
}

// startHelper starts argv with env, in its own session or not, and kills it
// at the end of the test.
func startHelper(t *testing.T, argv, env []string, setsid bool) procInfo {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = env
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	var p procInfo
	waitFor(t, "the helper to run", func() bool {
		var ok bool
		p, ok = identify(c.Process.Pid)
		return ok
	})
	return p
}

// A valid tag is not enough: a process that does not lead its own session
// (a child the program forked, which inherited the tag) is not adopted by
// it.
func TestFindTaggedNeedsSessionLeader(t *testing.T) {
	src, tagger, _ := testSource(t)
	ticks, err := watch.NowTicks()
	if err != nil {
		t.Fatal(err)
	}
	entry := tagger.Entry(watch.Tag{Program: "web", Generation: 1, Ticks: ticks, Config: "ab"})
	leader := startHelper(t, testenv.HelperArgv("sleep"), []string{entry}, true)
	member := startHelper(t, testenv.HelperArgv("sleep"), []string{entry}, false)
	var found []supervisor.Found
	waitFor(t, "the leader to be found by its tag", func() bool {
		src.mu.Lock()
		src.tagged = nil // a fresh pass over /proc
		src.mu.Unlock()
		found, err = src.FindTagged("web")
		return err == nil && len(found) > 0
	})
	for _, f := range found {
		if f.PID == member.pid {
			t.Errorf("adopted pid %d, which does not lead its session", member.pid)
		}
	}
	if len(found) != 1 || found[0].PID != leader.pid || found[0].Generation != 1 {
		t.Errorf("found %+v, want the leader %d with generation 1", found, leader.pid)
	}
}

// A recorded adopted process is taken back only while it runs the recorded
// executable, as the recorded user, and still matches the program.
func TestVerifyAdoptedChecksExecutable(t *testing.T) {
	src, _, boot := testSource(t)
	token := fmt.Sprintf("verify-%d", time.Now().UnixNano())
	p := startHelper(t, testenv.HelperArgv("sleep", token), nil, true)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	if err != nil {
		t.Fatal(err)
	}
	spec := config.DefaultProgram()
	spec.Name, spec.Command = "legacy", testenv.HelperArgv("sleep", token)
	spec.Match = &config.Match{Cmdline: token + "$"}
	inst := supervisor.Instance{Program: "legacy", PID: p.pid, StartTime: p.start, BootID: boot, Exe: exe, UID: 0}
	if err := src.Verify(inst, &spec, ""); err != nil {
		t.Fatalf("the very process was not proven: %v", err)
	}
	for name, bad := range map[string]func(*supervisor.Instance, *config.Program){
		"another executable": func(i *supervisor.Instance, _ *config.Program) { i.Exe = "/usr/bin/other" },
		"another user":       func(i *supervisor.Instance, _ *config.Program) { i.UID = 65534 },
		"no match any more": func(_ *supervisor.Instance, s *config.Program) {
			s.Match = &config.Match{Cmdline: "nothing-matches-this$"}
		},
		"program gone": nil,
	} {
		i, s := inst, spec
		m := *spec.Match
		s.Match = &m
		sp := &s
		if bad == nil {
			sp = nil
		} else {
			bad(&i, sp)
		}
		err := src.Verify(i, sp, "")
		if err == nil || errors.Is(err, supervisor.ErrGone) {
			t.Errorf("%s: Verify = %v, want not proven", name, err)
		}
	}
}

// A matching process runs as the program's user only if both its real and
// its effective uid are that user's: a set-user-id program run by someone
// else is not the program.
func TestFindRefusesOtherRealUID(t *testing.T) {
	src, _, _ := testSource(t)
	token := fmt.Sprintf("find-%d", time.Now().UnixNano())
	argv := localHelperArgv("euid", "65534", token)
	p := startHelper(t, argv, nil, true)
	waitFor(t, "the helper to take its effective uid", func() bool {
		d, err := src.scan.Inspect(p.pid)
		return err == nil && d.EUID == 65534
	})
	spec := config.DefaultProgram()
	spec.Name, spec.Command, spec.User = "suid", argv, "nobody"
	spec.Match = &config.Match{Cmdline: token + "$"}
	found, err := src.Find(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 0 {
		t.Errorf("found %+v: a process with real uid 0 taken for nobody's", found)
	}
	// The same process is root's by its real uid only: not the program of
	// a root program either.
	spec.User = ""
	if found, err = src.Find(spec); err != nil || len(found) != 0 {
		t.Errorf("found %+v, %v for root: its effective uid is nobody's", found, err)
	}
}
