package oom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeRead is one read(2) of a fake /dev/kmsg: a record, or an error.
type fakeRead struct {
	rec string
	err syscall.Errno
}

// fakeKmsg is a kmsgDevice that plays a script of reads, one record or
// error per Read as the real device does, and then blocks until a read
// deadline in the past is set (which is how Kmsg.Run stops a Read).
type fakeKmsg struct {
	mu     sync.Mutex
	script []fakeRead

	wake     chan struct{}
	wakeOnce sync.Once
	closed   atomic.Bool
}

func newFakeKmsg(script ...fakeRead) *fakeKmsg {
	return &fakeKmsg{script: script, wake: make(chan struct{})}
}

func (f *fakeKmsg) Read(p []byte) (int, error) {
	f.mu.Lock()
	if len(f.script) > 0 {
		r := f.script[0]
		f.script = f.script[1:]
		f.mu.Unlock()
		if r.err != 0 {
			// As os.File reports a failed read(2).
			return 0, &os.PathError{Op: "read", Path: DefaultKmsgPath, Err: r.err}
		}
		return copy(p, r.rec), nil
	}
	f.mu.Unlock()
	<-f.wake
	return 0, os.ErrDeadlineExceeded
}

func (f *fakeKmsg) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		f.wakeOnce.Do(func() { close(f.wake) })
	}
	return nil
}

func (f *fakeKmsg) Close() error {
	f.closed.Store(true)
	return nil
}

// Records of one memcg OOM kill as /dev/kmsg gives them on 6.18 (see
// testdata/kmsg/6.18-kmsg-memcg.txt), with sequence numbers chosen by the
// tests.
const (
	recSummary = "6,%d,546785395,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/overrun,task_memcg=/overrun,task=hog,pid=5015,uid=0\n"
	recKilled  = "3,%d,546785459,-;Memory cgroup out of memory: Killed process 5015 (hog) total-vm:75160kB, anon-rss:65280kB, file-rss:6612kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0\n"
)

func rec(format string, seq int) fakeRead {
	return fakeRead{rec: fmt.Sprintf(format, seq)}
}

// runFake starts k.Run and returns the kills channel and a stop function
// that cancels Run and returns its error.
func runFake(t *testing.T, k *Kmsg) (<-chan Kill, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Kill) // unbuffered: the test receives until Run returns
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, out) }()
	stopped := false
	var runErr error
	stop := func() error {
		if stopped {
			return runErr
		}
		stopped = true
		cancel()
		for {
			select {
			case <-out:
			case runErr = <-done:
				return runErr
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after its context was cancelled")
			}
		}
	}
	t.Cleanup(func() { _ = stop() })
	return out, stop
}

