package restart_test

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

func newTestLauncher(cfg restart.LauncherConfig) (*restart.Launcher, *testenv.Buffer) {
	out := &testenv.Buffer{}
	if cfg.Stdout == nil {
		cfg.Stdout = out
	}
	if cfg.Stderr == nil {
		cfg.Stderr = out
	}
	return restart.NewLauncher(cfg), out
}

const waitTimeout = 20 * time.Second

// start starts cmd and makes sure, even when the test fails, that its
// process group is killed and its exit collected.
func start(t *testing.T, l *restart.Launcher, cmd restart.Command) *restart.Process {
	t.Helper()
	p, err := l.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		select {
		case <-p.Done():
		case <-time.After(waitTimeout):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", cmd.Name, p.PID())
		}
	})
	return p
}

func waitDone(t *testing.T, p *restart.Process) restart.ExitStatus {
	t.Helper()
	select {
	case <-p.Done():
		return p.Exit()
	case <-time.After(waitTimeout):
		t.Fatalf("pid %d did not exit within %v", p.PID(), waitTimeout)
		return restart.ExitStatus{}
	}
}

func waitOutput(t *testing.T, p *restart.Process) {
	t.Helper()
	select {
	case <-p.OutputDone():
	case <-time.After(waitTimeout):
		t.Fatalf("output of pid %d not done within %v", p.PID(), waitTimeout)
	}
}

// readPIDFile waits for a helper to write a pid to path and registers a
// cleanup that SIGKILLs that pid if it is still one of the test's helpers.
func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testenv.Eventually(t, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() { killHelper(pid) })
	return pid
}

// killHelper SIGKILLs pid only if it still runs this test binary as a
// helper, through a pidfd opened before that check, so that a reused pid
// is never hit.
func killHelper(pid int) { testenv.KillHelper(pid) }

func TestStartExit(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newTestLauncher(restart.LauncherConfig{})
	before := time.Now()
	p := start(t, l, restart.Command{Name: "exit3", Argv: testenv.HelperArgv("exit", "3")})
	st := waitDone(t, p)
	waitOutput(t, p)
	if p.PID() <= 0 || p.StartTime().Before(before) {
		t.Errorf("PID %d, StartTime %v; want a pid and a time after %v", p.PID(), p.StartTime(), before)
	}
	if st.Signaled || st.Code != 3 || st.Core {
		t.Errorf("exit status %+v, want code 3", st)
	}
	if st.Time.Before(p.StartTime()) {
		t.Errorf("exit time %v before start time %v", st.Time, p.StartTime())
	}
}

func TestStartExitZero(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "exit0", Argv: testenv.HelperArgv("exit", "0")})
	if st := waitDone(t, p); st.Signaled || st.Code != 0 {
		t.Errorf("exit status %+v, want code 0", st)
	}
	waitOutput(t, p)
}

