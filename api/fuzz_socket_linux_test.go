package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/supervisor"
)

// maxSocketAnswer bounds what the control socket may answer to one fuzzed
// connection: a few answers of the small fake daemon per request, and the
// fuzzer's inputs hold a handful of requests at most.
const maxSocketAnswer = 1 << 20

// FuzzControlSocket writes arbitrary bytes to a connection of a real
// control socket and half-closes it: the server must close the connection
// or answer it, within a deadline, with a bounded answer.
func FuzzControlSocket(f *testing.F) {
	for _, s := range []string{
		"GET /api/v1/programs HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"GET /api/v1/programs/api HTTP/1.1\r\nHost: respawnd\r\n\r\nGET /-/healthy HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"POST /api/v1/programs/api/restart HTTP/1.1\r\nHost: respawnd\r\nContent-Length: 0\r\n\r\n",
		"POST /-/reload HTTP/1.1\r\nHost: respawnd\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"POST /-/reload HTTP/1.1\r\nHost: respawnd\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n",
		"GET /api/v1/events?follow=true HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"GET /api/v1/events?follow=true HTTP/1.1\r\nHost: respawnd\r\n\r\nGET /-/ready HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"GET /api/v1/events?follow=true HTTP/1.0\r\n\r\n",
		"HEAD /api/v1/events?follow=1 HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"GET /api/v1/events?follow=true HTTP/1.1\r\nHost: respawnd\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: respawnd\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"CONNECT respawnd:80 HTTP/1.1\r\nHost: respawnd\r\n\r\n",
		"GET /api/v1/programs HTTP/1.1\r\n",
		"GET /\xff\x00 HTTP/1.1\r\nHost: \x1b\r\n\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
		"",
	} {
		f.Add([]byte(s))
	}

	dir := filepath.Join(f.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	src := newLiveSource()
	src.publish(supervisor.Event{Time: fuzzNow, Program: "api", PID: 40, Reason: supervisor.ReasonSignal, Signal: "SIGSEGV"})
	h := api.NewHandler(api.Config{Source: src, Controller: src, Heartbeat: 50 * time.Millisecond, WriteTimeout: time.Second})
	s, err := api.ListenSocket(api.SocketPath(dir), h, nil)
	if err != nil {
		// ListenSocket may insist that root owns the directory.
		testenv.RequireRoot(f, "a control socket")
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Error(err)
		}
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		uc := c.(*net.UnixConn)
		_ = uc.SetDeadline(time.Now().Add(2 * time.Second))
		// The server may answer and close before it has read everything.
		if _, err := uc.Write(data); err == nil {
			_ = uc.CloseWrite()
		}
		var answer bytes.Buffer
		n, err := io.Copy(&answer, io.LimitReader(uc, maxSocketAnswer+1))
		if n > maxSocketAnswer {
			t.Fatalf("answer over %d bytes", maxSocketAnswer)
		}
		var ne net.Error
		switch {
		case err == nil:
			// Closed by the server.
		case errors.As(err, &ne) && ne.Timeout():
			// Still open: only an event stream may be, and it must have
			// been answered.
			if !bytes.HasPrefix(answer.Bytes(), []byte("HTTP/1.")) || !bytes.Contains(answer.Bytes(), []byte("application/x-ndjson")) {
				t.Fatalf("neither answered nor closed within 2s; got %.200q", answer.Bytes())
			}
		default:
			// Reset by the server, which closed with input unread.
		}
	})
}
