package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
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
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// Programs returns every program's status.
func (c *Client) Programs(ctx context.Context) ([]Program, error) {
	var r ProgramsResponse
	if err := c.do(ctx, http.MethodGet, PathPrograms, &r); err != nil {
		return nil, err
	}
	return r.Programs, nil
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
// or fn returns an error.
func (c *Client) Follow(ctx context.Context, fn func(Event) error) error {
	resp, err := c.send(ctx, http.MethodGet, PathEvents+"?follow=true")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decoding event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("following events: %w", err)
	}
	return nil
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
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding %s response: %w", path, err)
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
		return nil, fmt.Errorf("connecting to %s: %w", c.socket, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(b))
	var er ErrorResponse
	if json.Unmarshal(b, &er) == nil && er.Error != "" {
		msg = er.Error
	}
	switch {
	case resp.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(msg), "lifecycle"):
		return nil, fmt.Errorf("%w: %s", ErrLifecycleDisabled, msg)
	case resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s", ErrPermission, msg)
	case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(msg, "unknown program"):
		return nil, fmt.Errorf("%w: %s", ErrUnknownProgram, strings.TrimPrefix(msg, "unknown program "))
	}
	return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
}
