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
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/supervisor"
)

// liveSource is a Source and Controller whose subscriptions behave as the
// supervisor's (buffered, dropping events for a follower that does not
// read) and are counted, so that a test sees when a stream has ended.
type liveSource struct {
	mu     sync.Mutex
	events []supervisor.Event
	subs   map[chan supervisor.Event]struct{}
	calls  []string

	// reload, when not nil, is received from before Reload returns.
	reload chan struct{}
}

func newLiveSource() *liveSource {
	return &liveSource{subs: map[chan supervisor.Event]struct{}{}}
}

func (s *liveSource) Programs() []api.Program {
	return []api.Program{{Name: "api", State: "running", PID: 42}}
}

func (s *liveSource) Events() []supervisor.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]supervisor.Event(nil), s.events...)
}

func (s *liveSource) Subscribe() (<-chan supervisor.Event, func()) {
	c := make(chan supervisor.Event, 64)
	s.mu.Lock()
	s.subs[c] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, c)
			s.mu.Unlock()
		})
	}
}

// publish adds e as the supervisor's ring does: never blocking.
func (s *liveSource) publish(e supervisor.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append([]supervisor.Event{e}, s.events...)
	for c := range s.subs {
		select {
		case c <- e:
		default:
		}
	}
}

func (s *liveSource) subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

func (s *liveSource) Control(_ context.Context, name string, a supervisor.Action, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, a.String()+" "+name)
	if name != "api" {
		return supervisor.ErrUnknownProgram
	}
	return nil
}

func (s *liveSource) Reload(ctx context.Context) error {
	s.mu.Lock()
	s.calls = append(s.calls, "reload")
	block := s.reload
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *liveSource) controlCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// waitFor polls cond until it holds, or fails the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// openFollow starts an event stream and returns its response once the
// headers are in; the stream ends with ctx.
func openFollow(ctx context.Context, t *testing.T, base string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+api.PathEvents+"?follow=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// checkJSONError checks that resp carries an ErrorResponse and returns its
// message.
func checkJSONError(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%d error with Content-Type %q, want application/json: %s", resp.StatusCode, ct, b)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var er api.ErrorResponse
	if err := dec.Decode(&er); err != nil || er.Error == "" {
		t.Errorf("%d error body %q is not an ErrorResponse: %v", resp.StatusCode, b, err)
	}
	return er.Error
}

func TestFollowerCap(t *testing.T) {
	src := newLiveSource()
	h := api.NewHandler(api.Config{Source: src, MaxFollowers: 2})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ctx1, cancel1 := context.WithCancel(ctx)
	r1 := openFollow(ctx1, t, srv.URL)
	defer r1.Body.Close()
	r2 := openFollow(ctx, t, srv.URL)
	defer r2.Body.Close()
	if r1.StatusCode != http.StatusOK || r2.StatusCode != http.StatusOK {
		t.Fatalf("first two streams: %d %d", r1.StatusCode, r2.StatusCode)
	}

	r3 := openFollow(ctx, t, srv.URL)
	if r3.StatusCode != http.StatusServiceUnavailable || r3.Header.Get("Retry-After") == "" {
		t.Errorf("third stream: %d, Retry-After %q; want 503 with Retry-After", r3.StatusCode, r3.Header.Get("Retry-After"))
	}
	if msg := checkJSONError(t, r3); !strings.Contains(msg, "too many event streams") {
		t.Errorf("third stream: %q", msg)
	}
	r3.Body.Close()
	// Listing events is not a stream and is not refused.
	if code, b := get(t, srv.URL+api.PathEvents); code != http.StatusOK {
		t.Errorf("events while streams are full: %d %s", code, b)
	}
	// Another handler (the control socket's) has its own streams.
	other := httptest.NewServer(api.NewHandler(api.Config{Source: src, MaxFollowers: 2}))
	defer other.Close()
	r4 := openFollow(ctx, t, other.URL)
	r4.Body.Close()
	if r4.StatusCode != http.StatusOK {
		t.Errorf("stream on another handler: %d", r4.StatusCode)
	}

	// A stream that ends gives its place back.
	cancel1()
	r1.Body.Close()
	waitFor(t, "a place for a new stream", func() bool {
		r := openFollow(ctx, t, srv.URL)
		defer r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
}

func TestRequestsInFlightCap(t *testing.T) {
	src := newLiveSource()
	src.reload = make(chan struct{})
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: src, Controller: src, MaxRequestsInFlight: 1}))
	defer srv.Close()

	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+api.PathReload, "", nil)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitFor(t, "the first reload", func() bool { return len(src.controlCalls()) == 1 })

	resp, err := http.Get(srv.URL + api.PathPrograms)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("programs while a reload runs: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	checkJSONError(t, resp)
	resp.Body.Close()
	if code, _ := post(t, srv.URL+api.PathReload); code != http.StatusServiceUnavailable {
		t.Errorf("second reload: %d, want 503", code)
	}
	// Health and readiness never wait behind the limit.
	for _, p := range []string{api.PathHealthy, api.PathReady} {
		if code, _ := get(t, srv.URL+p); code != http.StatusOK {
			t.Errorf("%s while the limit is full: %d", p, code)
		}
	}
	close(src.reload)
	if code := <-done; code != http.StatusOK {
		t.Errorf("first reload: %d", code)
	}
	if code, b := get(t, srv.URL+api.PathPrograms); code != http.StatusOK {
		t.Errorf("programs after: %d %s", code, b)
	}
}

