package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/epoll"
)

// watcherSys is the Linux part of a Watcher: the epoll set holding every
// watched pidfd (MechanismPidfd only). The epoll fd is itself registered
// with the Go runtime's network poller, so Run parks a goroutine, not a
// thread, and stops through a read deadline.
type watcherSys struct {
	set *epoll.Set
}

// procSys is the Linux part of a Proc: its pidfd (MechanismPidfd only).
// The *os.File is never reassigned; its Close is safe against concurrent
// use of the fd through SyscallConn, so a closed pidfd number can never be
// reused under a pidfd_send_signal.
type procSys struct {
	pidfd *os.File
}

// NewWatcher returns a Watcher for the procfs at cfg.ProcRoot using
// cfg.Mechanism. MechanismAuto picks pidfd where pidfd_open works (Linux
// 5.3+, not blocked by seccomp) and rescan otherwise; asking for pidfd
// where it does not work fails with an error wrapping ErrUnsupported.
func NewWatcher(cfg Config) (*Watcher, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		scan:     s,
		log:      cfg.logger(),
		mech:     cfg.Mechanism,
		interval: cfg.RescanInterval,
		procs:    map[uint64]*Proc{},
	}
	if w.interval <= 0 {
		w.interval = DefaultRescanInterval
	}
	pidfdErr := probePidfd()
	if w.mech == MechanismAuto {
		w.mech = MechanismRescan
		if pidfdErr == nil {
			w.mech = MechanismPidfd
		}
	}
	switch w.mech {
	case MechanismPidfd:
		if pidfdErr != nil {
			return nil, fmt.Errorf("pidfd_open: %w: %w", ErrUnsupported, pidfdErr)
		}
		set, err := epoll.New("pidfd")
		if err != nil {
			return nil, err
		}
		w.sys.set = set
	case MechanismRescan:
	default:
		return nil, fmt.Errorf("unknown mechanism %d", int(w.mech))
	}
	return w, nil
}

// probePidfd checks that pidfd_open works by opening a pidfd of respawnd
// itself.
func probePidfd() error {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// watch registers p with the mechanism in use.
func (w *Watcher) watch(p *Proc) error {
	if w.mech == MechanismRescan {
		if err := w.verify(p.id); err != nil {
			return err
		}
		return w.add(p)
	}
	fd, err := unix.PidfdOpen(p.id.PID, 0) // always O_CLOEXEC
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("watching pid %d: %w", p.id.PID, ErrNotFound)
		}
		return fmt.Errorf("opening pidfd of pid %d: %w", p.id.PID, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	// The pidfd pins whatever process had the pid when it was opened. If
	// the start time read now is the one asked for, that was the right
	// process: a pid is only reused after a reap, which would have changed
	// the start time found here.
	if err := w.verify(p.id); err != nil {
		_ = pidfd.Close()
		return err
	}
	p.sys.pidfd = pidfd
	if err := w.add(p); err != nil {
		_ = pidfd.Close()
		return err
	}
	// The event carries the registry key, not the fd: an fd number is
	// reused as soon as it is closed, a key never is.
	rc, err := pidfd.SyscallConn()
	if err == nil {
		var aerr error
		if err = rc.Control(func(pfd uintptr) { aerr = w.sys.set.Add(int(pfd), unix.EPOLLIN, p.key) }); err == nil {
			err = aerr
		}
	}
	if err != nil {
		if w.take(p.key) == p {
			_ = pidfd.Close()
		}
		if errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("watching pid %d: %w", p.id.PID, ErrClosed)
		}
		return fmt.Errorf("adding pidfd of pid %d to epoll set: %w", p.id.PID, err)
	}
	return nil
}

// Run reports deaths until ctx is done, then stops watching (every pidfd is
// closed, Done channels of processes still alive stay open, Watch fails
// with ErrClosed) and returns nil. It returns an error only if the kernel
// fails the wait itself.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.stopAll()
	if w.mech == MechanismRescan {
		w.runRescan(ctx.Done())
		return nil
	}
	defer w.sys.set.Close()
	// Waking the set ends Wait below.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = w.sys.set.Wake()
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()
	// Room for this many deaths per wakeup; more are taken by the next
	// epoll_wait at once.
	err := w.sys.set.Wait(make([]unix.EpollEvent, 128), w.reap, func() bool { return false })
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("waiting for pidfds: %w", err)
	}
	return nil
}

