package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/supervisor"
)

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// parseWebFlags parses args as respawnd's web flags.
func parseWebFlags(t *testing.T, args ...string) *webFlags {
	t.Helper()
	app := kingpin.New("respawnd", "")
	wf := addWebFlags(app)
	if _, err := app.Parse(args); err != nil {
		t.Fatal(err)
	}
	return wf
}

// serverCert writes a certificate for 127.0.0.1 and its key to dir, issued
// by a CA of the test's own (see testCA), and returns a pool trusting it.
func serverCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := newTestCA(t, "respawnd test CA")
	certPEM, keyPEM := ca.issue(t, 2, x509.ExtKeyUsageServerAuth)
	certFile = writeFile(t, dir, "cert.pem", string(certPEM))
	keyFile = writeFile(t, dir, "key.pem", string(keyPEM))
	pool = x509.NewCertPool()
	pool.AddCert(ca.cert)
	return certFile, keyFile, pool
}

// testObserver is an observer of a supervisor with no programs, ready.
func testObserver() *observer {
	o := newObserver()
	o.sup = supervisor.New(supervisor.Config{})
	for _, s := range []string{"kmsg", "cgroup", "vmstat"} {
		o.setSource(s, true)
	}
	o.applied(nil, time.Now())
	return o
}

// serveTest runs servers until the test ends.
func serveTest(t *testing.T, s *servers) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("the servers did not stop within 30s of their cancellation")
		}
	})
}

// waitHTTP polls url until the server answers at all.
func waitHTTP(t *testing.T, c *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", url, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWebConfigProtectsMetrics(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := serverCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := writeFile(t, dir, "web.yml", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n", certFile, keyFile, hash))
	addr := freeAddr(t)
	wf := parseWebFlags(t, "--web.listen-address="+addr, "--web.config.file="+webConfig)
	s, err := newServers(wf, slog.New(slog.DiscardHandler), testObserver(), metrics.NewRecorder(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, s)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + addr
	waitHTTP(t, client, base+"/-/healthy")
	get := func(path, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/metrics", "/api/v1/programs", "/"} {
		if code, _ := get(path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
		if code, _ := get(path, "prometheus", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d, want 401", path, code)
		}
	}
	code, body := get("/metrics", "prometheus", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, "respawnd_build_info") {
		t.Errorf("/metrics with credentials: %d\n%.300s", code, body)
	}
	// Plain HTTP gets nowhere either.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain http scrape succeeded")
		}
	}
}

func TestLandingPageAndPaths(t *testing.T) {
	addr := freeAddr(t)
	wf := parseWebFlags(t, "--web.listen-address="+addr, "--web.telemetry-path=/custom-metrics")
	o := &observer{sup: supervisor.New(supervisor.Config{}), sources: map[string]bool{"kmsg": false}}
	var scrapes atomic.Int32 // the settler hears of scrapes, and of nothing else
	s, err := newServers(wf, slog.New(slog.DiscardHandler), o, metrics.NewRecorder(), func() { scrapes.Add(1) }, true, false)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, s)
	base := "http://" + addr
	waitHTTP(t, http.DefaultClient, base+"/-/healthy")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/")
	for _, link := range []string{"/custom-metrics", "/api/v1/programs", "/api/v1/events", "/-/healthy", "/-/ready"} {
		if !strings.Contains(body, `href="`+link) {
			t.Errorf("landing page (%d) has no link to %s", code, link)
		}
	}
	if code, body := get("/custom-metrics"); code != http.StatusOK || !strings.Contains(body, `respawnd_oom_source_up{source="kmsg"} 0`) {
		t.Errorf("/custom-metrics: %d\n%.300s", code, body)
	}
	testenv.Eventually(t, "the scrape noted", func() bool { return scrapes.Load() == 1 })
	// Not ready before the configuration is applied; ready after.
	if code, _ := get("/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("ready before the configuration is applied: %d, want 503", code)
	}
	o.applied(nil, time.Now())
	if code, _ := get("/-/ready"); code != http.StatusOK {
		t.Errorf("ready after: %d, want 200", code)
	}
	// No lifecycle: reload is forbidden.
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("reload without --web.enable-lifecycle: %d, want 403", resp.StatusCode)
	}
	if n := scrapes.Load(); n != 1 {
		t.Errorf("the settler heard of %d scrapes, want 1: the landing page, readiness and reload are none", n)
	}
}

func TestReadyNeedsAppliedConfig(t *testing.T) {
	o := &observer{}
	if o.Ready() {
		t.Error("ready before any configuration was applied")
	}
	o.applied(fmt.Errorf("bad file"), time.Now())
	if o.Ready() || o.LastReload().Successful {
		t.Error("ready after a rejected configuration")
	}
	o.applied(nil, time.Now())
	if !o.Ready() || !o.LastReload().Successful || o.LastReload().LastSuccess.IsZero() {
		t.Errorf("after a successful apply: ready %v, reload %+v", o.Ready(), o.LastReload())
	}
}