// An overrun (EPIPE: the ring buffer overwrote records before they were
// read) is no reason to stop: the reader counts the records lost from the
// gap in sequence numbers and goes on with the oldest record left.
func TestKmsgOverrunCountsLostAndContinues(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := newFakeKmsg(
		fakeRead{rec: "6,100,546000000,-;first record after the seek\n SUBSYSTEM=pci_bus\n"},
		fakeRead{rec: "6,101,546000001,-;chatter\n"},
		fakeRead{rec: "not a kmsg record\n"}, // skipped, counted nowhere
		fakeRead{err: syscall.EPIPE},         // 102..109 overwritten
		rec(recSummary, 110),
		fakeRead{err: syscall.EPIPE}, // 111..119 overwritten
		rec(recKilled, 120),
	)
	k := newKmsg(dev, DefaultKmsgPath, nil)
	out, stop := runFake(t, k)
	select {
	case got := <-out:
		if got.PID != 5015 || got.Comm != "hog" || got.TaskMemcg != "/overrun" {
			t.Errorf("kill %+v, want pid 5015 (hog) in /overrun", got)
		}
		if got.Boot != 546785459*time.Microsecond || got.Time.IsZero() {
			t.Errorf("kill at boot+%v, time %v; want boot+546.785459s and a time", got.Boot, got.Time)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no kill reported after the overruns: Run stopped reading")
	}
	// The kill is the last record, so every gap before it is counted.
	if got, want := k.Lost(), uint64(8+9); got != want {
		t.Errorf("Lost() = %d, want %d (records 102-109 and 111-119)", got, want)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if !dev.closed.Load() {
		t.Error("Run returned without closing the device")
	}
}

// No gap, no loss; and the first record read sets the baseline whatever
// its sequence number.
func TestKmsgNoGapNoLoss(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := newFakeKmsg(
		rec(recSummary, 7000),
		rec(recKilled, 7001),
	)
	k := newKmsg(dev, DefaultKmsgPath, nil)
	out, stop := runFake(t, k)
	select {
	case <-out:
	case <-time.After(10 * time.Second):
		t.Fatal("no kill reported")
	}
	if k.Lost() != 0 {
		t.Errorf("Lost() = %d without a gap", k.Lost())
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// Any other read error ends Run with an error that names the device; the
// device is closed.
func TestKmsgReadErrorEndsRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	dev := newFakeKmsg(
		fakeRead{rec: "6,1,1,-;chatter\n"},
		fakeRead{err: syscall.EIO},
	)
	k := newKmsg(dev, "/dev/fake-kmsg", nil)
	out := make(chan Kill)
	done := make(chan error, 1)
	go func() { done <- k.Run(context.Background(), out) }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "/dev/fake-kmsg") {
			t.Errorf("Run = %v, want EIO reading /dev/fake-kmsg", err)
		}
	case k := <-out:
		t.Fatalf("unexpected kill %+v", k)
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on after a read error")
	}
	if !dev.closed.Load() {
		t.Error("device not closed")
	}
}

// retainedReader plays reads for readRetained, which ends at EAGAIN.
type retainedReader struct{ script []fakeRead }

func (r *retainedReader) Read(p []byte) (int, error) {
	if len(r.script) == 0 {
		return 0, io.EOF
	}
	s := r.script[0]
	r.script = r.script[1:]
	if s.err != 0 {
		return -1, s.err // as unix.Read reports a failure
	}
	return copy(p, s.rec), nil
}

// Reading the retained buffer survives overruns and interrupted reads and
// stops at EAGAIN (the end of the buffer) with every kill read.
func TestReadRetainedOverrun(t *testing.T) {
	r := &retainedReader{script: []fakeRead{
		rec(recSummary, 10),
		{err: syscall.EPIPE},
		{err: syscall.EINTR},
		rec(recKilled, 40),
		{err: syscall.EAGAIN},
		rec(recKilled, 41), // after the end: never read
	}}
	kills, err := readRetained(r, DefaultKmsgPath)
	if err != nil {
		t.Fatalf("readRetained = %v", err)
	}
	if len(kills) != 1 || kills[0].PID != 5015 || kills[0].TaskMemcg != "/overrun" {
		t.Fatalf("kills %+v, want the one of pid 5015 in /overrun", kills)
	}
	if len(r.script) != 1 {
		t.Errorf("%d reads left, want the one after EAGAIN", len(r.script))
	}

	// A failure is reported with the kills read so far.
	r = &retainedReader{script: []fakeRead{rec(recSummary, 1), rec(recKilled, 2), {err: syscall.EIO}}}
	kills, err = readRetained(r, "/dev/fake-kmsg")
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "/dev/fake-kmsg") || len(kills) != 1 {
		t.Errorf("readRetained = %d kills, %v; want 1 kill and EIO naming the device", len(kills), err)
	}
}

// An oom-kill: summary alone is never a death for the daemon: the follower
// sends only kills proven by a Killed process record, whatever summaries
// without one come before or after them.
func TestKmsgSummaryAloneIsNoDeath(t *testing.T) {
	defer goleak.VerifyNone(t)
	const (
		ghost   = "6,%d,546000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/g,task_memcg=/g,task=ghost,pid=6001,uid=0\n"
		invoked = "4,%d,546000001,-;other invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
		killed2 = "3,%d,547000000,-;Memory cgroup out of memory: Killed process 5016 (hog2) total-vm:75160kB, anon-rss:65280kB, file-rss:6612kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0\n"
	)
	dev := newFakeKmsg(
		rec(ghost, 1), rec(invoked, 2), // a summary whose OOM ended without a kill
		rec(ghost, 3), rec(recSummary, 4), rec(recKilled, 5), // one ended by another pid's kill
		rec(ghost, 6), rec(killed2, 7),
	)
	k := newKmsg(dev, DefaultKmsgPath, nil)
	out, stop := runFake(t, k)
	for _, want := range []int{5015, 5016} {
		select {
		case got := <-out:
			if got.PID != want || !got.Confirmed {
				t.Fatalf("kill %+v, want the confirmed kill of %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no kill of %d reported", want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}

	kills, err := readRetained(&retainedReader{script: []fakeRead{rec(ghost, 1), rec(invoked, 2), rec(ghost, 3), {err: syscall.EAGAIN}}}, DefaultKmsgPath)
	if err != nil || len(kills) != 0 {
		t.Errorf("readRetained of summaries alone = %+v, %v; want no kill", kills, err)
	}
}
