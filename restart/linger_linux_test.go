package restart_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// groupWithStubbornMember starts a shell that dies on SIGTERM and, in its
// process group, a helper that ignores SIGTERM; it returns the program and
// the member's pid once the member ignores the signal.
func groupWithStubbornMember(t *testing.T, l *restart.Launcher) (*restart.Process, int) {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "member")
	var q []string
	for _, a := range testenv.HelperArgv("ignore-term") {
		q = append(q, shQuote(a))
	}
	script := strings.Join(q, " ") + " & echo $! > " + shQuote(pidfile) + "; wait"
	p := start(t, l, restart.Command{Name: "group", Argv: []string{"/bin/sh", "-c", script}, KillGroupOnExit: true})
	member := readPIDFile(t, pidfile)
	waitIgnoresTerm(t, member)
	return p, member
}

func waitIgnoresTerm(t *testing.T, pid int) {
	t.Helper()
	testenv.Eventually(t, "the member to ignore SIGTERM", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return err == nil && mask&(1<<(uint(syscall.SIGTERM)-1)) != 0
			}
		}
		return false
	})
}

// zombie reports whether pid is an unreaped child of this process.
func zombie(pid int) bool { return !reaped(pid) }

// With Linger, the leader's exit does not kill the rest of its group: the
// leader stays unreaped (its group id reserved) until the members are gone.
func TestLingerKeepsGroupUntilMembersExit(t *testing.T) {
	testenv.RequireRoot(t, "being a child subreaper")
	l, _ := newTestLauncher(restart.LauncherConfig{Subreaper: true})
	runReaper(t, l)
	p, member := groupWithStubbornMember(t, l)

	p.Linger(time.Hour)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the leader to exit and stay unreaped", func() bool { return zombie(p.PID()) })
	select {
	case <-p.Done():
		t.Fatal("the leader was reaped while a member of its group was alive")
	default:
	}
	if testenv.Gone(member) {
		t.Fatal("the member died with the leader despite Linger")
	}
	// The member ends: the group is empty, the leader is reaped.
	killHelper(member)
	if st := waitDone(t, p); !st.Signaled || st.Signal != syscall.SIGTERM {
		t.Errorf("leader exit %+v, want SIGTERM", st)
	}
}

// Linger ends at its timeout: what is left of the group gets SIGKILL.
func TestLingerTimeoutKillsGroup(t *testing.T) {
	testenv.RequireRoot(t, "being a child subreaper")
	l, _ := newTestLauncher(restart.LauncherConfig{Subreaper: true})
	runReaper(t, l)
	p, member := groupWithStubbornMember(t, l)
	p.Linger(200 * time.Millisecond)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	testenv.Eventually(t, "the member to be killed", func() bool { return testenv.Gone(member) })
}

// Without Linger, the rest of the group goes the moment the leader exits.
func TestNoLingerKillsGroupAtOnce(t *testing.T) {
	testenv.RequireRoot(t, "being a child subreaper")
	l, _ := newTestLauncher(restart.LauncherConfig{Subreaper: true})
	runReaper(t, l)
	p, member := groupWithStubbornMember(t, l)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	testenv.Eventually(t, "the member to be killed", func() bool { return testenv.Gone(member) })
}

// DrainOrphans ends descendants that escaped their group (setsid) and were
// reparented to respawnd: SIGTERM first, SIGKILL after the grace period,
// and every one of them is reaped.
func TestDrainOrphans(t *testing.T) {
	testenv.RequireRoot(t, "being a child subreaper")
	l, _ := newTestLauncher(restart.LauncherConfig{Subreaper: true})
	runReaper(t, l)
	dir := t.TempDir()
	var polite, stubborn []string
	for _, a := range testenv.HelperArgv("sleep") {
		polite = append(polite, shQuote(a))
	}
	for _, a := range testenv.HelperArgv("ignore-term") {
		stubborn = append(stubborn, shQuote(a))
	}
	script := "setsid " + strings.Join(polite, " ") + " & echo $! > " + shQuote(filepath.Join(dir, "a")) +
		"; setsid " + strings.Join(stubborn, " ") + " & echo $! > " + shQuote(filepath.Join(dir, "b")) + "; exit 0"
	p := start(t, l, restart.Command{Name: "escaper", Argv: []string{"/bin/sh", "-c", script}})
	waitDone(t, p)
	a, b := readPIDFile(t, filepath.Join(dir, "a")), readPIDFile(t, filepath.Join(dir, "b"))
	waitIgnoresTerm(t, b)
	if testenv.Gone(a) || testenv.Gone(b) {
		t.Fatal("the escaped processes died before the drain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := l.DrainOrphans(ctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{a, b} {
		if !testenv.Gone(pid) || !reaped(pid) {
			t.Errorf("escaped pid %d still there or unreaped after DrainOrphans", pid)
		}
	}
}
