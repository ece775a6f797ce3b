package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

// supSource serves a real supervisor's event ring and counts the
// subscriptions still open.
type supSource struct {
	sup  *supervisor.Supervisor
	open atomic.Int64
}

func (s *supSource) Programs() []api.Program    { return nil }
func (s *supSource) Events() []supervisor.Event { return s.sup.Events() }

func (s *supSource) Subscribe() (<-chan supervisor.Event, func()) {
	c, cancel := s.sup.Subscribe()
	s.open.Add(1)
	var once sync.Once
	return c, func() {
		once.Do(func() {
			cancel()
			s.open.Add(-1)
		})
	}
}

// runSupervisor runs a supervisor with no programs until the test ends;
// host OOM kills handed to it become events.
func runSupervisor(t *testing.T) *supSource {
	t.Helper()
	sup := supervisor.New(supervisor.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &supSource{sup: sup}
}

// smallBuffers makes the server's side of each connection buffer little,
// so that a client that does not read blocks the server's writes at once.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// stalledFollower opens an event stream and never reads it.
func stalledFollower(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(c, "GET /api/v1/events?follow=true HTTP/1.1\r\nHost: respawnd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// bigKill is a host OOM kill whose event takes about 2 KiB on the wire.
func bigKill(pid int) oom.Kill {
	return oom.Kill{PID: pid, Comm: "hog", TaskMemcg: "/" + strings.Repeat("m", 2000)}
}

// lineReader reads events from a stream, skipping heartbeats.
type lineReader struct {
	t  *testing.T
	sc *bufio.Scanner
}

func (r lineReader) next() api.Event {
	r.t.Helper()
	for r.sc.Scan() {
		if len(r.sc.Bytes()) == 0 {
			continue
		}
		var e api.Event
		if err := json.Unmarshal(r.sc.Bytes(), &e); err != nil {
			r.t.Fatalf("event line %.100q: %v", r.sc.Bytes(), err)
		}
		return e
	}
	r.t.Fatalf("stream ended: %v", r.sc.Err())
	return api.Event{}
}

// TestStalledFollowerDoesNotStallOthers pushes megabytes of events past a
// follower that never reads: the supervisor's loop takes every one at
// once, and another follower sees them all.
func TestStalledFollowerDoesNotStallOthers(t *testing.T) {
	src := runSupervisor(t)
	srv := httptest.NewUnstartedServer(api.NewHandler(api.Config{Source: src, WriteTimeout: time.Hour}))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close) // after the stalled client's connection is closed

	stalledFollower(t, srv.Listener.Addr().String())
	waitFor(t, "the stalled follower's subscription", func() bool { return src.open.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openFollow(ctx, t, srv.URL)
	defer resp.Body.Close()
	waitFor(t, "the second subscription", func() bool { return src.open.Load() == 2 })
	live := lineReader{t, bufio.NewScanner(resp.Body)}

	// 2000 events of 2 KiB: far more than the stalled connection buffers
	// and than its subscription holds. In batches the live follower keeps
	// up with, so that it loses none.
	const total, batch = 2000, 32
	for first := 1; first <= total; first += batch {
		end := min(first+batch, total+1)
		for pid := first; pid < end; pid++ {
			start := time.Now()
			src.sup.OOMKill(ctx, bigKill(pid))
			if d := time.Since(start); d > time.Second {
				t.Fatalf("handing kill %d to the supervisor took %v", pid, d)
			}
		}
		for want := first; want < end; want++ {
			if e := live.next(); e.PID != want {
				t.Fatalf("live follower got pid %d, want %d", e.PID, want)
			}
		}
	}
	if evs := src.sup.Events(); len(evs) == 0 || evs[0].PID != total {
		t.Errorf("newest event in the ring is not the last kill")
	}
	// The stalled follower is still there, its handler blocked in a write.
	if n := src.open.Load(); n != 2 {
		t.Errorf("%d subscriptions, want both followers", n)
	}
}

// TestStalledFollowerTimesOut checks that a follower that stopped reading
// is dropped after WriteTimeout, giving its place back.
func TestStalledFollowerTimesOut(t *testing.T) {
	src := runSupervisor(t)
	srv := httptest.NewUnstartedServer(api.NewHandler(api.Config{Source: src, WriteTimeout: 200 * time.Millisecond, MaxFollowers: 1}))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close) // after the stalled client's connection is closed

	stalledFollower(t, srv.Listener.Addr().String())
	waitFor(t, "the stalled follower's subscription", func() bool { return src.open.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pid := 0
	waitFor(t, "the stalled follower to be dropped", func() bool {
		for range 64 {
			pid++
			src.sup.OOMKill(ctx, bigKill(pid))
		}
		return src.open.Load() == 0
	})
	resp := openFollow(ctx, t, srv.URL)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("new follower after the stalled one was dropped: %d", resp.StatusCode)
	}
}

// TestFollowClientGone checks that every goroutine and subscription of a
// stream ends when its client goes away, however it left.
func TestFollowClientGone(t *testing.T) {
	for _, tt := range []struct {
		name, req string
	}{
		{"closed", "GET /api/v1/events?follow=true HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"http/1.0", "GET /api/v1/events?follow=true HTTP/1.0\r\n\r\n"},
		// The server watches for the client going away only once the body
		// is read: an unfinished one must not hide it.
		{"unfinished body", "GET /api/v1/events?follow=true HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"},
		{"unfinished headers", "GET /api/v1/events?follow=true HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			src := newLiveSource()
			src.publish(supervisor.Event{Time: time.Now(), PID: 1, Reason: supervisor.ReasonOOMKill})
			ch := &countingHandler{h: api.NewHandler(api.Config{Source: src, Heartbeat: time.Hour})}
			srv := httptest.NewServer(ch)
			defer srv.Close()

			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			if tt.name == "closed" || tt.name == "http/1.0" {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the subscription", func() bool { return src.subscribers() == 1 })
			} else {
				waitFor(t, "the request", func() bool { return ch.active.Load() == 1 || tt.name == "unfinished headers" })
			}
			_ = c.Close()
			waitFor(t, "the handler to return", func() bool { return ch.active.Load() == 0 && src.subscribers() == 0 })
			srv.Close()
		})
	}
}

// TestStreamOverBothProtocols checks, over HTTP/1.1 and over HTTP/2 (which
// exporter-toolkit serves with TLS), behind a server whose ReadTimeout and
// WriteTimeout are short, that a stream outlives many write timeouts of
// silence and both server timeouts, that a reload slower than them is
// answered, that a refused body is answered, and that the handler ends
// when the client goes away.
func TestStreamOverBothProtocols(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "http1"
		if h2 {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			src := newLiveSource()
			ch := &countingHandler{h: api.NewHandler(api.Config{Source: src, Controller: src, WriteTimeout: 20 * time.Millisecond, Heartbeat: 100 * time.Millisecond})}
			srv := httptest.NewUnstartedServer(ch)
			srv.EnableHTTP2 = h2
			srv.Config.ReadTimeout = 50 * time.Millisecond
			srv.Config.WriteTimeout = 50 * time.Millisecond
			srv.StartTLS()
			defer srv.Close()
			client := srv.Client()
			defer client.CloseIdleConnections()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+api.PathEvents+"?follow=true", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
				t.Fatalf("served over %s", resp.Proto)
			}
			// Three heartbeats: 300ms of silence, 15 write timeouts.
			sc := bufio.NewScanner(resp.Body)
			for i := range 3 {
				if !sc.Scan() || sc.Text() != "" {
					t.Fatalf("heartbeat %d: %q %v", i, sc.Text(), sc.Err())
				}
			}
			src.publish(supervisor.Event{Time: time.Now(), PID: 3, Reason: supervisor.ReasonSignal})
			if e := (lineReader{t, sc}).next(); e.PID != 3 {
				t.Errorf("event %+v", e)
			}

			src.reload = make(chan struct{})
			time.AfterFunc(200*time.Millisecond, func() { close(src.reload) }) // a reload slower than the server's timeouts
			r, err := client.Post(srv.URL+api.PathReload, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				t.Errorf("slow reload: %d", r.StatusCode)
			}

			r, err = client.Post(srv.URL+api.PathReload, "", strings.NewReader(strings.Repeat("x", 10000)))
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("reload with 10000 bytes: %d", r.StatusCode)
			}

			cancel()
			waitFor(t, "the stream's handler to return", func() bool { return ch.active.Load() == 0 && src.subscribers() == 0 })
		})
	}
}