// The shared "crash" helper dies of its signal only with GOTRACEBACK=crash;
// otherwise the Go runtime turns a SIGSEGV sent by kill into exit code 2.
func TestStartSignalAndCore(t *testing.T) {
	verifyNoLeaks(t)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_CORE, &old) })

	l, _ := newTestLauncher(restart.LauncherConfig{})
	for _, tc := range []struct {
		name  string
		limit uint64
	}{
		{"no core", 0},
		{"core", max(old.Max, 64<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Children inherit the soft limit. A hard limit too small for a
			// core dump is raised, which needs CAP_SYS_RESOURCE.
			err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: tc.limit, Max: max(tc.limit, old.Max)})
			if errors.Is(err, unix.EPERM) {
				testenv.Skip(t, "raising the RLIMIT_CORE hard limit from %d to %d for a core dump: %v", old.Max, tc.limit, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir() // a core named "core" lands in the working directory
			p := start(t, l, restart.Command{Name: "crash", Argv: testenv.HelperArgv("crash"), Env: []string{"GOTRACEBACK=crash"}, Dir: dir})
			st := waitDone(t, p)
			waitOutput(t, p)
			if !st.Signaled || st.Signal != syscall.SIGSEGV && st.Signal != syscall.SIGABRT {
				t.Fatalf("exit status %+v, want death by SIGSEGV or SIGABRT", st)
			}
			if want := tc.limit != 0; st.Core != want {
				t.Errorf("Core = %v, want %v", st.Core, want)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	procs := filepath.Join(dir, "procs") // stands in for cgroup.procs
	if err := os.WriteFile(procs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notCgroup, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer notCgroup.Close()
	sleep := testenv.HelperArgv("sleep")

	tests := []struct {
		name string
		cmd  restart.Command
		op   string
		is   error
	}{
		{"empty argv", restart.Command{}, restart.OpLookupCommand, restart.ErrNoCommand},
		{"command not in PATH", restart.Command{Argv: []string{"respawnd-no-such-command"}}, restart.OpLookupCommand, fs.ErrNotExist},
		{"unknown user", restart.Command{Argv: sleep, User: "respawnd-no-such-user"}, restart.OpLookupUser, nil},
		{"unknown group", restart.Command{Argv: sleep, Group: "respawnd-no-such-group"}, restart.OpLookupGroup, nil},
		{"missing dir", restart.Command{Argv: sleep, Dir: filepath.Join(dir, "missing")}, restart.OpChdir, fs.ErrNotExist},
		{"dir is a file", restart.Command{Argv: sleep, Dir: file}, restart.OpChdir, syscall.ENOTDIR},
		{"missing program", restart.Command{Argv: []string{filepath.Join(dir, "missing")}}, restart.OpExec, fs.ErrNotExist},
		{"program not executable", restart.Command{Argv: []string{file}}, restart.OpExec, fs.ErrPermission},
		{"output in missing dir", restart.Command{Argv: sleep, OutputFile: filepath.Join(dir, "missing", "log")}, restart.OpOpenOutput, fs.ErrNotExist},
		{"cgroup fd not a cgroup", restart.Command{Argv: sleep, CgroupFD: int(notCgroup.Fd())}, restart.OpJoinCgroup, nil},
		{"shim: missing cgroup.procs", restart.Command{Argv: sleep, CgroupProcs: []string{filepath.Join(dir, "missing", "cgroup.procs")}}, restart.OpJoinCgroup, fs.ErrNotExist},
		{"shim: missing program", restart.Command{Argv: []string{filepath.Join(dir, "missing")}, CgroupProcs: []string{procs}}, restart.OpExec, fs.ErrNotExist},
		{"shim: program not executable", restart.Command{Argv: []string{file}, CgroupProcs: []string{procs}}, restart.OpExec, fs.ErrPermission},
		{"shim: missing dir", restart.Command{Argv: sleep, Dir: filepath.Join(dir, "missing"), CgroupProcs: []string{procs}}, restart.OpChdir, fs.ErrNotExist},
	}
	l, _ := newTestLauncher(restart.LauncherConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd.Name = "victim"
			p, err := l.Start(tt.cmd)
			if err == nil {
				_ = p.Kill()
				<-p.Done()
				t.Fatalf("Start succeeded, want a %q error", tt.op)
			}
			var se *restart.StartError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is no *StartError", err, err)
			}
			if se.Op != tt.op || se.Program != "victim" {
				t.Errorf("Op %q, Program %q; want %q, victim (error: %v)", se.Op, se.Program, tt.op, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "starting victim: "+tt.op+": ") {
				t.Errorf("message %q lacks the program and step", err)
			}
		})
	}
	var unknownUser user.UnknownUserError
	_, err = l.Start(restart.Command{Argv: sleep, User: "respawnd-no-such-user"})
	if !errors.As(err, &unknownUser) {
		t.Errorf("unknown user: %v does not wrap user.UnknownUserError", err)
	}
}

func TestStartLooksUpPath(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "respawnd-test-prog")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	l, out := newTestLauncher(restart.LauncherConfig{})
	argv := localHelperArgv("args", "a b", "c")
	argv[0] = "respawnd-test-prog"
	p := start(t, l, restart.Command{Name: "path", Argv: argv})
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit status %+v", st)
	}
	waitOutput(t, p)
	if got, want := out.String(), "path | a b\npath | c\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestStartEnvExact(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		env   []string
		procs []string
	}{
		{"given", []string{"A=1", "B=two words"}, nil},
		{"nil is empty", nil, nil},
		{"given through the shim", []string{"A=1", "B=two words"}, []string{filepath.Join(dir, "procs")}},
		{"nil through the shim", nil, []string{filepath.Join(dir, "procs")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, out := newTestLauncher(restart.LauncherConfig{})
			p := start(t, l, restart.Command{Name: "env", Argv: localHelperArgv("env"), Env: tc.env, CgroupProcs: tc.procs})
			if st := waitDone(t, p); st.Code != 0 {
				t.Fatalf("exit status %+v", st)
			}
			waitOutput(t, p)
			var got []string
			for line := range strings.Lines(out.String()) {
				got = append(got, strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "env | "))
			}
			if !slices.Equal(got, tc.env) {
				t.Errorf("environment %q, want %q", got, tc.env)
			}
		})
	}
}

