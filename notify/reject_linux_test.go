//go:build linux

package notify

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// logCounter counts the log records whose message contains a string, and
// keeps their attributes.
type logCounter struct {
	mu    sync.Mutex
	lines []map[string]string
	match string
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCounter) WithGroup(string) slog.Handler            { return l }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, l.match) {
		return nil
	}
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, attrs)
	l.mu.Unlock()
	return nil
}

func (l *logCounter) get() []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]string(nil), l.lines...)
}

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newFakeClock() *fakeClock           { c := &fakeClock{}; c.ns.Store(time.Unix(1e9, 0).UnixNano()); return c }
func rejectsOf(why string) func(string) bool {
	return func(r string) bool { return strings.HasSuffix(r, " "+why) }
}
func nRejects(n int, why string) func([]Message, []string) bool {
	return func(_ []Message, rejects []string) bool { return count(rejects, rejectsOf(why)) == n }
}

func TestForeignSender(t *testing.T) {
	rec := newRecorder()
	logs := &logCounter{match: "outside the program"}
	clock := newFakeClock()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected, Logger: slog.New(logs), Now: clock.now})
	var pid atomic.Int64
	started := make(chan struct{})
	// The program's only process is pid 1: the test and notifyprog are
	// foreign.
	addr, _ := open(t, s, "prog", func(p int) bool { return p == 1 }, rec.deliver)
	snd := newSender(t)
	for range 3 {
		snd.send(addr, "READY=1\nSTATUS=forged")
	}
	rec.wait(t, "three foreign_sender rejects", nRejects(3, RejectForeignSender))
	start(t, addr, &pid, started, notifyprog)
	rec.wait(t, "notifyprog's READY=1 rejected", nRejects(4, RejectForeignSender))
	if n := len(logs.get()); n != 1 {
		t.Errorf("%d log lines about foreign senders within a minute, want 1", n)
	}
	clock.add(61 * time.Second)
	snd.send(addr, "WATCHDOG=1")
	rec.wait(t, "a fifth foreign_sender reject", nRejects(5, RejectForeignSender))
	lines := logs.get()
	if len(lines) != 2 {
		t.Fatalf("%d log lines after a minute, want 2: %v", len(lines), lines)
	}
	if lines[0]["pid"] != itoa(os.Getpid()) || lines[0]["program"] != "prog" || lines[1]["not_logged"] != "3" {
		t.Errorf("log lines %v, want pid %d and program prog, then not_logged 3", lines, os.Getpid())
	}
	msgs, rejects := rec.snapshot()
	if len(msgs) != 0 || len(rejects) != 5 {
		t.Errorf("messages %+v and rejects %q, want no message and 5 rejects", msgs, rejects)
	}
}

// fdCount counts the test process's open descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPassedDescriptorsClosed(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	addr, _ := open(t, s, "prog", self, rec.deliver)
	snd := newSender(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Close(p[0])
		_ = unix.Close(p[1])
		_ = devnull.Close()
	})
	rights := unix.UnixRights(p[0], p[1], int(devnull.Fd()))
	before := fdCount(t)
	big := "READY=1\n" + strings.Repeat("X", MaxDatagram)
	// 100 datagrams with three descriptors each: accepted ones, oversized
	// ones, and ones with nothing but the descriptors (systemd-notify's
	// barrier, FDSTORE=1): every descriptor is closed whatever the fate of
	// its datagram.
	for i := range 100 {
		payload := []string{"FDSTORE=1\nREADY=1", big, "BARRIER=1"}[i%3]
		if err := snd.sendErr(addr, []byte(payload), rights); err != nil {
			t.Fatal(err)
		}
	}
	rec.wait(t, "all 100 datagrams", func(msgs []Message, rejects []string) bool { return len(msgs)+len(rejects) == 100 })
	msgs, rejects := rec.snapshot()
	if len(msgs) != 67 || count(rejects, rejectsOf(RejectTruncated)) != 33 {
		t.Errorf("%d messages and rejects %q, want 67 messages and 33 truncated", len(msgs), rejects)
	}
	if after := fdCount(t); after != before {
		t.Errorf("%d descriptors open after 100 datagrams with 300 passed, %d before", after, before)
	}
}

