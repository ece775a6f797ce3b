package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Limits on what the client reads from the daemon, so that a broken daemon
// (or whatever listens on the socket's path) cannot make it use unbounded
// memory.
const (
	// maxResponseBytes bounds a JSON answer: a program's status takes
	// under 2 KiB, and the events ring holds 256 events of a few KiB.
	maxResponseBytes = 16 << 20
	// maxErrorBytes bounds the text of an error answer.
	maxErrorBytes = 64 << 10
	// maxEventLine bounds one line of an event stream.
	maxEventLine = 1 << 20
)

// Client talks to a running daemon over its control socket. It is safe for
// concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client of the control socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	hc := &http.Client{
		Transport: tr,
		// The daemon never redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{socket: path, hc: hc}
}

// Programs returns every program's status.
func (c *Client) Programs(ctx context.Context) ([]Program, error) {
	var r ProgramsResponse
	if err := c.do(ctx, http.MethodGet, PathPrograms, &r); err != nil {
		return nil, err
	}
	return r.Programs, nil
}

// Status returns every program's status and the kept orphans.
func (c *Client) Status(ctx context.Context) (ProgramsResponse, error) {
	var r ProgramsResponse
	err := c.do(ctx, http.MethodGet, PathPrograms, &r)
	return r, err
}

// Program returns one program's status.
func (c *Client) Program(ctx context.Context, name string) (Program, error) {
	var p Program
	err := c.do(ctx, http.MethodGet, PathPrograms+"/"+url.PathEscape(name), &p)
	return p, err
}

// Events returns the recent events, newest first.
func (c *Client) Events(ctx context.Context) ([]Event, error) {
	var r EventsResponse
	if err := c.do(ctx, http.MethodGet, PathEvents, &r); err != nil {
		return nil, err
	}
	return r.Events, nil
}

// Follow calls fn with the recent events, oldest first, and then with
// every new one, until ctx is done (it then returns nil), the daemon stops,
// or fn returns an error. Empty lines (the daemon's heartbeats) are
// skipped.
func (c *Client) Follow(ctx context.Context, fn func(Event) error) error {
	return c.FollowOf(ctx, "", fn)
}

// FollowOf is Follow for the events of one program ("" for every one).
func (c *Client) FollowOf(ctx context.Context, program string, fn func(Event) error) error {
	path := PathEvents + "?follow=true"
	if program != "" {
		path += "&program=" + url.QueryEscape(program)
	}
	resp, err := c.send(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return printableErr(fmt.Errorf("decoding event: %w", err))
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return printableErr(fmt.Errorf("following events: %w", err))
	}
	return nil
}

// EventsOf returns the recent events of one program ("" for every one),
// newest first.
func (c *Client) EventsOf(ctx context.Context, program string) ([]Event, error) {
	var r EventsResponse
	path := PathEvents
	if program != "" {
		path += "?program=" + url.QueryEscape(program)
	}
	if err := c.do(ctx, http.MethodGet, path, &r); err != nil {
		return nil, err
	}
	return r.Events, nil
}

// Deaths returns the newest limit death records of program, newest first.
func (c *Client) Deaths(ctx context.Context, program string, limit int) ([]Death, error) {
	var r DeathsResponse
	path := PathPrograms + "/" + url.PathEscape(program) + SuffixDeaths + "?limit=" + strconv.Itoa(limit)
	if err := c.do(ctx, http.MethodGet, path, &r); err != nil {
		return nil, err
	}
	return r.Deaths, nil
}

// Death returns one death record by its ID.
func (c *Client) Death(ctx context.Context, id string) (Death, error) {
	var d Death
	err := c.do(ctx, http.MethodGet, PathDeaths+"/"+url.PathEscape(id), &d)
	return d, err
}

// Control starts, stops or restarts the named program; action is "start",
// "stop" or "restart".
func (c *Client) Control(ctx context.Context, name, action string) error {
	return c.do(ctx, http.MethodPost, PathPrograms+"/"+url.PathEscape(name)+"/"+url.PathEscape(action), &ControlResponse{})
}

// Reload makes the daemon load its configuration file again; the error
// carries the reason a rejected file was rejected.
func (c *Client) Reload(ctx context.Context) error {
	resp, err := c.send(ctx, http.MethodPost, PathReload)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	return nil
}

// do sends a request and decodes a JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	resp, err := c.send(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		return printableErr(fmt.Errorf("decoding %s response: %w", path, err))
	}
	return nil
}

// send sends a request and turns transport failures and error statuses
// into errors that match this package's sentinels.
func (c *Client) send(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://respawnd"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w (nothing listens on %s)", ErrNotRunning, c.socket)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("%w: cannot connect to %s (the control socket is root's)", ErrPermission, c.socket)
		}
		return nil, printableErr(fmt.Errorf("connecting to %s: %w", c.socket, err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 {
		// A 101's body is the connection itself: read nothing from it.
		return nil, fmt.Errorf("%s %s: unexpected answer %s", method, path, printable(resp.Status))
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	msg := string(b)
	var er ErrorResponse
	if json.Unmarshal(b, &er) == nil && er.Error != "" {
		msg = er.Error
	}
	// The message goes to a terminal: keep it to printable text.
	msg = strings.TrimSpace(printable(msg))
	switch {
	case resp.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(msg), "lifecycle"):
		return nil, fmt.Errorf("%w: %s", ErrLifecycleDisabled, msg)
	case resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s", ErrPermission, msg)
	case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(msg, "unknown program"):
		return nil, fmt.Errorf("%w: %s", ErrUnknownProgram, strings.TrimPrefix(msg, "unknown program "))
	}
	return nil, fmt.Errorf("%s %s: %s: %s", method, path, printable(resp.Status), msg)
}

// printableErr is err with a message that is safe to print (see
// printable); errors.Is and errors.As still see err. Go's own errors may
// carry bytes of the daemon's answer, such as a malformed header line.
func printableErr(err error) error {
	msg := err.Error()
	if p := printable(msg); p != msg {
		return &cleanError{msg: p, err: err}
	}
	return err
}

type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }

// printable replaces control characters other than newline and tab, and
// invalid UTF-8, with U+FFFD, so that a daemon's answer printed to a
// terminal cannot drive it (an escape sequence).
func printable(s string) string {
	clean := func(r rune) bool { return r != utf8.RuneError && (r == '\n' || r == '\t' || !unicode.IsControl(r)) }
	if strings.IndexFunc(s, func(r rune) bool { return !clean(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !clean(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}