// The shim path without a real cgroup: a plain file stands in for
// cgroup.procs, which shows the pid was written before the program ran as
// that same pid, and that argv reaches the program untouched.
func TestShimWritesPIDAndExecs(t *testing.T) {
	verifyNoLeaks(t)
	procs := filepath.Join(t.TempDir(), "cgroup.procs")
	if err := os.WriteFile(procs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, out := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "shim", Argv: localHelperArgv("args", "x", "", "y z"), CgroupProcs: []string{procs, procs}})
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit status %+v", st)
	}
	waitOutput(t, p)
	if got, want := out.String(), "shim | x\nshim | \nshim | y z\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	b, err := os.ReadFile(procs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), strconv.Itoa(p.PID()); got != want {
		t.Errorf("procs file holds %q, want the program's pid %q", got, want)
	}
}

func TestOutputNoInterleaving(t *testing.T) {
	verifyNoLeaks(t)
	l, out := newTestLauncher(restart.LauncherConfig{})
	sizes := []int{0, 10, 4000, 5000, 20000} // some beyond PIPE_BUF
	const lines = 200
	var procs []*restart.Process
	for i, size := range sizes {
		name := fmt.Sprintf("prog%d", i)
		procs = append(procs, start(t, l, restart.Command{
			Name: name, Argv: localHelperArgv("lines", name, strconv.Itoa(lines), strconv.Itoa(size)),
		}))
	}
	for _, p := range procs {
		waitDone(t, p)
		waitOutput(t, p)
	}
	count := make(map[string]int)
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var name, id string
		var i int
		var pad string
		n, err := fmt.Sscanf(line, "%s | %s %d %s", &name, &id, &i, &pad)
		if size := sizes[prefixIndex(name)]; size == 0 {
			n, err = fmt.Sscanf(line, "%s | %s %d", &name, &id, &i)
			if n != 3 || err != nil || line != fmt.Sprintf("%s | %s %d ", name, id, i) {
				t.Fatalf("mangled line %.80q", line)
			}
		} else if n != 4 || err != nil || name != id || len(pad) != size || strings.Trim(pad, "x") != "" {
			t.Fatalf("mangled line %.80q (…%d bytes)", line, len(line))
		}
		count[name]++
	}
	for i := range sizes {
		if name := fmt.Sprintf("prog%d", i); count[name] != lines {
			t.Errorf("%s: %d lines, want %d", name, count[name], lines)
		}
	}
}

func prefixIndex(name string) int {
	i, _ := strconv.Atoi(strings.TrimPrefix(name, "prog"))
	return i
}

