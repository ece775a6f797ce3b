//go:build linux

package notify

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestReopen(t *testing.T) {
	s := startServer(t, Config{Namespace: testNamespace(t)})
	snd := newSender(t)
	r1, r2, r3 := newRecorder(), newRecorder(), newRecorder()
	addr, close1 := open(t, s, "prog", self, r1.deliver)
	snd.send(addr, "STATUS=one")
	r1.wait(t, "STATUS=one", func(msgs []Message, _ []string) bool { return len(msgs) == 1 })

	// Opening again keeps the socket and replaces deliver; the first close
	// function does nothing any more.
	addr2, close2 := open(t, s, "prog", self, r2.deliver)
	if addr2 != addr {
		t.Errorf("second Open: address %q, want %q", addr2, addr)
	}
	close1()
	snd.send(addr, "STATUS=two")
	r2.wait(t, "STATUS=two", func(msgs []Message, _ []string) bool { return len(msgs) == 1 })
	if msgs, _ := r1.snapshot(); len(msgs) != 1 {
		t.Errorf("replaced deliver got %+v", msgs)
	}

	// Closed: the name is gone.
	close2()
	if err := snd.sendErr(addr, []byte("STATUS=lost"), nil); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("sending to a closed program: %v, want ECONNREFUSED", err)
	}
	close2() // twice is fine

	// And it opens again.
	addr3, _ := open(t, s, "prog", self, r3.deliver)
	if addr3 != addr {
		t.Errorf("Open after close: address %q, want %q", addr3, addr)
	}
	snd.send(addr, "STATUS=three")
	r3.wait(t, "STATUS=three", func(msgs []Message, _ []string) bool { return len(msgs) == 1 && msgs[0].Status == "three" })
	if msgs, _ := r2.snapshot(); len(msgs) != 1 {
		t.Errorf("closed program's deliver got %+v", msgs)
	}
}

func TestTwoServers(t *testing.T) {
	ns := testNamespace(t)
	a := startServer(t, Config{Namespace: ns + "-a"})
	b := startServer(t, Config{Namespace: ns + "-b"})
	ra, rb := newRecorder(), newRecorder()
	addrA, _ := open(t, a, "prog", self, ra.deliver)
	addrB, _ := open(t, b, "prog", self, rb.deliver)
	if addrA == addrB {
		t.Fatalf("both servers at %q", addrA)
	}
	snd := newSender(t)
	snd.send(addrA, "STATUS=a")
	snd.send(addrB, "STATUS=b")
	ra.wait(t, "STATUS=a", func(msgs []Message, _ []string) bool { return len(msgs) == 1 && msgs[0].Status == "a" })
	rb.wait(t, "STATUS=b", func(msgs []Message, _ []string) bool { return len(msgs) == 1 && msgs[0].Status == "b" })

	// A third respawnd in a namespace already in use cannot take the name.
	c := startServer(t, Config{Namespace: ns + "-a"})
	if _, _, err := c.Open("prog", self, func(Message) {}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("Open in a namespace in use: %v, want EADDRINUSE", err)
	}
	snd.send(addrA, "STATUS=a2")
	ra.wait(t, "STATUS=a2, the first server still serving", func(msgs []Message, _ []string) bool { return len(msgs) == 2 })
}

func TestLongNames(t *testing.T) {
	ns := testNamespace(t) + strings.Repeat("-n", 40)
	s := startServer(t, Config{Namespace: ns})
	prog := strings.Repeat("p", 64)
	rec := newRecorder()
	addr, _ := open(t, s, prog, self, rec.deliver)
	if len(addr) > MaxAddress || !strings.HasSuffix(addr, "/"+prog) {
		t.Errorf("address %q (%d bytes), want at most %d ending in the program name", addr, len(addr), MaxAddress)
	}
	newSender(t).send(addr, "READY=1")
	rec.wait(t, "READY=1", func(msgs []Message, _ []string) bool { return len(msgs) == 1 && msgs[0].Ready })
	if _, _, err := s.Open("a/b", self, rec.deliver); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open of a name with '/': %v, want ErrInvalid", err)
	}
	if _, err := New(Config{Namespace: "a/b"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with a namespace with '/': %v, want ErrInvalid", err)
	}
}

