package watch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// liveScanner returns a Scanner of the real /proc.
func liveScanner(t testing.TB) *Scanner {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startNonChild starts argv as a grandchild of the test whose parent exits
// at once, so that it is reparented away from the test: respawnd's case of a
// process it did not start. The process is SIGKILLed in t.Cleanup, through
// a pidfd checked against its identity so that a reused pid is never hit.
func startNonChild(t testing.TB, argv ...string) Identity {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "pid")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{daemonizeArg, pidfile}, argv...)...)
	cmd.Stderr = os.Stderr
	// The race detector keeps an exiting program alive for a second by
	// default; the middle process has nothing to report.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := cmd.Run(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := liveScanner(t).Identify(pid)
	if err != nil {
		t.Fatalf("identifying the started process: %v", err)
	}
	t.Cleanup(func() { killIdentity(id) })
	return id
}

// startChild starts argv as a child of the test, killed and waited for in
// t.Cleanup.
func startChild(t testing.TB, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// killIdentity SIGKILLs id if it still runs, never another owner of its pid.
func killIdentity(id Identity) {
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(id.PID) + "/stat")
	if err != nil {
		return
	}
	if sf, err := parseStat(b); err == nil && sf.StartTime == id.StartTime {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// waitDone waits for p's death with a deadline.
func waitDone(t testing.TB, p *Proc) ExitInfo {
	t.Helper()
	select {
	case <-p.Done():
		return p.Exit()
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d: death not reported within 10s", p.PID())
		return ExitInfo{}
	}
}

// mkfifo makes a FIFO in a temporary directory.
func mkfifo(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