// rawRequest writes req on a new connection to addr and returns the
// response, which must come within 10s.
func rawRequest(t *testing.T, addr, req string) (*http.Response, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.60q: %v", req, err)
	}
	return resp, c
}

// checkClosed checks that the server closes c soon, reading no more of a
// refused body.
func checkClosed(t *testing.T, what string, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("%s: the connection was not closed: %v", what, err)
	}
}

func TestBodyCap(t *testing.T) {
	src := newLiveSource()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: src, Controller: src}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	// A declared length over the cap is refused unread, and the
	// connection closed.
	resp, c := rawRequest(t, addr, "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("1 GiB declared: %d close=%v, want 413 and close", resp.StatusCode, resp.Close)
	}
	checkClosed(t, "1 GiB declared", c)
	resp, c = rawRequest(t, addr, "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("100000 bytes declared, none sent: %d, want 413", resp.StatusCode)
	}
	checkClosed(t, "100000 bytes declared, none sent", c)
	// So is a chunked body that grows past it.
	chunk := strings.Repeat("x", 4096)
	resp, c = rawRequest(t, addr, "POST /api/v1/programs/api/restart HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"1000\r\n"+chunk+"\r\n1000\r\n"+chunk+"\r\n")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("chunked 8 KiB and more to come: %d close=%v, want 413 and close", resp.StatusCode, resp.Close)
	}
	checkJSONError(t, resp)
	checkClosed(t, "chunked 8 KiB and more to come", c)
	resp, _ = rawRequest(t, addr, "GET /api/v1/programs HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"+strings.Repeat("y", 5000))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("GET with 5000 bytes: %d, want 413", resp.StatusCode)
	}
	if calls := src.controlCalls(); len(calls) != 0 {
		t.Errorf("refused requests reached the controller: %v", calls)
	}

	// A small body is read and ignored.
	resp, err := http.Post(srv.URL+api.PathReload, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("reload with {}: %d", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+api.PathPrograms+"/api/restart", "", io.MultiReader(strings.NewReader(strings.Repeat("z", 4096))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("restart with a chunked 4 KiB body: %d", resp.StatusCode)
	}
	if calls := src.controlCalls(); len(calls) != 2 || calls[0] != "reload" || calls[1] != "restart api" {
		t.Errorf("controller calls %v, want reload and restart api", calls)
	}
}

func TestPathsMethodsAndQueries(t *testing.T) {
	src := newLiveSource()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: src, Controller: src}))
	defer srv.Close()
	long := strings.Repeat("a", 100)
	for _, tt := range []struct {
		method, target string
		code           int
		allow          string
		json           bool
	}{
		{"GET", "/api/v1/programs/api", 200, "", true},
		{"HEAD", "/api/v1/programs/api", 200, "", true},
		{"GET", "/api/v1/programs/nope", 404, "", true},
		{"GET", "/api/v1/programs/API", 404, "", true},
		{"GET", "/api/v1/programs/" + long, 404, "", true},
		{"GET", "/api/v1/programs/%2e%2e", 404, "", true},
		{"GET", "/api/v1/programs/", 404, "", true},
		{"GET", "/api/v1/programs/api/", 404, "", true},
		{"GET", "/api/v1/programs/a/b/c", 404, "", true},
		{"GET", "/api/v1/nope", 404, "", true},
		{"GET", "/api/v1/programs/" + strings.Repeat("b", 600), 414, "", true},
		// The limits themselves: a path or query of exactly the limit is
		// served, one byte more is refused.
		{"GET", "/api/v1/programs/" + strings.Repeat("b", 512-len("/api/v1/programs/")), 404, "", true},
		{"GET", "/api/v1/programs/" + strings.Repeat("b", 513-len("/api/v1/programs/")), 414, "", true},
		{"GET", "/api/v1/events?x=" + strings.Repeat("q", 1024-len("x=")), 200, "", true},
		{"GET", "/api/v1/events?x=" + strings.Repeat("q", 1025-len("x=")), 414, "", true},
		{"GET", "/api/v1/programs/api/restart", 405, "POST", true},
		{"DELETE", "/api/v1/programs", 405, "GET, HEAD", true},
		{"PUT", "/api/v1/events", 405, "GET, HEAD", true},
		{"POST", "/api/v1/programs/api/restart", 200, "", true},
		{"POST", "/api/v1/programs/api/signal", 404, "", true},
		{"POST", "/api/v1/programs/api/" + long, 404, "", true},
		{"POST", "/api/v1/programs/%2e%2e/restart", 404, "", true},
		{"POST", "/api/v1/programs/" + long + "/restart", 404, "", true},
		{"POST", "/api/v1/programs/a%2Fb/restart", 404, "", true},
		{"GET", "/-/reload", 405, "POST, PUT", false},
		{"OPTIONS", "/-/healthy", 405, "GET, HEAD", false},
		{"GET", "/-/nope", 404, "", false},
		{"GET", "/api/v1/events?unknown=1&other", 200, "", true},
		{"GET", "/api/v1/events?follow=false", 200, "", true},
		{"GET", "/api/v1/events?follow=maybe", 400, "", true},
		{"GET", "/api/v1/events?follow=" + long, 400, "", true},
		{"GET", "/api/v1/events?follow=true&follow=false", 400, "", true},
		{"GET", "/api/v1/events?a=%zz", 400, "", true},
		{"GET", "/api/v1/events?a=b;c=d", 400, "", true},
		{"GET", "/api/v1/events?x=" + strings.Repeat("q", 2000), 414, "", true},
	} {
		req, err := http.NewRequest(tt.method, srv.URL+tt.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := tt.method + " " + tt.target
		if len(name) > 80 {
			name = name[:80] + "…"
		}
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, b, tt.code)
		}
		if got := resp.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s: Allow %q, want %q", name, got, tt.allow)
		}
		if ct := resp.Header.Get("Content-Type"); tt.method != "HEAD" && tt.json != (ct == "application/json") {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		if tt.json && tt.method != "HEAD" && !json.Valid(b) {
			t.Errorf("%s: body is not JSON: %q", name, b)
		}
		// An answer never repeats much of the request.
		if len(b) > 512 || strings.Contains(string(b), long) {
			t.Errorf("%s: %d-byte answer echoes the request: %.200q", name, len(b), b)
		}
	}
	if calls := src.controlCalls(); len(calls) != 1 || calls[0] != "restart api" {
		t.Errorf("controller calls %v, want only restart api", calls)
	}
	if code, b := get(t, srv.URL+"/api/v1/programs/API"); !strings.Contains(string(b), `unknown program \"API\"`) {
		t.Errorf("short invalid name is not quoted back: %d %s", code, b)
	}
}

func TestHeadFollowDoesNotStream(t *testing.T) {
	src := newLiveSource()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: src}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, srv.URL+api.PathEvents+"?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("HEAD follow: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if n := src.subscribers(); n != 0 {
		t.Errorf("HEAD follow subscribed (%d subscriptions)", n)
	}
}

func TestFollowHeartbeat(t *testing.T) {
	src := newLiveSource()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: src, Heartbeat: 10 * time.Millisecond}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openFollow(ctx, t, srv.URL)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 3; i++ {
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		if sc.Text() != "" {
			t.Fatalf("line %d of a silent stream: %q, want an empty heartbeat", i, sc.Text())
		}
	}
	src.publish(supervisor.Event{Time: time.Now(), Program: "api", PID: 7, Reason: supervisor.ReasonSignal, Signal: "SIGKILL"})
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.PID != 7 {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		return
	}
	t.Fatalf("stream ended: %v", sc.Err())
}

// countingHandler counts the requests being served.
type countingHandler struct {
	h      http.Handler
	active atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.active.Add(1)
	defer c.active.Add(-1)
	c.h.ServeHTTP(w, r)
}
