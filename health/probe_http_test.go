package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
)

// runHTTP runs one HTTP probe of p within timeout.
func runHTTP(p config.HTTPProbe, timeout time.Duration) (Result, string) {
	r, reason, ok := newHTTPProbe(newHTTPClient(), &p).run(context.Background(), timeout, nil)
	if !ok {
		return "cut short", reason
	}
	return r, reason
}

func TestHTTPProbe(t *testing.T) {
	verifyNoLeaks(t)
	var targetHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(waitTimeout):
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/target", http.StatusFound) })
	mux.HandleFunc("/target", func(w http.ResponseWriter, _ *http.Request) { targetHits.Add(1) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		chunk := strings.Repeat("x", 4096)
		for range 1024 { // 4 MiB, far more than a probe reads
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(mux)
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name       string
		probe      config.HTTPProbe
		want       Result
		wantReason string
	}{
		{"200 passes", config.HTTPProbe{URL: srv.URL + "/ok"}, ResultSuccess, ""},
		{"500 fails", config.HTTPProbe{URL: srv.URL + "/fail"}, ResultFailure, "GET " + srv.URL + "/fail: status 500"},
		{"500 passes when expected", config.HTTPProbe{URL: srv.URL + "/fail", ExpectStatus: config.StatusRange{Min: 500, Max: 500}}, ResultSuccess, ""},
		{"slow is a timeout", config.HTTPProbe{URL: srv.URL + "/slow"}, ResultTimeout, "timed out after 200ms"},
		{"3xx out of range fails, not followed", config.HTTPProbe{URL: srv.URL + "/redirect", ExpectStatus: config.StatusRange{Min: 200, Max: 299}}, ResultFailure,
			"GET " + srv.URL + `/redirect: status 302 (redirect to "/target", not followed)`},
		{"3xx in the default range passes", config.HTTPProbe{URL: srv.URL + "/redirect"}, ResultSuccess, ""},
		{"a big body passes", config.HTTPProbe{URL: srv.URL + "/big"}, ResultSuccess, ""},
		{"connection refused fails", config.HTTPProbe{URL: closedURL + "/ok"}, ResultFailure, "GET " + closedURL + "/ok: dial tcp " + strings.TrimPrefix(closedURL, "http://") + ": connect: connection refused"},
		{"a bad URL fails", config.HTTPProbe{URL: "http://[::1"}, ResultFailure, `GET http://[::1: parse "http://[::1": missing ']' in host`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, reason := runHTTP(tt.probe, 200*time.Millisecond)
			if r != tt.want || reason != tt.wantReason {
				t.Errorf("probe = %s %q, want %s %q", r, reason, tt.want, tt.wantReason)
			}
		})
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target was requested %d times; redirects must not be followed", n)
	}
}

func TestHTTPProbeSendsHeaders(t *testing.T) {
	verifyNoLeaks(t)
	var mu sync.Mutex
	var got *http.Request
	var remotes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Clone(context.Background())
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	p := config.HTTPProbe{URL: srv.URL + "/healthz", Headers: map[string]string{"Host": "app.example", "X-Probe": "yes"}}
	for range 2 {
		if r, reason := runHTTP(p, time.Second); r != ResultSuccess {
			t.Fatalf("probe = %s %q", r, reason)
		}
	}
	mu.Lock()
	if got.Host != "app.example" {
		t.Errorf("Host = %q, want app.example", got.Host)
	}
	if v := got.Header.Get("X-Probe"); v != "yes" {
		t.Errorf("X-Probe = %q, want yes", v)
	}
	if v := got.Header.Get("User-Agent"); v != userAgent {
		t.Errorf("User-Agent = %q, want %q", v, userAgent)
	}
	if got.Method != http.MethodGet || got.URL.Path != "/healthz" {
		t.Errorf("request %s %s, want GET /healthz", got.Method, got.URL.Path)
	}
	// Keep-alives are off: every probe is a new connection.
	if len(remotes) != 2 || remotes[0] == remotes[1] {
		t.Errorf("probes came from %v, want two different connections", remotes)
	}
	mu.Unlock()

	// A User-Agent among the headers replaces respawnd's.
	p.Headers = map[string]string{"User-Agent": "mine"}
	if r, reason := runHTTP(p, time.Second); r != ResultSuccess {
		t.Fatalf("probe = %s %q", r, reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if v := got.Header.Get("User-Agent"); v != "mine" {
		t.Errorf("User-Agent = %q, want mine", v)
	}
}

func TestHTTPSProbeSkipsVerification(t *testing.T) {
	verifyNoLeaks(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = nil
	t.Cleanup(srv.Close)
	if r, reason := runHTTP(config.HTTPProbe{URL: srv.URL}, 5*time.Second); r != ResultSuccess {
		t.Errorf("probe of a self-signed server = %s %q, want success", r, reason)
	}
}

func TestTCPProbe(t *testing.T) {
	verifyNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan struct{}, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
		accepted <- struct{}{}
	}()
	tp := &tcpProbe{address: ln.Addr().String()}
	if r, reason, ok := tp.run(context.Background(), time.Second, nil); r != ResultSuccess || !ok {
		t.Errorf("probe of a listening port = %s %q %v, want success", r, reason, ok)
	}
	select {
	case <-accepted:
	case <-time.After(waitTimeout):
		t.Fatal("the probe's connection was never accepted")
	}

	addr := ln.Addr().String()
	_ = ln.Close()
	r, reason, ok := tp.run(context.Background(), time.Second, nil)
	if want := "dial tcp " + addr + ": connect: connection refused"; r != ResultFailure || reason != want || !ok {
		t.Errorf("probe of a closed port = %s %q %v, want failure %q", r, reason, ok, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, ok := tp.run(ctx, time.Second, nil); ok {
		t.Error("a probe whose context was done reported a result")
	}
}
