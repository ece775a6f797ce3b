//go:build linux

package notify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// waitFor bounds every wait of these tests: generous, since a loaded CI
// host may be slow; a passing run waits milliseconds.
const waitFor = 20 * time.Second

// recorder collects what a Server hands out.
type recorder struct {
	mu      sync.Mutex
	msgs    []Message
	rejects []string // "program why"
	poke    chan struct{}
}

func newRecorder() *recorder { return &recorder{poke: make(chan struct{}, 1)} }

func (r *recorder) deliver(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.wake()
}

func (r *recorder) rejected(program, why string) {
	r.mu.Lock()
	r.rejects = append(r.rejects, program+" "+why)
	r.mu.Unlock()
	r.wake()
}

func (r *recorder) wake() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// wait polls until done holds for what was recorded, or fails the test.
func (r *recorder) wait(t *testing.T, what string, done func(msgs []Message, rejects []string) bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		ok := done(r.msgs, r.rejects)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.poke:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no %s within %s; messages %+v, rejects %q", what, waitFor, r.msgs, r.rejects)
		}
	}
}

func (r *recorder) snapshot() ([]Message, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...), append([]string(nil), r.rejects...)
}

func count[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}

// testNamespace is unique to the test and this process, so that parallel
// runs of the package never share a socket name.
func testNamespace(t *testing.T) string {
	return fmt.Sprintf("test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "."))
}

// startServer runs a Server until the test ends, then checks that Run
// returned nil and that no goroutine is left.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	// Goroutines running before (other servers of the test) are not this
	// server's.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, s.Run)
	return s
}

func open(t *testing.T, s *Server, program string, member func(int) bool, deliver func(Message)) (string, func()) {
	t.Helper()
	addr, closeFn, err := s.Open(program, member, deliver)
	if err != nil {
		t.Fatalf("Open(%q): %v", program, err)
	}
	t.Cleanup(closeFn)
	return addr, closeFn
}

func self(pid int) bool { return pid == os.Getpid() }

// sender is a datagram socket of the test process.
type sender struct {
	t  *testing.T
	fd int
}

func newSender(t *testing.T) *sender {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return &sender{t: t, fd: fd}
}

func (s *sender) sendErr(addr string, payload, oob []byte) error {
	return unix.Sendmsg(s.fd, payload, oob, &unix.SockaddrUnix{Name: addr}, 0)
}

func (s *sender) send(addr string, payload string, oob ...byte) {
	s.t.Helper()
	if err := s.sendErr(addr, []byte(payload), oob); err != nil {
		s.t.Fatalf("sending %.40q to %s: %v", payload, addr, err)
	}
}

// lockedBuffer is a child's stderr, read while the child writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs name with NOTIFY_SOCKET=addr; the test's end kills it (by its
// pid, through os.Process) and reaps it. started is closed once its pid is
// stored in pid.
func start(t *testing.T, addr string, pid *atomic.Int64, started chan struct{}, name string, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	stderr := &lockedBuffer{}
	return startWith(t, addr, pid, started, stderr, name, args...), stderr
}

// startWith is start with the caller's buffer for the child's stderr, for
// a member function that reads it (made before the server can call it).
func startWith(t *testing.T, addr string, pid *atomic.Int64, started chan struct{}, stderr *lockedBuffer, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+addr)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid.Store(int64(cmd.Process.Pid))
	close(started)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// childMember claims the pid stored in pid; it waits until the child is
// started, so that a message the child sends at once is judged against
// the right pid.
func childMember(pid *atomic.Int64, started chan struct{}) func(int) bool {
	return func(p int) bool {
		<-started
		return int64(p) == pid.Load()
	}
}

