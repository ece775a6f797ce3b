package restart

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/epoll"
)

// Waiting for children without a thread or goroutine each: a pidfd (Linux
// 5.3) turns readable when its process exits, so one goroutine waits on an
// epoll set holding every child's pidfd, itself parked in the Go runtime's
// network poller. A thousand supervised programs then cost no thread and no
// goroutine for their waits.

// pidfdChildren says whether children are started with a pidfd
// (CLONE_PIDFD): pidfd_open, waitid(P_PIDFD) and clone's CLONE_PIDFD all
// work here. Probed once.
var pidfdChildren = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	// waitid(P_PIDFD) on a process that is not our child fails with ECHILD;
	// ENOSYS or EINVAL mean the kernel lacks it.
	var info unix.Siginfo
	err = unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
	return errors.Is(err, unix.ECHILD)
})

// childWaiter calls each registered child's exited function once the child
// has exited (it is a zombie then, not yet reaped). Its goroutine runs while
// any child is registered and ends with the last one.
type childWaiter struct {
	mu       sync.Mutex // guards every field below
	set      *epoll.Set
	children map[uint64]childEntry
	next     uint64
	running  bool
}

type childEntry struct {
	pidfd  int
	exited func()
}

// add registers pidfd; exited is called from the waiter's goroutine once
// the child has exited. It must not block for long.
func (w *childWaiter) add(pidfd int, exited func()) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.set == nil {
		set, err := epoll.New("child")
		if err != nil {
			return err
		}
		w.set = set
		w.children = map[uint64]childEntry{}
	}
	w.next++
	key := w.next
	if err := w.set.Add(pidfd, unix.EPOLLIN, key); err != nil {
		return fmt.Errorf("watching child pidfd: %w", err)
	}
	w.children[key] = childEntry{pidfd: pidfd, exited: exited}
	if !w.running {
		w.running = true
		go w.run(w.set)
	}
	return nil
}

// run waits for exits until no child is left.
func (w *childWaiter) run(set *epoll.Set) {
	var due []childEntry
	err := set.Wait(make([]unix.EpollEvent, 64), func(events []unix.EpollEvent) {
		due = due[:0]
		w.mu.Lock()
		for _, ev := range events {
			if c, ok := w.children[epoll.Key(ev)]; ok {
				delete(w.children, epoll.Key(ev))
				_ = set.Del(c.pidfd)
				due = append(due, c)
			}
		}
		w.mu.Unlock()
		for _, c := range due {
			c.exited()
		}
	}, func() bool {
		// Park until a child exits, or end with the last one: a later
		// add starts the goroutine again.
		w.mu.Lock()
		defer w.mu.Unlock()
		last := len(w.children) == 0
		if last {
			w.running = false
		}
		return last
	})
	if err != nil {
		w.fail()
	}
}

// fail hands every registered child to its exited function after the
// epoll set failed (it should not), so that none is left unwaited: each
// then waits the blocking way.
func (w *childWaiter) fail() {
	w.mu.Lock()
	left := w.children
	w.children = map[uint64]childEntry{}
	w.running = false
	_ = w.set.Close()
	w.set = nil
	w.mu.Unlock()
	for _, c := range left {
		go func() {
			waitPidfdBlocking(c.pidfd)
			c.exited()
		}()
	}
}

// waitPidfdBlocking blocks its thread until the child of pidfd has exited,
// without reaping it.
func waitPidfdBlocking(pidfd int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// reapPidfd collects the exit status of the exited child of pidfd and
// closes the pidfd.
func reapPidfd(pidfd int) (ExitStatus, error) {
	defer unix.Close(pidfd)
	var info siginfoChild
	for {
		err := unix.Waitid(unix.P_PIDFD, pidfd, (*unix.Siginfo)(unsafe.Pointer(&info)), unix.WEXITED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ExitStatus{}, err
		}
		return statusOf(info, time.Now()), nil
	}
}

// The si_code values of a SIGCHLD siginfo (include/uapi/asm-generic/siginfo.h).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// statusOf turns what waitid reported into an ExitStatus.
func statusOf(info siginfoChild, at time.Time) ExitStatus {
	st := ExitStatus{Time: at, Code: -1}
	switch info.Code {
	case cldExited:
		st.Code = int(info.Stat)
	case cldKilled, cldDumped:
		st.Signaled = true
		st.Signal = syscall.Signal(info.Stat)
		st.Core = info.Code == cldDumped
	}
	return st
}
