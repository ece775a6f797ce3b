package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/supervisor"
)

// rawDaemon listens on a unix socket and answers every request with the
// same raw bytes, as a broken daemon (or whatever listens on the socket's
// path) might.
type rawDaemon struct {
	path   string
	ln     net.Listener
	answer atomic.Pointer[[]byte]
	// endless, when set, follows the answer with an unending stream.
	endless atomic.Pointer[func(io.Writer) error]
	wg      sync.WaitGroup
}

func newRawDaemon(tb testing.TB) *rawDaemon {
	tb.Helper()
	d := &rawDaemon{path: filepath.Join(tb.TempDir(), "d.sock")}
	ln, err := net.Listen("unix", d.path)
	if err != nil {
		tb.Fatal(err)
	}
	d.ln = ln
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		_ = ln.Close()
		d.wg.Wait()
	})
	return d
}

func (d *rawDaemon) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// Read the request's head; the client sends no body.
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	if a := d.answer.Load(); a != nil {
		if _, err := c.Write(*a); err != nil {
			return
		}
	}
	if fn := d.endless.Load(); fn != nil {
		_ = (*fn)(c)
	}
}

func (d *rawDaemon) set(answer []byte) { d.answer.Store(&answer) }

// checkPrintable fails unless err's message is safe to print to a terminal.
func checkPrintable(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if !utf8.ValidString(msg) {
		t.Fatalf("%s: error is not UTF-8: %q", what, msg)
	}
	for _, r := range msg {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			t.Fatalf("%s: error holds control character %q: %q", what, r, msg)
		}
	}
}