func TestOutputLongLineSplit(t *testing.T) {
	verifyNoLeaks(t)
	l, out := newTestLauncher(restart.LauncherConfig{})
	const size = 150000
	p := start(t, l, restart.Command{Name: "long", Argv: localHelperArgv("long", strconv.Itoa(size))})
	waitDone(t, p)
	waitOutput(t, p)
	var total int
	for line := range strings.Lines(out.String()) {
		body, ok := strings.CutPrefix(line, "long | ")
		if !ok || !strings.HasSuffix(body, "\n") {
			t.Fatalf("line %.40q… lacks prefix or newline", line)
		}
		body = strings.TrimSuffix(body, "\n")
		if len(body) > 64<<10 || strings.Trim(body, "x") != "" {
			t.Fatalf("piece of %d bytes, want at most 64 KiB of x", len(body))
		}
		total += len(body)
	}
	if total != size {
		t.Errorf("%d bytes came through, want %d", total, size)
	}
}

func TestOutputFile(t *testing.T) {
	verifyNoLeaks(t)
	path := filepath.Join(t.TempDir(), "out.log")
	l, out := newTestLauncher(restart.LauncherConfig{})
	for range 2 {
		p := start(t, l, restart.Command{Name: "file", Argv: localHelperArgv("lines", "f", "2", "3"), OutputFile: path})
		waitDone(t, p)
		waitOutput(t, p)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), strings.Repeat("f 0 xxx\nf 1 xxx\n", 2); got != want {
		t.Errorf("file holds %q, want %q (appended, unprefixed)", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&^0o640 != 0 {
		t.Errorf("file mode %v (%v), want at most 0640", fi.Mode(), err)
	}
	if out.String() != "" {
		t.Errorf("launcher output %q, want none", out)
	}
}

// A grandchild that keeps the output pipe open must not delay the exit
// status; the copier finishes when the grandchild goes.
func TestGrandchildHoldingOutputDoesNotDelayDone(t *testing.T) {
	verifyNoLeaks(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	l, _ := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "forker", Argv: testenv.HelperArgv("fork-sleep", pidfile)})
	grandchild := readPIDFile(t, pidfile)
	// Kill only the leader; p's pid is unreaped, so it is still ours.
	if err := unix.Kill(p.PID(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed while a grandchild holds stdout")
	}
	if st := p.Exit(); !st.Signaled || st.Signal != syscall.SIGKILL {
		t.Errorf("exit status %+v, want SIGKILL", st)
	}
	select {
	case <-p.OutputDone():
		t.Fatal("OutputDone closed while the grandchild still holds the pipe")
	default:
	}
	if testenv.Gone(grandchild) {
		t.Fatal("grandchild died with its parent")
	}
	killHelper(grandchild)
	waitOutput(t, p)
}

func TestSignalKillsGroup(t *testing.T) {
	verifyNoLeaks(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	l, _ := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "forker", Argv: testenv.HelperArgv("fork-sleep", pidfile)})
	grandchild := readPIDFile(t, pidfile)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, p); !st.Signaled || st.Signal != syscall.SIGTERM {
		t.Errorf("exit status %+v, want SIGTERM", st)
	}
	testenv.Eventually(t, fmt.Sprintf("grandchild %d to die", grandchild), func() bool { return testenv.Gone(grandchild) })
	waitOutput(t, p)
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, restart.ErrProcessDone) {
		t.Errorf("Signal after reap: %v, want ErrProcessDone", err)
	}
	if err := p.Kill(); !errors.Is(err, restart.ErrProcessDone) {
		t.Errorf("Kill after reap: %v, want ErrProcessDone", err)
	}
}