func TestBadDatagrams(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	addr, _ := open(t, s, "prog", self, rec.deliver)
	snd := newSender(t)
	full := "READY=1\nSTATUS=full\nX=" // padded to exactly MaxDatagram bytes
	full += strings.Repeat("x", MaxDatagram-len(full))
	for _, c := range []struct{ payload, why string }{
		{full + "y", RejectTruncated},
		{strings.Repeat("READY=1\n", 12800), RejectTruncated},
		{"READY=1\x00", RejectMalformed},
		{"READY=1\nSTATUS=\xff", RejectMalformed},
		{"", RejectMalformed},
		{full, ""},
	} {
		msgs, rejects := rec.snapshot()
		n := len(msgs) + len(rejects)
		snd.send(addr, c.payload)
		rec.wait(t, "the datagram", func(msgs []Message, rejects []string) bool { return len(msgs)+len(rejects) > n })
		msgs, rejects = rec.snapshot()
		switch {
		case c.why == "" && (len(msgs) != 1 || !msgs[0].Ready || msgs[0].Status != "full"):
			t.Errorf("datagram of %d bytes: messages %+v, want READY=1 STATUS=full", len(c.payload), msgs)
		case c.why != "" && rejects[len(rejects)-1] != "prog "+c.why:
			t.Errorf("datagram %.30q of %d bytes: rejects %q, want it %s", c.payload, len(c.payload), rejects, c.why)
		}
	}
}

// No datagram without credentials can be sent to a socket with
// SO_PASSCRED (the kernel attaches them), and a sender cannot claim pid 0
// (scm_check_creds looks the pid up). What reads the control data is
// tested alone.
func TestControl(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	dup := func() int {
		fd, err := unix.FcntlInt(devnull.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	isOpen := func(fd int) bool { _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); return err == nil }

	a, b := dup(), dup()
	oob := unix.UnixRights(a, b)
	if _, ok := control(oob); ok {
		t.Error("control data with descriptors only: credentials found")
	}
	if isOpen(a) || isOpen(b) {
		t.Errorf("descriptors %d and %d left open", a, b)
	}
	c := dup()
	oob = append(unix.UnixCredentials(&unix.Ucred{Pid: 0, Uid: 7}), unix.UnixRights(c)...)
	if _, ok := control(oob); ok {
		t.Error("credentials with pid 0 taken")
	}
	if isOpen(c) {
		t.Errorf("descriptor %d left open", c)
	}
	cred, ok := control(unix.UnixCredentials(&unix.Ucred{Pid: 42, Uid: 7, Gid: 8}))
	if !ok || cred.Pid != 42 || cred.Uid != 7 || cred.Gid != 8 {
		t.Errorf("control = %+v, %v; want pid 42 uid 7 gid 8", cred, ok)
	}
	if _, ok := control(nil); ok {
		t.Error("no control data: credentials found")
	}
}

func TestMainPID(t *testing.T) {
	rec := newRecorder()
	s := startServer(t, Config{Namespace: testNamespace(t), Rejected: rec.rejected})
	addr, _ := open(t, s, "prog", self, rec.deliver)
	snd := newSender(t)
	snd.send(addr, "MAINPID=1\nREADY=1")
	snd.send(addr, "MAINPID="+itoa(os.Getpid()))
	rec.wait(t, "two messages", func(msgs []Message, _ []string) bool { return len(msgs) == 2 })
	msgs, _ := rec.snapshot()
	if msgs[0].MainPID != 0 || !msgs[0].Ready {
		t.Errorf("MAINPID=1: %+v, want MainPID 0 (not the program's) and Ready", msgs[0])
	}
	if msgs[1].MainPID != os.Getpid() {
		t.Errorf("MAINPID=%d: %+v, want it kept", os.Getpid(), msgs[1])
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