// FuzzClient answers every request of the command line's client with
// arbitrary bytes: it must return (within its context), never panic, and
// return only errors that are safe to print.
func FuzzClient(f *testing.F) {
	ok := func(ct, body string) string {
		return "HTTP/1.1 200 OK\r\nContent-Type: " + ct + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	for _, s := range []string{
		ok("application/json", `{"programs":[{"name":"api","state":"running","pid":42,"generation":3,"start_time":"2025-01-02T15:04:05Z","restarts":2,"last_exit":{"time":"2025-01-02T15:04:05Z","pid":41,"generation":2,"reason":"oom_kill","signal":"SIGKILL","oom":{"pid":41,"comm":"api"}},"memory_rss_bytes":1,"memory_usage_bytes":null,"memory_limit_bytes":2,"backoff_seconds":0}]}`),
		ok("application/json", `{"name":"api","state":"backoff","backoff_seconds":1.5,"next_start":"2025-01-02T15:04:05Z"}`),
		ok("application/json", `{"events":[{"time":"2025-01-02T15:04:05Z","program":null,"pid":99,"comm":"hog","reason":"oom_kill","signal":"SIGKILL","exit_code":null,"worker":false,"oom":null,"rss_bytes":67108864}]}`),
		ok("application/json", `{"program":"api","action":"restart"}`),
		ok("text/plain", "configuration reloaded\n"),
		ok("application/x-ndjson", "{\"time\":\"2025-01-02T15:04:05Z\",\"program\":\"api\",\"pid\":1,\"reason\":\"signal\"}\n\n\n{\"pid\":2}\n"),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"pid\r\n3\r\n\":1}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n{\"programs\":[[[[[[[[[[[[[[[[",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\":\"unknown program \\\"x\\\"\"}\n",
		"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{\"error\":\"lifecycle API is not enabled\"}\n",
		"HTTP/1.1 403 Forbidden\r\n\r\n{\"error\":\"control socket: uid 65534 is not allowed (root only)\"}",
		"HTTP/1.1 500 \x1b[31mred\r\n\r\nfailed to reload config: \x1b]0;pwned\x07\xff\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n{\"error\":\"too many event streams\"}",
		"HTTP/1.1 301 Moved\r\nLocation: http://elsewhere/\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-\x1b[2J: y\r\n\r\n",
		"HTTP/1.0 200\r\n\r\n",
		"\x1b[2J",
		"",
	} {
		for call := range byte(6) {
			f.Add([]byte(s), call)
		}
	}
	d := newRawDaemon(f)
	c := api.NewClient(d.path)
	f.Fuzz(func(t *testing.T, answer []byte, call byte) {
		d.set(answer)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var (
			what string
			err  error
		)
		switch call % 6 {
		case 0:
			what = "programs"
			_, err = c.Programs(ctx)
		case 1:
			what = "program"
			_, err = c.Program(ctx, "api")
		case 2:
			what = "events"
			_, err = c.Events(ctx)
		case 3:
			what = "follow"
			err = c.Follow(ctx, func(api.Event) error { return nil })
		case 4:
			what = "control"
			err = c.Control(ctx, "api", "restart")
		case 5:
			what = "reload"
			err = c.Reload(ctx)
		}
		checkPrintable(t, what, err)
		if ctx.Err() != nil {
			t.Fatalf("%s: the client waited until its context ended", what)
		}
	})
}

func TestClientBoundsAnswers(t *testing.T) {
	d := newRawDaemon(t)
	// An answer that never ends: the client stops reading at its limit
	// instead of growing without bound.
	endless := func(w io.Writer) error {
		chunk := []byte(strings.Repeat(`{"name":"x"},`, 1<<12))
		for {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
	}
	d.endless.Store(&endless)
	d.set([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"programs\":["))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := api.NewClient(d.path).Programs(ctx)
	if err == nil || ctx.Err() != nil {
		t.Errorf("endless answer: %v (context %v), want a decoding error", err, ctx.Err())
	}

	// An endless event line is an error, not an endless buffer.
	endlessLine := func(w io.Writer) error {
		chunk := []byte(strings.Repeat("a", 1<<12))
		for {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
	}
	d.endless.Store(&endlessLine)
	d.set([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n{\"pid\":"))
	err = api.NewClient(d.path).Follow(ctx, func(api.Event) error { return nil })
	if err == nil || ctx.Err() != nil {
		t.Errorf("endless event line: %v (context %v), want an error", err, ctx.Err())
	}
}

func TestClientSwitchingProtocols(t *testing.T) {
	d := newRawDaemon(t)
	// A 101 hands over the connection, which this daemon then holds open.
	hold := func(w io.Writer) error {
		_, err := io.Copy(io.Discard, w.(net.Conn))
		return err
	}
	d.endless.Store(&hold)
	d.set([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := api.NewClient(d.path).Reload(ctx)
	if err == nil || ctx.Err() != nil {
		t.Errorf("101: %v (context %v), want an error at once", err, ctx.Err())
	}
}

func TestClientErrorsArePrintable(t *testing.T) {
	d := newRawDaemon(t)
	d.set([]byte("HTTP/1.1 500 Internal\x1b[2J Error\r\nContent-Type: text/plain\r\n\r\nfailed to reload config: \x1b]0;owned\x07 a.yaml:1: x\n  a.yaml:2: y\xff\n"))
	err := api.NewClient(d.path).Reload(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	checkPrintable(t, "reload", err)
	if msg := err.Error(); !strings.Contains(msg, "a.yaml:1: x\n  a.yaml:2: y") {
		t.Errorf("the reasons' lines are lost: %q", msg)
	}
	d.set([]byte("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\":\"unknown program \\\"\\u001b[2Jx\\\"\"}\n"))
	err = api.NewClient(d.path).Control(context.Background(), "x", "stop")
	if !errors.Is(err, api.ErrUnknownProgram) {
		t.Errorf("404 unknown program: %v, want ErrUnknownProgram", err)
	}
	checkPrintable(t, "control", err)
	// A malformed header line shows in Go's own error: cleaned too, and
	// still the error it wraps.
	d.set([]byte("HTTP/1.1 200 OK\r\nX\x1b[2J\r\n\r\n"))
	_, err = api.NewClient(d.path).Programs(context.Background())
	if err == nil {
		t.Fatal("malformed header: no error")
	}
	checkPrintable(t, "malformed header", err)
}

// writeCounter counts the writes to the connections it accepts.
type writeCounter struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{c, l.writes}, nil
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countedConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func TestClientFollowSkipsHeartbeats(t *testing.T) {
	src := newLiveSource()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	srv := &http.Server{Handler: api.NewHandler(api.Config{Source: src, Heartbeat: time.Millisecond})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(writeCounter{ln, &writes}) }()
	defer func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	published := make(chan struct{})
	go func() {
		defer close(published)
		// The headers, then at least three heartbeats, then the event.
		for src.subscribers() == 0 || writes.Load() < 4 {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
		src.publish(supervisor.Event{Time: time.Now(), PID: 5, Reason: supervisor.ReasonSignal})
	}()
	var got []int
	err = api.NewClient(path).Follow(ctx, func(e api.Event) error {
		got = append(got, e.PID)
		return errStop
	})
	<-published
	if !errors.Is(err, errStop) || len(got) != 1 || got[0] != 5 {
		t.Errorf("Follow: %v %v, want the one event and errStop", got, err)
	}
	if n := writes.Load(); n < 4 {
		t.Errorf("%d writes: no heartbeats before the event", n)
	}
}

var errStop = errors.New("stop")
