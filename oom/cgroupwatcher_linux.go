package oom

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

// v1Settle bounds how long after an OOM notification the v1 counters are
// re-read. The kernel signals the eventfd when the OOM starts
// (mem_cgroup_oom_notify, under oom_lock, before a victim is chosen), and
// oom_kill is incremented only once the victim is killed.
const (
	v1Settle     = 2 * time.Second
	v1SettlePoll = 10 * time.Millisecond
)

// CgroupWatcher watches the OOM counters of many cgroups from one goroutine:
// on cgroup v2 one inotify instance holds a watch on every memory.events
// file; on v1 one epoll set holds every cgroup's OOM eventfd (registered
// through cgroup.event_control). Both are served by the Go runtime's poller,
// so a thousand watched cgroups cost no goroutine and no thread each.
//
// Add, the stop functions it returns and Run are safe for concurrent use;
// Run must be called once.
type CgroupWatcher struct {
	v2  bool
	log *slog.Logger

	mu      sync.Mutex // guards everything below
	f       *os.File   // the inotify instance (v2) or epoll set (v1)
	byKey   map[uint64]*watched
	next    uint64
	stopped bool
	// settling holds the v1 cgroups whose OOM is in progress: their
	// counters are re-read until the kill is counted (see v1Settle).
	settling map[*watched]time.Time
	// done says Run's context is done: the read deadline stays in the past.
	done bool
}

// watched is one cgroup's registration.
type watched struct {
	key  uint64
	dir  string
	out  chan CgroupCounts
	last CgroupCounts
	wd   int // v2: inotify watch descriptor
	efd  int // v1: eventfd
}

// NewCgroupWatcher makes a watcher for cgroups of one version.
func NewCgroupWatcher(v2 bool, logger *slog.Logger) (*CgroupWatcher, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var fd int
	var err error
	if v2 {
		fd, err = unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	} else {
		if fd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err == nil {
			err = unix.SetNonblock(fd, true)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating the cgroup oom watcher: %w", err)
	}
	return &CgroupWatcher{
		v2:       v2,
		log:      logger,
		f:        os.NewFile(uintptr(fd), "cgroup-oom-watcher"),
		byKey:    map[uint64]*watched{},
		settling: map[*watched]time.Time{},
	}, nil
}

// Add starts watching the cgroup in dir. Each time its counters change the
// latest counts are put in out, replacing any not yet received (out must
// have a buffer of 1; only the watcher sends on it). The counters at the
// start are the baseline and are not sent. stop ends the watch; a cgroup
// that is removed ends its own.
func (w *CgroupWatcher) Add(dir string, out chan CgroupCounts) (stop func(), err error) {
	last, err := ReadCgroupCounts(dir, w.v2)
	if err != nil {
		return nil, fmt.Errorf("reading oom counters of cgroup %s: %w", dir, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return nil, errors.New("cgroup oom watcher stopped")
	}
	w.next++
	c := &watched{key: w.next, dir: dir, out: out, last: last, wd: -1, efd: -1}
	if w.v2 {
		err = w.addV2(c)
	} else {
		err = w.addV1(c)
	}
	if err != nil {
		return nil, err
	}
	w.byKey[c.key] = c
	return func() { w.remove(c) }, nil
}

func (w *CgroupWatcher) addV2(c *watched) error {
	path := filepath.Join(c.dir, "memory.events")
	var wd int
	var err error
	if cerr := w.control(func(fd int) { wd, err = unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_DELETE_SELF) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("watching %s: %w", path, err)
	}
	// The key is the watch descriptor: inotify reports events by it.
	c.key, c.wd = uint64(wd), wd
	return nil
}

func (w *CgroupWatcher) addV1(c *watched) error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("creating eventfd: %w", err)
	}
	ctl, err := os.Open(filepath.Join(c.dir, "memory.oom_control"))
	if err != nil {
		_ = unix.Close(efd)
		return err
	}
	// The registration lives as long as the eventfd stays open (or until
	// the cgroup is removed, which signals the eventfd): the kernel keeps
	// the eventfd, not the control file, which only names the event. It
	// is closed at once: every descriptor respawnd holds is copied by each
	// fork, and a thousand programs made that a thousand more.
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	err = pseudofs.Write(filepath.Join(c.dir, "cgroup.event_control"), []byte(reg))
	_ = ctl.Close()
	if err != nil {
		_ = unix.Close(efd)
		return fmt.Errorf("registering oom notification for cgroup %s: %w", c.dir, err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(c.key)), Pad: int32(uint32(c.key >> 32))}
	var cerr error
	if err := w.control(func(fd int) { cerr = unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, efd, &ev) }); err != nil {
		cerr = err
	}
	if cerr != nil {
		_ = unix.Close(efd)
		return fmt.Errorf("watching oom eventfd of cgroup %s: %w", c.dir, cerr)
	}
	c.efd = efd
	return nil
}

// control runs fn on the watcher's descriptor.
func (w *CgroupWatcher) control(fn func(fd int)) error {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// remove ends one watch. Callers hold no lock.
func (w *CgroupWatcher) remove(c *watched) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget(c)
}

