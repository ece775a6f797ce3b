// Package epoll is an epoll set parked in the Go runtime's poller. The
// goroutine that drains it holds no OS thread while nothing is ready, so one
// goroutine serves any number of descriptors: respawnd's children's pidfds,
// their output pipes, the pidfds of adopted processes.
//
// Each descriptor is added with a key of the caller's choice, which comes
// back with its events. Keys, not descriptor numbers, identify what is
// ready: a number is reused as soon as its descriptor is closed, a key the
// caller never reuses is not.
package epoll

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Set is one epoll instance. Add, Del, Wake and Close may be called from
// any goroutine; Wait from one at a time.
type Set struct {
	f      *os.File
	closed atomic.Bool
}

// New creates a Set; name appears in errors and in /proc/PID/fd.
func New(name string) (*Set, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating %s epoll set: %w", name, err)
	}
	// Non-blocking, so that os.NewFile registers it with the poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("creating %s epoll set: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name+"-epoll")
	// A deadline can only be set on a file the poller holds: proof that
	// Wait will park instead of blocking a thread.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("registering %s epoll set with the runtime poller: %w", name, err)
	}
	return &Set{f: f}, nil
}

// Key is the key an event was added with.
func Key(ev unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add watches fd for events (unix.EPOLLIN and the like), reported with key.
// It returns an error wrapping os.ErrClosed after Close.
func (s *Set) Add(fd int, events uint32, key uint64) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	return s.ctl(unix.EPOLL_CTL_ADD, fd, &ev)
}

// Del stops watching fd. Closing fd does as much, once no other
// descriptor refers to its open file.
func (s *Set) Del(fd int) error {
	return s.ctl(unix.EPOLL_CTL_DEL, fd, nil)
}

func (s *Set) ctl(op, fd int, ev *unix.EpollEvent) error {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return s.wrap(err)
	}
	var cerr error
	if err := rc.Control(func(efd uintptr) { cerr = unix.EpollCtl(int(efd), op, fd, ev) }); err != nil {
		return s.wrap(err)
	}
	return cerr
}

// wrap makes the error of a raw call on a closed set wrap os.ErrClosed, as
// os.File's own methods do.
func (s *Set) wrap(err error) error {
	if s.closed.Load() && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w: %w", os.ErrClosed, err)
	}
	return err
}

// Wait hands every batch of ready events to handle, and calls idle each
// time none is ready: idle returning false parks the goroutine in the
// runtime poller until one is, true ends Wait with nil. After Wake, Wait
// returns an error wrapping os.ErrDeadlineExceeded; after Close, one
// wrapping os.ErrClosed. events is the buffer for one batch.
func (s *Set) Wait(events []unix.EpollEvent, handle func([]unix.EpollEvent), idle func() bool) error {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return s.wrap(err)
	}
	var waitErr error
	err = rc.Read(func(efd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(efd), events, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				waitErr = fmt.Errorf("epoll_wait: %w", err)
				return true
			}
			if n == 0 {
				return idle()
			}
			handle(events[:n])
		}
	})
	if waitErr != nil {
		return waitErr
	}
	if err != nil {
		return s.wrap(err)
	}
	return nil
}

// Wake ends a Wait in progress, or the next one, with
// os.ErrDeadlineExceeded.
func (s *Set) Wake() error {
	return s.f.SetReadDeadline(time.Unix(1, 0))
}

// Close closes the set; the descriptors in it are not closed.
func (s *Set) Close() error {
	s.closed.Store(true)
	return s.f.Close()
}
