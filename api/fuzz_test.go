package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

// fuzzSource is a Source and Controller with fixed answers whose
// subscriptions end at once, so that a fuzzed event stream ends after
// its backlog. It records what the controller was asked.
type fuzzSource struct {
	mu    sync.Mutex
	calls []fuzzCall
	// reloadErr, when not nil, is what Reload returns.
	reloadErr error
}

type fuzzCall struct {
	name string
	a    supervisor.Action
	sig  syscall.Signal
}

var fuzzNow = time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)

func (*fuzzSource) Programs() []api.Program {
	code := 1
	return []api.Program{
		{Name: "api", State: "running", PID: 42, LastExit: &api.Exit{Reason: "exit_error", ExitCode: &code}},
		{Name: "web.1", State: "backoff", BackoffSeconds: 1.5},
	}
}

func (*fuzzSource) Events() []supervisor.Event {
	rss := int64(64 << 20)
	return []supervisor.Event{
		{Time: fuzzNow, PID: 99, Comm: "h\x1bo\xffg", Reason: supervisor.ReasonOOMKill, Signal: "SIGKILL", OOM: &oom.Kill{PID: 99, Comm: "h\x1bo\xffg", AnonRSSBytes: &rss}, RSSBytes: rss},
		{Time: fuzzNow.Add(-time.Second), Program: "api", PID: 40, Reason: supervisor.ReasonSignal, Signal: "SIGSEGV"},
	}
}

func (*fuzzSource) Subscribe() (<-chan supervisor.Event, func()) {
	c := make(chan supervisor.Event, 1)
	c <- supervisor.Event{Time: fuzzNow.Add(time.Second), Program: "web.1", PID: 7, Reason: supervisor.ReasonStartFailure, Error: "exec: not found"}
	close(c)
	return c, func() {}
}

func (s *fuzzSource) Control(_ context.Context, name string, a supervisor.Action, sig syscall.Signal) error {
	s.mu.Lock()
	s.calls = append(s.calls, fuzzCall{name, a, sig})
	s.mu.Unlock()
	if name != "api" {
		return supervisor.ErrUnknownProgram
	}
	return nil
}

func (s *fuzzSource) Reload(context.Context) error { return s.reloadErr }

// fuzzNameRE is what the controller may be called with.
var fuzzNameRE = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// maxFuzzAnswer bounds any answer to any request: the fake's data are
// small, so a longer answer repeats the request.
const maxFuzzAnswer = 8 << 10