// forget ends one watch; w.mu is held.
func (w *CgroupWatcher) forget(c *watched) {
	if w.byKey[c.key] != c {
		return
	}
	delete(w.byKey, c.key)
	delete(w.settling, c)
	if w.v2 {
		_ = w.control(func(fd int) { _, _ = unix.InotifyRmWatch(fd, uint32(c.wd)) })
		return
	}
	_ = w.control(func(fd int) { _ = unix.EpollCtl(fd, unix.EPOLL_CTL_DEL, c.efd, nil) })
	_ = unix.Close(c.efd)
}

// Run watches until ctx is done, then ends every watch and returns nil.
func (w *CgroupWatcher) Run(ctx context.Context) error {
	defer w.shutdown()
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	// A read deadline in the past wakes the poller and ends rc.Read below;
	// one in the near future does when v1 counters are due for a re-read.
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
		_ = w.f.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	buf := make([]byte, 64<<10)
	events := make([]unix.EpollEvent, 64)
	for ctx.Err() == nil {
		w.armDeadline()
		var readErr error
		err := rc.Read(func(fd uintptr) bool {
			if w.v2 {
				n, err := unix.Read(int(fd), buf)
				if errors.Is(err, unix.EAGAIN) {
					return false
				}
				if err != nil {
					readErr = err
					return true
				}
				w.onInotify(buf[:n])
				return false
			}
			n, err := unix.EpollWait(int(fd), events, 0)
			switch {
			case errors.Is(err, unix.EINTR):
				return false
			case err != nil:
				readErr = err
				return true
			case n == 0:
				return false
			}
			w.onEventfds(events[:n])
			return false
		})
		if readErr != nil {
			return fmt.Errorf("watching cgroup oom counters: %w", readErr)
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("watching cgroup oom counters: %w", err)
		}
		// A deadline: ctx is done, or v1 counters are due for a re-read.
		w.settle()
	}
	return nil
}

// armDeadline wakes Run at the next v1 re-read, if any is due, and keeps
// the deadline in the past once ctx is done.
func (w *CgroupWatcher) armDeadline() {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.done:
		_ = w.f.SetReadDeadline(time.Unix(1, 0))
		return
	case len(w.settling) > 0:
		_ = w.f.SetReadDeadline(time.Now().Add(v1SettlePoll))
		return
	}
	_ = w.f.SetReadDeadline(time.Time{})
}

// onInotify handles v2 events: each names a watch descriptor whose
// memory.events changed (IN_MODIFY) or whose cgroup is gone.
func (w *CgroupWatcher) onInotify(buf []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		off += unix.SizeofInotifyEvent + int(ev.Len)
		c := w.byKey[uint64(ev.Wd)]
		if c == nil {
			continue
		}
		if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_IGNORED) != 0 {
			delete(w.byKey, c.key) // the kernel dropped the watch already
			continue
		}
		w.refresh(c)
	}
}

// onEventfds handles v1 OOM notifications. The kernel signals the eventfd
// when the OOM starts (mem_cgroup_oom_notify, before a victim is chosen), so
// the counters are re-read until the kill is counted (settle).
func (w *CgroupWatcher) onEventfds(events []unix.EpollEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b [8]byte
	for _, ev := range events {
		c := w.byKey[uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32]
		if c == nil {
			continue
		}
		_, _ = unix.Read(c.efd, b[:])
		if _, err := os.Stat(c.dir); errors.Is(err, fs.ErrNotExist) {
			w.forget(c) // removal also signals the eventfd
			continue
		}
		if w.refresh(c) {
			w.settling[c] = time.Now().Add(v1Settle)
			// Wake Run for the re-reads: the read it is parked in now
			// ends at this deadline (a deadline applies to a pending read).
			if !w.done {
				_ = w.f.SetReadDeadline(time.Now().Add(v1SettlePoll))
			}
		}
	}
}

// settle re-reads the counters of v1 cgroups in an OOM until the kill is
// counted and the OOM is over, or v1Settle has passed.
func (w *CgroupWatcher) settle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for c, until := range w.settling {
		before := c.last.OOMKill
		if !w.refresh(c) || now.After(until) || !c.last.UnderOOM && c.last.OOMKill != before {
			delete(w.settling, c)
		}
	}
}

// refresh reads c's counters and hands them over if they changed; false
// when the cgroup is gone (its watch then ends). w.mu is held.
func (w *CgroupWatcher) refresh(c *watched) bool {
	cur, err := ReadCgroupCounts(c.dir, w.v2)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			w.log.Debug("reading oom counters", "cgroup", c.dir, "err", err)
		}
		w.forget(c)
		return false
	}
	if cur == c.last {
		return true
	}
	c.last = cur
	// Latest only: a count not yet received is replaced.
	select {
	case c.out <- cur:
	default:
		select {
		case <-c.out:
		default:
		}
		select {
		case c.out <- cur:
		default:
		}
	}
	return true
}

// shutdown ends every watch and closes the watcher.
func (w *CgroupWatcher) shutdown() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for _, c := range w.byKey {
		w.forget(c)
	}
	_ = w.f.Close()
}
