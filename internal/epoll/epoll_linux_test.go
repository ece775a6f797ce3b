package epoll

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func rawFD(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// Keys above 32 bits come back whole, and only the ready descriptor is
// reported.
func TestWaitReportsKeys(t *testing.T) {
	s, err := New("test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r1, w1 := pipe(t)
	r2, _ := pipe(t)
	const k1, k2 = 1<<40 | 7, 3
	if err := s.Add(rawFD(t, r1), unix.EPOLLIN, k1); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(rawFD(t, r2), unix.EPOLLIN, k2); err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	err = s.Wait(make([]unix.EpollEvent, 4), func(evs []unix.EpollEvent) {
		for _, ev := range evs {
			got = append(got, Key(ev))
		}
		// Consume, so that the next epoll_wait finds nothing.
		_, _ = r1.Read(make([]byte, 1))
	}, func() bool { return len(got) > 0 })
	if err != nil || len(got) != 1 || got[0] != k1 {
		t.Fatalf("Wait: %v, keys %v, want [%d]", err, got, uint64(k1))
	}
	if err := s.Del(rawFD(t, r1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Del(rawFD(t, r1)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("second Del = %v, want ENOENT", err)
	}
}

// A parked Wait holds no thread: many sets waiting at once do not grow the
// process's threads, and Wake ends each one.
func TestParkedWaitHoldsNoThread(t *testing.T) {
	threads := func() int {
		b, _ := os.ReadFile("/proc/self/status")
		var n int
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Threads:"); ok {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		return n
	}
	before := threads()
	const n = 64
	sets := make([]*Set, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range sets {
		s, err := New("park")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sets[i] = s
		wg.Go(func() {
			errs <- s.Wait(make([]unix.EpollEvent, 1), func([]unix.EpollEvent) {}, func() bool { return false })
		})
	}
	time.Sleep(50 * time.Millisecond)
	runtime.Gosched()
	if after := threads(); after > before+8 {
		t.Errorf("%d parked Waits took the process from %d to %d threads", n, before, after)
	}
	for _, s := range sets {
		if err := s.Wake(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Wait after Wake = %v, want a deadline error", err)
		}
	}
}

func TestClosed(t *testing.T) {
	s, err := New("closed")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := pipe(t)
	_ = s.Close()
	if err := s.Add(rawFD(t, r), unix.EPOLLIN, 1); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Add after Close = %v, want os.ErrClosed", err)
	}
	if err := s.Wait(make([]unix.EpollEvent, 1), func([]unix.EpollEvent) {}, func() bool { return false }); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Wait after Close = %v, want os.ErrClosed", err)
	}
}