// TestEventsBounded fills the supervisor's ring past its 256 entries with
// events as large as the kernel's reports make them (a kmsg line holds
// about 1 KiB): the list and a stream's backlog stay at 256 events.
func TestEventsBounded(t *testing.T) {
	src := runSupervisor(t)
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: src}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const kills = 400
	for pid := 1; pid <= kills; pid++ {
		src.sup.OOMKill(ctx, oom.Kill{PID: pid, Comm: strings.Repeat("c", 15), TaskMemcg: "/" + strings.Repeat("m", 1000), OOMMemcg: "/" + strings.Repeat("o", 1000)})
	}
	waitFor(t, "the last kill in the ring", func() bool {
		evs := src.sup.Events()
		return len(evs) > 0 && evs[0].PID == kills
	})

	code, b := get(t, srv.URL+api.PathEvents)
	var er api.EventsResponse
	if err := json.Unmarshal(b, &er); code != http.StatusOK || err != nil {
		t.Fatalf("events: %d %v", code, err)
	}
	if len(er.Events) != 256 || len(b) > 1<<20 {
		t.Errorf("%d events in %d bytes, want 256 in under 1 MiB", len(er.Events), len(b))
	}

	resp := openFollow(ctx, t, srv.URL)
	defer resp.Body.Close()
	r := lineReader{t, bufio.NewScanner(resp.Body)}
	first := r.next()
	for range 254 {
		r.next()
	}
	if last := r.next(); first.PID != kills-255 || last.PID != kills {
		t.Errorf("backlog from pid %d to %d, want the newest 256: %d to %d", first.PID, last.PID, kills-255, kills)
	}
}
