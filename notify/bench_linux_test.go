//go:build linux

package notify

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkServer measures the datagrams one Server handles per second
// (read, credentials checked, parsed, delivered), sent by four goroutines
// of the benchmark process to one or many programs' sockets. The senders
// share the CPUs with the Server, as programs do with respawnd; the
// kernel's queue of a datagram socket (net.unix.max_dgram_qlen) makes
// them wait when the Server falls behind.
func BenchmarkServer(b *testing.B) {
	for _, programs := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("programs=%d", programs), func(b *testing.B) {
			benchServer(b, programs)
		})
	}
}

func benchServer(b *testing.B, programs int) {
	const senders = 4
	s, err := New(Config{Namespace: fmt.Sprintf("bench-%d-%d", os.Getpid(), programs)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	var delivered atomic.Int64
	addrs := make([]*unix.SockaddrUnix, programs)
	for i := range programs {
		addr, closeFn, err := s.Open(fmt.Sprintf("prog%d", i), func(int) bool { return true }, func(m Message) {
			if m.Watchdog {
				delivered.Add(1)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer closeFn()
		addrs[i] = &unix.SockaddrUnix{Name: addr}
	}
	payload := []byte("WATCHDOG=1\nSTATUS=serving 12 clients")
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range senders {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fd)
		n := b.N / senders
		if g < b.N%senders {
			n++
		}
		wg.Go(func() {
			for i := range n {
				if err := unix.Sendmsg(fd, payload, nil, addrs[(g+i*senders)%programs], 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	for delivered.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	if n := delivered.Load(); n != int64(b.N) {
		b.Fatalf("%d of %d datagrams delivered", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "datagrams/s")
}