// FuzzHandler serves arbitrary requests and checks that every answer is a
// valid HTTP status with a bounded, well-formed body, and that the
// controller is only ever asked to start, stop or restart a valid name.
func FuzzHandler(f *testing.F) {
	seeds := []struct {
		method, path, query, headers string
		body                         []byte
		flags                        byte
	}{
		{"GET", api.PathHealthy, "", "", nil, 0},
		{"HEAD", api.PathReady, "", "", nil, 4},
		{"GET", api.PathPrograms, "", "Accept: application/json", nil, 0},
		{"GET", api.PathPrograms + "/api", "", "", nil, 0},
		{"GET", api.PathPrograms + "/API", "", "", nil, 0},
		{"GET", api.PathPrograms + "/" + strings.Repeat("a", 65), "", "", nil, 0},
		{"POST", api.PathPrograms + "/api/restart", "", "", nil, 1},
		{"POST", api.PathPrograms + "/web.1/stop", "", "Content-Type: application/json", []byte("{}"), 1},
		{"POST", api.PathPrograms + "/nope/start", "", "", nil, 1},
		{"POST", api.PathPrograms + "/../restart", "", "", nil, 1},
		{"POST", api.PathPrograms + "/api/signal", "", "", nil, 1},
		{"POST", api.PathPrograms + "/api/restart", "", "", nil, 0},
		{"POST", api.PathReload, "", "", nil, 1},
		{"PUT", api.PathReload, "", "", bytes.Repeat([]byte("x"), 5000), 1 | 2},
		{"POST", api.PathReload, "", "Transfer-Encoding: chunked", bytes.Repeat([]byte("x"), 4096), 1 | 2},
		{"POST", api.PathReload, "", "", nil, 1 | 8},
		{"DELETE", api.PathPrograms, "", "", nil, 0},
		{"GET", api.PathEvents, "", "", nil, 0},
		{"GET", api.PathEvents, "follow=true", "", nil, 0},
		{"HEAD", api.PathEvents, "follow=1", "", nil, 0},
		{"GET", api.PathEvents, "follow=true&follow=false", "", nil, 0},
		{"GET", api.PathEvents, "follow=%zz;x", "", nil, 0},
		{"GET", api.PathEvents, strings.Repeat("a=b&", 300), "", nil, 0},
		{"GET", "/api/v1/nope", "", "", nil, 0},
		{"GET", "/-/", "", "", nil, 0},
		{"CONNECT", "", "", "", nil, 0},
		{"G\x00T", "/\xff", "\n", "X: \r\n", nil, 0},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.headers, s.body, s.flags)
	}
	f.Fuzz(func(t *testing.T, method, path, query, headers string, body []byte, flags byte) {
		src := &fuzzSource{}
		cfg := api.Config{Source: src}
		if flags&1 != 0 {
			cfg.Controller = src
		}
		if flags&4 != 0 {
			cfg.Ready = func() bool { return false }
		}
		if flags&8 != 0 {
			src.reloadErr = errors.New("respawnd.yaml:3: programs[0].command: required")
		}
		h := api.NewHandler(cfg)

		hdr := http.Header{}
		for line := range strings.SplitSeq(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				hdr.Add(k, strings.TrimSpace(v))
			}
		}
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     hdr,
			Host:       "respawnd",
			RequestURI: path,
			Body:       http.NoBody,
		}
		if len(body) > 0 || flags&2 != 0 {
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
			if flags&2 != 0 {
				req.ContentLength = -1 // chunked: length unknown
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		if ctx.Err() != nil {
			t.Fatal("the handler took until its request's context ended")
		}

		res := rec.Result()
		b := rec.Body.Bytes()
		if res.StatusCode < 100 || res.StatusCode > 599 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if len(b) > maxFuzzAnswer {
			t.Fatalf("%d-byte answer: %.200q", len(b), b)
		}
		switch ct := res.Header.Get("Content-Type"); ct {
		case "application/json":
			if method == http.MethodHead {
				break
			}
			if !json.Valid(b) {
				t.Fatalf("invalid JSON body: %q", b)
			}
			if res.StatusCode >= 400 {
				var er api.ErrorResponse
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&er); err != nil || er.Error == "" {
					t.Fatalf("%d error body %q is not an ErrorResponse: %v", res.StatusCode, b, err)
				}
			}
		case "application/x-ndjson":
			for line := range bytes.SplitSeq(b, []byte("\n")) {
				if len(line) > 0 && !json.Valid(line) {
					t.Fatalf("invalid event line %q", line)
				}
			}
		case "text/plain; charset=utf-8":
		default:
			t.Fatalf("Content-Type %q", ct)
		}
		if res.StatusCode == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "" {
			t.Fatal("405 without Allow")
		}
		if n := res.Header.Get("Content-Length"); n != "" && n != strconv.Itoa(len(b)) && method != http.MethodHead {
			t.Fatalf("Content-Length %s for a %d-byte body", n, len(b))
		}

		src.mu.Lock()
		defer src.mu.Unlock()
		if cfg.Controller == nil && len(src.calls) > 0 {
			t.Fatalf("controller called without the lifecycle API: %+v", src.calls)
		}
		for _, c := range src.calls {
			if !fuzzNameRE.MatchString(c.name) || c.name == "." || c.name == ".." {
				t.Fatalf("controller called with name %q", c.name)
			}
			switch c.a {
			case supervisor.ActionStart, supervisor.ActionStop, supervisor.ActionRestart:
			default:
				t.Fatalf("controller called with action %v", c.a)
			}
			if c.sig != 0 {
				t.Fatalf("controller called with signal %d", c.sig)
			}
		}
		if len(src.calls) > 1 {
			t.Fatalf("controller called %d times for one request", len(src.calls))
		}
	})
}
