package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/respawnd/respawnd/config"
)

// newHTTPClient returns the client of every HTTP probe, made the way
// Kubernetes makes its HTTP probes':
//
//   - certificates are not verified: a probe checks that the program
//     answers, not who it is, and programs commonly serve self-signed
//     certificates on their health endpoints;
//   - keep-alives are off, so that each probe tests a fresh accept of the
//     listening socket rather than a connection that stays open;
//   - no proxy from the environment, and no compression;
//   - redirects are not followed: a 3xx is judged by its status.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:              nil,
			DialContext:        (&net.Dialer{}).DialContext,
			TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, // see above
			DisableKeepAlives:  true,
			DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// httpProbe is a GET of one URL with its headers, built once per watch.
type httpProbe struct {
	client *http.Client
	url    string
	expect config.StatusRange
	req    *http.Request // the template; nil when the URL is bad
	err    error         // why req is nil
}

func newHTTPProbe(client *http.Client, p *config.HTTPProbe) *httpProbe {
	hp := &httpProbe{client: client, url: p.URL, expect: p.ExpectStatus}
	if hp.expect == (config.StatusRange{}) {
		hp.expect = config.DefaultStatusRange
	}
	req, err := http.NewRequest(http.MethodGet, p.URL, nil)
	if err != nil {
		hp.err = fmt.Errorf("GET %s: %w", p.URL, err)
		return hp
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range p.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	hp.req = req
	return hp
}

// run makes one GET within timeout.
func (hp *httpProbe) run(ctx context.Context, timeout time.Duration, _ *watch) (Result, string, bool) {
	if hp.req == nil {
		return ResultFailure, hp.err.Error(), ctx.Err() == nil
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// WithContext copies the template shallowly; the transport does not
	// modify a request's headers.
	resp, err := hp.client.Do(hp.req.WithContext(pctx))
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its text would repeat the method and URL, quoted
		}
		return hp.failed(ctx, pctx, timeout, err)
	}
	_, err = io.CopyN(io.Discard, resp.Body, maxBody)
	_ = resp.Body.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return hp.failed(ctx, pctx, timeout, fmt.Errorf("reading body: %w", err))
	}
	if !hp.expect.Contains(resp.StatusCode) {
		return ResultFailure, hp.statusReason(resp), ctx.Err() == nil
	}
	return ResultSuccess, "", ctx.Err() == nil
}

// failed classifies an error of the probe: cut short (ctx done), timeout
// (pctx's deadline passed) or failure.
func (hp *httpProbe) failed(ctx, pctx context.Context, timeout time.Duration, err error) (Result, string, bool) {
	switch {
	case ctx.Err() != nil:
		return "", "", false
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		return ResultTimeout, timedOut(timeout), true
	}
	return ResultFailure, "GET " + hp.url + ": " + err.Error(), true
}

// statusReason says which status failed, and where a redirect pointed.
func (hp *httpProbe) statusReason(resp *http.Response) string {
	s := "GET " + hp.url + ": status " + strconv.Itoa(resp.StatusCode)
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		s += " (redirect to " + strconv.Quote(truncate(loc, maxReasonText)) + ", not followed)"
	}
	return s
}

// timedOut is the reason of every timeout.
func timedOut(timeout time.Duration) string {
	return "timed out after " + timeout.String()
}

// maxReasonText bounds text a probe's target controls (a Location header,
// an output line) in a reason.
const maxReasonText = 256

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
