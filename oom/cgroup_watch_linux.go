package oom

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WatchCgroup sends the cgroup's counters to out each time they change (v2:
// inotify on memory.events; v1: eventfd via cgroup.event_control) until ctx
// is done or the cgroup is removed; then returns nil. The counters at the
// start are the baseline and are not sent. The caller owns out.
func WatchCgroup(ctx context.Context, dir string, v2 bool, out chan<- CgroupCounts) error {
	return watchCgroup(ctx, dir, v2, out, nil)
}

// watchCgroup is WatchCgroup that calls registered, when not nil, once the
// kernel notification is set up: from then on no change is missed.
func watchCgroup(ctx context.Context, dir string, v2 bool, out chan<- CgroupCounts, registered func()) error {
	last, err := ReadCgroupCounts(dir, v2)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("reading oom counters of cgroup %s: %w", dir, err)
	}
	w := &cgroupWatch{dir: dir, v2: v2, out: out, last: last, registered: registered}
	if v2 {
		return w.runV2(ctx)
	}
	return w.runV1(ctx)
}

type cgroupWatch struct {
	dir  string
	v2   bool
	out  chan<- CgroupCounts
	last CgroupCounts
	// registered is called once the notification is set up (tests).
	registered func()
}

// armed is called right after the notification is registered.
func (w *cgroupWatch) armed() {
	if w.registered != nil {
		w.registered()
	}
}

// refresh reads the counters and sends them if they changed. It reports
// false when the cgroup is gone or ctx is done.
func (w *cgroupWatch) refresh(ctx context.Context) (bool, error) {
	c, err := ReadCgroupCounts(w.dir, w.v2)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading oom counters of cgroup %s: %w", w.dir, err)
	}
	if c == w.last {
		return true, nil
	}
	w.last = c
	select {
	case w.out <- c:
		return true, nil
	case <-ctx.Done():
		return false, nil
	}
}

// pollFile wraps a non-blocking fd in an *os.File served by the runtime
// poller, and arranges for ctx to unblock its Read. The returned stop must be
// called (it waits for the helper goroutine) before the file is closed.
func pollFile(ctx context.Context, fd int, name string) (*os.File, func()) {
	f := os.NewFile(uintptr(fd), name)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			_ = f.SetReadDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	return f, func() {
		close(done)
		wg.Wait()
	}
}

// runV2 watches memory.events with inotify. The kernel calls
// cgroup_file_notify on memory.events (and memory.events.local, 5.2+) for
// every counted event, which fsnotify reports as IN_MODIFY (Linux 4.6+).
func (w *cgroupWatch) runV2(ctx context.Context) error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("creating inotify instance: %w", err)
	}
	path := filepath.Join(w.dir, "memory.events")
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_DELETE_SELF); err != nil {
		_ = unix.Close(fd)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("watching %s: %w", path, err)
	}
	f, stop := pollFile(ctx, fd, "inotify")
	defer f.Close()
	defer stop()
	w.armed()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading inotify events for %s: %w", path, err)
		}
		gone := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_IGNORED) != 0 {
				gone = true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		if gone {
			return nil
		}
		ok, err := w.refresh(ctx)
		if !ok || err != nil {
			return err
		}
	}
}

// v1Settle bounds how long after an OOM notification the v1 counters are
// re-read. The kernel signals the eventfd when the OOM starts
// (mem_cgroup_oom_notify, under oom_lock, before a victim is chosen), and
// oom_kill is incremented only once the victim is killed.
const (
	v1Settle     = 2 * time.Second
	v1SettlePoll = 10 * time.Millisecond
)

// runV1 registers an eventfd for OOM notifications on memory.oom_control
// through cgroup.event_control (Documentation/admin-guide/cgroup-v1/memory.rst,
// "OOM Control"). The kernel also signals it when the cgroup is removed.
func (w *cgroupWatch) runV1(ctx context.Context) error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("creating eventfd: %w", err)
	}
	ctl, err := os.Open(filepath.Join(w.dir, "memory.oom_control"))
	if err != nil {
		_ = unix.Close(efd)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	// The registration lives as long as the eventfd and the control file
	// stay open (or until the cgroup is removed).
	defer ctl.Close()
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	if err := os.WriteFile(filepath.Join(w.dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		_ = unix.Close(efd)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("registering oom notification for cgroup %s: %w", w.dir, err)
	}
	f, stop := pollFile(ctx, efd, "eventfd")
	defer f.Close()
	defer stop()
	w.armed()
	var b [8]byte
	for {
		if _, err := f.Read(b[:]); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading oom eventfd of cgroup %s: %w", w.dir, err)
		}
		if _, err := os.Stat(w.dir); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if ok, err := w.settleV1(ctx); !ok || err != nil {
			return err
		}
	}
}

// settleV1 re-reads the counters until the OOM is over (under_oom back to 0
// and a kill counted) or v1Settle has passed, sending each change.
func (w *cgroupWatch) settleV1(ctx context.Context) (bool, error) {
	before := w.last.OOMKill
	deadline := time.NewTimer(v1Settle)
	defer deadline.Stop()
	tick := time.NewTicker(v1SettlePoll)
	defer tick.Stop()
	for {
		ok, err := w.refresh(ctx)
		if !ok || err != nil {
			return ok, err
		}
		if !w.last.UnderOOM && w.last.OOMKill != before {
			return true, nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return true, nil
		case <-ctx.Done():
			return false, nil
		}
	}
}