func TestNotifyprog(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	var pid atomic.Int64
	started := make(chan struct{})
	addr, _ := open(t, s, "prog", childMember(&pid, started), rec.deliver)
	cmd, stderr := start(t, addr, &pid, started, notifyprog, "-status", "serving 3 clients", "-watchdog-every", "20ms")
	rec.wait(t, "READY=1 and three WATCHDOG=1", func(msgs []Message, _ []string) bool {
		return count(msgs, func(m Message) bool { return m.Ready }) == 1 &&
			count(msgs, func(m Message) bool { return m.Watchdog }) >= 3
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "STOPPING=1", func(msgs []Message, _ []string) bool {
		return count(msgs, func(m Message) bool { return m.Stopping }) == 1
	})
	if err := cmd.Wait(); err != nil {
		t.Errorf("notifyprog: %v; stderr: %s", err, stderr)
	}
	msgs, rejects := rec.snapshot()
	for _, m := range msgs {
		if m.PID != cmd.Process.Pid || m.UID != os.Getuid() {
			t.Errorf("message %+v, want pid %d uid %d", m, cmd.Process.Pid, os.Getuid())
		}
		if m.Ready && (!m.HasStatus || m.Status != "serving 3 clients") {
			t.Errorf("READY=1 message %+v, want STATUS=serving 3 clients", m)
		}
	}
	if len(rejects) != 0 {
		t.Errorf("rejects %q, want none", rejects)
	}
}

func TestNotifyprogFromChild(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	var pid atomic.Int64
	started := make(chan struct{})
	// The program's processes: notifyprog and its children (as respawnd
	// would know them from the cgroup; here from /proc, while the child is
	// alive or a zombie, and from what it wrote to stderr).
	stderr := &lockedBuffer{}
	childRE := regexp.MustCompile(`ready child (\d+)`)
	member := func(p int) bool {
		<-started
		if int64(p) == pid.Load() {
			return true
		}
		if ppid, err := parentOf(p); err == nil {
			return int64(ppid) == pid.Load()
		}
		m := childRE.FindStringSubmatch(stderr.String())
		return m != nil && m[1] == strconv.Itoa(p)
	}
	addr, _ := open(t, s, "prog", member, rec.deliver)
	// MAINPID=1 names a process outside the program: reported as 0.
	cmd := startWith(t, addr, &pid, started, stderr, notifyprog, "-from-child", "-status", "child", "-mainpid", "1")
	rec.wait(t, "READY=1", func(msgs []Message, _ []string) bool {
		return count(msgs, func(m Message) bool { return m.Ready }) == 1
	})
	var child int
	deadline := time.Now().Add(waitFor)
	for child == 0 && time.Now().Before(deadline) {
		if m := childRE.FindStringSubmatch(stderr.String()); m != nil {
			child, _ = strconv.Atoi(m[1])
		}
		time.Sleep(5 * time.Millisecond)
	}
	msgs, rejects := rec.snapshot()
	for _, m := range msgs {
		if m.Ready && (m.PID != child || child == 0 || m.PID == cmd.Process.Pid || m.Status != "child") {
			t.Errorf("READY=1 message %+v, want it from the child %d (not notifyprog %d) with STATUS=child", m, child, cmd.Process.Pid)
		}
	}
	// Only the MAINPID=1 is refused (once it is in).
	if len(rejects) > 1 || len(rejects) == 1 && rejects[0] != "prog "+RejectForeignMainPID {
		t.Errorf("rejects %q, want at most the MAINPID= one", rejects)
	}
	// The MAINPID=1 datagram comes from notifyprog itself.
	rec.wait(t, "the MAINPID= datagram", func(msgs []Message, _ []string) bool { return len(msgs) == 2 })
	msgs, _ = rec.snapshot()
	if m := msgs[1]; m.PID != cmd.Process.Pid || m.MainPID != 0 || m.Ready {
		t.Errorf("MAINPID=1 message %+v, want MainPID 0 (pid 1 is not the program's) from %d", m, cmd.Process.Pid)
	}
}

// parentOf reads pid's parent from /proc (a zombie's too).
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no comm")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("short stat")
	}
	return strconv.Atoi(f[1])
}

func TestSystemdNotify(t *testing.T) {
	bin := testenv.RequireProgram(t, "systemd-notify", "systemd")
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	var pid atomic.Int64
	started := make(chan struct{})
	// systemd-notify speaks for the process that ran it (here the test,
	// under respawnd the program's script): with CAP_SYS_ADMIN it sends
	// READY=1 with that process's pid in its credentials, otherwise with
	// its own; then BARRIER=1, from its own pid. The program is both.
	member := func(p int) bool {
		<-started
		return p == os.Getpid() || int64(p) == pid.Load()
	}
	addr, _ := open(t, s, "prog", member, rec.deliver)
	cmd, stderr := start(t, addr, &pid, started, bin, "--ready", "--status=x")
	rec.wait(t, "READY=1", func(msgs []Message, _ []string) bool {
		return count(msgs, func(m Message) bool { return m.Ready }) == 1
	})
	// systemd-notify waits until the descriptor it passes with BARRIER=1
	// is closed (here on arrival), then exits 0.
	if err := cmd.Wait(); err != nil {
		t.Errorf("systemd-notify: %v; stderr: %s", err, stderr)
	}
	msgs, rejects := rec.snapshot()
	for _, m := range msgs {
		if m.PID != cmd.Process.Pid && m.PID != os.Getpid() {
			t.Errorf("message %+v, want pid %d (systemd-notify) or %d (its parent)", m, cmd.Process.Pid, os.Getpid())
		}
		if m.Ready && m.Status != "x" {
			t.Errorf("READY=1 message %+v, want STATUS=x", m)
		}
	}
	if len(rejects) != 0 {
		t.Errorf("rejects %q, want none", rejects)
	}
}

// A MAINPID= naming a process outside the program is dropped from the
// message, which is delivered all the same, and counted.
func TestForeignMainPIDDropped(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	var pid atomic.Int64
	started := make(chan struct{})
	addr, _ := open(t, s, "prog", childMember(&pid, started), rec.deliver)
	cmd, stderr := start(t, addr, &pid, started, notifyprog, "-mainpid", "1")
	rec.wait(t, "READY=1 and the MAINPID= rejection", func(msgs []Message, rejects []string) bool {
		return count(msgs, func(m Message) bool { return m.Ready }) == 1 && len(rejects) == 1
	})
	msgs, rejects := rec.snapshot()
	for _, m := range msgs {
		if m.MainPID != 0 {
			t.Errorf("message %+v kept a MAINPID outside the program", m)
		}
	}
	if rejects[0] != "prog "+RejectForeignMainPID {
		t.Errorf("rejects %q, want one %s", rejects, RejectForeignMainPID)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("notifyprog: %v; stderr: %s", err, stderr)
	}
}