// reap reports the deaths behind ready pidfds. A pidfd becomes readable
// when its process exits (Linux 5.3) and stays so; the registration
// disappears when reap closes it.
func (w *Watcher) reap(events []unix.EpollEvent) {
	now := time.Now()
	for _, ev := range events {
		p := w.take(epoll.Key(ev))
		if p == nil {
			continue // closed by Proc.Close after epoll_wait returned
		}
		w.finish(p, w.pidfdExit(p, now))
	}
}

// pidfdExit finds how the process behind p's pidfd ended. Since Linux 6.15
// ioctl(PIDFD_GET_INFO) with PIDFD_INFO_EXIT gives the wait status of any
// process, child or not, once it has been reaped (include/uapi/linux/pidfd.h).
// Before the reap, the zombie's /proc/PID/stat holds the same status in
// field 52. One of the two always answers on 6.15+ (the second ioctl covers
// a reap between the first ioctl and the stat read); older kernels answer
// only through the zombie, else the exit is unknown.
func (w *Watcher) pidfdExit(p *Proc, now time.Time) ExitInfo {
	if st, ok := pidfdExitStatus(p.sys.pidfd); ok {
		return exitFromWaitStatus(st, now)
	}
	if info, ok := w.scan.zombieExit(p.id, now); ok {
		return info
	}
	if st, ok := pidfdExitStatus(p.sys.pidfd); ok {
		return exitFromWaitStatus(st, now)
	}
	return ExitInfo{Time: now}
}

// pidfdExitStatus asks the kernel for the exit status of a reaped process.
// Kernels without PIDFD_GET_INFO fail the ioctl (ENOTTY); kernels before
// 6.15 and unreaped processes leave PIDFD_INFO_EXIT out of the mask.
func pidfdExitStatus(pidfd *os.File) (uint32, bool) {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return 0, false
	}
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlPidfdInfo(int(fd), &info) }); err != nil || ierr != nil {
		return 0, false
	}
	if info.Mask&unix.PIDFD_INFO_EXIT == 0 {
		return 0, false
	}
	return uint32(info.Exit_code), true
}

// release closes p's pidfd, if any.
func (p *Proc) release() {
	if p.sys.pidfd != nil {
		_ = p.sys.pidfd.Close()
	}
}

// signal sends sig through p's pidfd, or through a fresh verified one.
func (p *Proc) signal(sig syscall.Signal) error {
	if p.sys.pidfd != nil {
		return pidfdSignal(p.sys.pidfd, p.id.PID, sig)
	}
	fd, err := unix.PidfdOpen(p.id.PID, 0)
	switch {
	case err == nil:
		pidfd := os.NewFile(uintptr(fd), "pidfd")
		defer pidfd.Close()
		if err := p.w.verify(p.id); err != nil {
			return err
		}
		return pidfdSignal(pidfd, p.id.PID, sig)
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("signalling pid %d: %w", p.id.PID, ErrNotFound)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		// No pidfds on this kernel (or seccomp forbids them): verify, then
		// kill(2). The pid could be reused only between these two calls.
		if err := p.w.verify(p.id); err != nil {
			return err
		}
		if err := unix.Kill(p.id.PID, sig); err != nil {
			return signalErr(p.id.PID, err)
		}
		return nil
	default:
		return fmt.Errorf("opening pidfd of pid %d: %w", p.id.PID, err)
	}
}

func pidfdSignal(pidfd *os.File, pid int, sig syscall.Signal) error {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return fmt.Errorf("signalling pid %d: %w", pid, ErrNotFound)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		// Closed: the death was reported, or the Proc was closed.
		return fmt.Errorf("signalling pid %d: %w", pid, ErrNotFound)
	}
	if serr != nil {
		return signalErr(pid, serr)
	}
	return nil
}

func signalErr(pid int, err error) error {
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling pid %d: %w", pid, ErrNotFound)
	}
	return fmt.Errorf("signalling pid %d: %w", pid, err)
}