func TestKillIgnoringTerm(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "stubborn", Argv: testenv.HelperArgv("ignore-term")})
	// Give the helper time to install its handler is not needed: SIGTERM
	// before that kills it, which the test accepts as well.
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, p); !st.Signaled || st.Signal != syscall.SIGKILL {
		t.Errorf("exit status %+v, want SIGKILL", st)
	}
	waitOutput(t, p)
}

func TestKillGroupOnExit(t *testing.T) {
	verifyNoLeaks(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	l, _ := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "forker", Argv: testenv.HelperArgv("fork-sleep", pidfile), KillGroupOnExit: true})
	grandchild := readPIDFile(t, pidfile)
	if err := unix.Kill(p.PID(), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	testenv.Eventually(t, fmt.Sprintf("grandchild %d to die", grandchild), func() bool { return testenv.Gone(grandchild) })
	waitOutput(t, p)
}

// Start must not return before the program exec'd: right after it, the
// process runs the program's executable, not respawnd's or the shim's.
func TestStartReturnsAfterExec(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(filepath.Join(dir, "procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	argv := testenv.HelperArgv("sleep")
	argv[0] = prog
	l, _ := newTestLauncher(restart.LauncherConfig{})
	for _, procs := range [][]string{nil, {filepath.Join(dir, "procs")}} {
		p := start(t, l, restart.Command{Name: "prog", Argv: argv, CgroupProcs: procs})
		got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID()))
		// Without the shim, Start is os/exec's, which returns once the
		// exec closed its close-on-exec pipe; /proc/PID/exe can still
		// name the old image for an instant after that on some kernels
		// (seen on 6.12 under emulation, 9 in 100), so it is read again,
		// for at most 5 ms. The shim's wait is respawnd's own and is
		// held to the first read.
		for deadline := time.Now().Add(5 * time.Millisecond); procs == nil && err == nil && got != prog && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
			got, err = os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID()))
		}
		if err != nil || got != prog {
			t.Errorf("shim %v: right after Start the process runs %q (%v), want %q", procs != nil, got, err, prog)
		}
		_ = p.Kill()
		waitDone(t, p)
		waitOutput(t, p)
	}
}

// A program does not keep respawnd's own OOM protection.
func TestChildOOMScoreAdj(t *testing.T) {
	testenv.RequireRoot(t, "setting oom_score_adj")
	verifyNoLeaks(t)
	zero := 0
	l, _ := newTestLauncher(restart.LauncherConfig{ChildOOMScoreAdj: &zero})
	// The test process gives itself another value than the programs must
	// get, as respawnd does (raising it needs no privilege, lowering does).
	own, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("500"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile("/proc/self/oom_score_adj", own, 0) })
	p := start(t, l, restart.Command{Name: "adj", Argv: testenv.HelperArgv("sleep")})
	t.Cleanup(func() { _ = p.Kill(); waitDone(t, p) })
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "0" {
		t.Errorf("program's oom_score_adj = %s, want 0", got)
	}
}

// TestStartHoldsOnePidfd: respawnd holds one pidfd per running child, not
// the os.Process's duplicate as well. Every descriptor it holds is copied
// by each fork and closed by each exec of every restart; with a thousand
// programs, the duplicates cost each restart about a millisecond.
func TestStartHoldsOnePidfd(t *testing.T) {
	l, _ := newTestLauncher(restart.LauncherConfig{})
	pidfds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "anon_inode:[pidfd]" {
				n++
			}
		}
		return n
	}
	before := pidfds()
	var ps []*restart.Process
	for i := range 3 {
		ps = append(ps, start(t, l, restart.Command{Name: fmt.Sprintf("sleeper%d", i), Argv: testenv.HelperArgv("sleep")}))
	}
	if n := pidfds() - before; n != 3 {
		t.Errorf("%d pidfds held for 3 running children, want 3", n)
	}
	for _, p := range ps {
		_ = p.Kill()
		waitDone(t, p)
	}
	if n := pidfds() - before; n != 0 {
		t.Errorf("%d pidfds still held once the children are reaped", n)
	}
}