func TestRunEnds(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	s, err := New(Config{Namespace: testNamespace(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	// Open before Run: the datagram waits for it.
	addr, closeFn, err := s.Open("prog", self, rec.deliver)
	if err != nil {
		t.Fatal(err)
	}
	newSender(t).send(addr, "READY=1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	rec.wait(t, "READY=1 sent before Run", func(msgs []Message, _ []string) bool { return len(msgs) == 1 })
	if err := s.Run(ctx); err == nil {
		t.Error("second Run: nil error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, _, err := s.Open("other", self, rec.deliver); !errors.Is(err, ErrStopped) {
		t.Errorf("Open after Run: %v, want ErrStopped", err)
	}
	closeFn() // after Run: nothing left to do
	// The name is free again.
	fd, err := bind(addr)
	if err != nil {
		t.Fatalf("binding %s after Run: %v", addr, err)
	}
	_ = unix.Close(fd)
}

// TestFlood: one program sends 100k datagrams as fast as four senders
// can; another's READY=1, sent once the flood is under way, arrives while
// the flood still is.
func TestFlood(t *testing.T) {
	const total = 100000
	s := startServer(t, Config{Namespace: testNamespace(t)})
	var flooded atomic.Int64
	floodAddr, _ := open(t, s, "flood", self, func(Message) { flooded.Add(1) })
	quiet := newRecorder()
	quietAddr, _ := open(t, s, "quiet", self, quiet.deliver)

	var wg sync.WaitGroup
	for range 4 {
		snd := newSender(t)
		wg.Go(func() {
			for range total / 4 {
				if err := snd.sendErr(floodAddr, []byte("WATCHDOG=1"), nil); err != nil {
					t.Errorf("flooding: %v", err)
					return
				}
			}
		})
	}
	t.Cleanup(wg.Wait)
	deadline := time.Now().Add(waitFor)
	for flooded.Load() < 1000 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	sent := time.Now()
	var atReady int64
	newSender(t).send(quietAddr, "READY=1")
	quiet.wait(t, "READY=1 during the flood", func(msgs []Message, _ []string) bool {
		if len(msgs) == 1 && atReady == 0 {
			atReady = flooded.Load()
		}
		return len(msgs) == 1
	})
	took := time.Since(sent)
	wg.Wait()
	for flooded.Load() < total && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	t.Logf("READY=1 took %s, %d of %d flood datagrams handled by then", took, atReady, total)
	if atReady >= total {
		t.Errorf("READY=1 arrived only after the whole flood (%d datagrams)", atReady)
	}
	if n := flooded.Load(); n != total {
		t.Errorf("%d flood datagrams delivered, want %d", n, total)
	}
}

// TestCloseStopsCallbacks: once a close function returns, deliver is not
// called again, however busy the socket.
func TestCloseStopsCallbacks(t *testing.T) {
	s := startServer(t, Config{Namespace: testNamespace(t)})
	addr, err := Address(testNamespace(t), "prog")
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	snd := newSender(t)
	wg.Go(func() {
		for !stop.Load() {
			_ = snd.sendErr(addr, []byte("WATCHDOG=1"), nil) // ECONNREFUSED while closed
		}
	})
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	var late atomic.Int64
	for range 200 {
		var closed atomic.Bool
		var delivered atomic.Int64
		_, closeFn, err := s.Open("prog", self, func(Message) {
			delivered.Add(1)
			if closed.Load() {
				late.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		// Close while datagrams are arriving.
		deadline := time.Now().Add(waitFor)
		for delivered.Load() == 0 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		closeFn()
		closed.Store(true)
		if delivered.Load() == 0 {
			t.Fatalf("nothing delivered within %s", waitFor)
		}
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d messages delivered after close returned", n)
	}
}
