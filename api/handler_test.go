package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
)

// fakeDaemon is a Source and Controller with fixed answers.
type fakeDaemon struct {
	mu        sync.Mutex
	programs  []api.Program
	events    []supervisor.Event
	subs      []chan supervisor.Event
	actions   []string
	reloadErr error
}

func (f *fakeDaemon) Programs() []api.Program { return f.programs }

func (f *fakeDaemon) Events() []supervisor.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]supervisor.Event(nil), f.events...)
}

func (f *fakeDaemon) Subscribe() (<-chan supervisor.Event, func()) {
	c := make(chan supervisor.Event, 8)
	f.mu.Lock()
	f.subs = append(f.subs, c)
	f.mu.Unlock()
	return c, func() {}
}

func (f *fakeDaemon) publish(e supervisor.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append([]supervisor.Event{e}, f.events...)
	for _, c := range f.subs {
		c <- e
	}
}

func (f *fakeDaemon) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeDaemon) Control(_ context.Context, name string, a supervisor.Action, _ syscall.Signal) error {
	if name != "api" {
		return supervisor.ErrUnknownProgram
	}
	f.mu.Lock()
	f.actions = append(f.actions, a.String()+" "+name)
	f.mu.Unlock()
	return nil
}

func (f *fakeDaemon) Reload(context.Context) error { return f.reloadErr }

func newFake() *fakeDaemon {
	rss := int64(50 << 20)
	code := 3
	now := time.Now()
	st := supervisor.Status{Name: "api", State: supervisor.StateRunning, PID: 42, Generation: 3, Started: now, Restarts: 2,
		LastExit: &supervisor.Exit{Program: "api", PID: 41, Time: now, Reason: supervisor.ReasonOOMKill, Signal: syscall.SIGKILL, OOM: &oom.Kill{PID: 41, Comm: "api", AnonRSSBytes: &rss}}}
	limit := uint64(64 << 20)
	return &fakeDaemon{
		programs: []api.Program{api.NewProgram(st, api.Memory{LimitBytes: &limit}, now)},
		events: []supervisor.Event{
			{Time: now, PID: 99, Comm: "hog", Reason: supervisor.ReasonOOMKill, Signal: "SIGKILL", OOM: &oom.Kill{PID: 99, Comm: "hog", AnonRSSBytes: &rss}, RSSBytes: rss},
			{Time: now.Add(-time.Second), Program: "api", PID: 40, Reason: supervisor.ReasonExitError, ExitCode: &code},
		},
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProgramsAndEventsDecode(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: f}))
	defer srv.Close()

	code, b := get(t, srv.URL+api.PathPrograms)
	if code != http.StatusOK {
		t.Fatalf("programs: %d %s", code, b)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var pr api.ProgramsResponse
	if err := dec.Decode(&pr); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if len(pr.Programs) != 1 {
		t.Fatalf("programs: %+v", pr)
	}
	p := pr.Programs[0]
	if p.Name != "api" || p.State != "running" || p.PID != 42 || p.Restarts != 2 || p.StartTime == nil ||
		p.LastExit == nil || p.LastExit.Reason != "oom_kill" || p.LastExit.Signal != "SIGKILL" || p.LastExit.OOM == nil ||
		p.MemoryLimitBytes == nil || *p.MemoryLimitBytes != 64<<20 || p.MemoryUsageBytes != nil {
		t.Errorf("program %+v", p)
	}
	if !strings.Contains(string(b), `"memory_usage_bytes":null`) {
		t.Errorf("unknown usage is not null: %s", b)
	}

	code, b = get(t, srv.URL+api.PathEvents)
	if code != http.StatusOK {
		t.Fatalf("events: %d %s", code, b)
	}
	dec = json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var er api.EventsResponse
	if err := dec.Decode(&er); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if len(er.Events) != 2 {
		t.Fatalf("events: %+v", er)
	}
	host, exit := er.Events[0], er.Events[1]
	if host.Program != nil || host.Comm != "hog" || host.OOM == nil || host.RSSBytes == nil || *host.RSSBytes != 50<<20 || host.ExitCode != nil {
		t.Errorf("host event %+v", host)
	}
	if exit.Program == nil || *exit.Program != "api" || exit.ExitCode == nil || *exit.ExitCode != 3 || exit.RSSBytes != nil {
		t.Errorf("exit event %+v", exit)
	}
	var raw struct {
		Events []map[string]json.RawMessage `json:"events"`
	}
	_ = json.Unmarshal(b, &raw)
	if got := string(raw.Events[0]["program"]); got != "null" {
		t.Errorf("host event program is %s, want an explicit null", got)
	}

	if code, b := get(t, srv.URL+api.PathPrograms+"/nope"); code != http.StatusNotFound {
		t.Errorf("unknown program: %d %s", code, b)
	}
}

func TestHealthyReady(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: newFake(), Ready: ready.Load}))
	defer srv.Close()
	if code, _ := get(t, srv.URL+api.PathHealthy); code != http.StatusOK {
		t.Errorf("healthy: %d", code)
	}
	if code, _ := get(t, srv.URL+api.PathReady); code != http.StatusServiceUnavailable {
		t.Errorf("ready before sources are initialised: %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get(t, srv.URL+api.PathReady); code != http.StatusOK {
		t.Errorf("ready after: %d, want 200", code)
	}
	resp, err := http.Head(srv.URL + api.PathReady)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD ready: %d", resp.StatusCode)
	}
}

func TestLifecycle(t *testing.T) {
	f := newFake()
	readOnly := httptest.NewServer(api.NewHandler(api.Config{Source: f}))
	defer readOnly.Close()
	if code, body := post(t, readOnly.URL+api.PathReload); code != http.StatusForbidden || !strings.Contains(body, "Lifecycle API is not enabled") {
		t.Errorf("reload without lifecycle: %d %q", code, body)
	}
	if code, body := post(t, readOnly.URL+api.PathPrograms+"/api/restart"); code != http.StatusForbidden {
		t.Errorf("restart without lifecycle: %d %q", code, body)
	}
	if code, _ := get(t, readOnly.URL+api.PathReload); code != http.StatusMethodNotAllowed {
		t.Errorf("GET reload: %d, want 405", code)
	}

	control := httptest.NewServer(api.NewHandler(api.Config{Source: f, Controller: f}))
	defer control.Close()
	if code, body := post(t, control.URL+api.PathPrograms+"/api/restart"); code != http.StatusOK {
		t.Errorf("restart: %d %q", code, body)
	}
	if code, body := post(t, control.URL+api.PathPrograms+"/nope/stop"); code != http.StatusNotFound {
		t.Errorf("stop unknown: %d %q", code, body)
	}
	if code, body := post(t, control.URL+api.PathPrograms+"/api/explode"); code != http.StatusNotFound {
		t.Errorf("unknown action: %d %q", code, body)
	}
	if code, body := post(t, control.URL+api.PathReload); code != http.StatusOK {
		t.Errorf("reload: %d %q", code, body)
	}
	f.reloadErr = errors.New("respawnd.yaml:3: programs[0].command: required")
	if code, body := post(t, control.URL+api.PathReload); code != http.StatusInternalServerError || !strings.Contains(body, "programs[0].command: required") {
		t.Errorf("failed reload: %d %q", code, body)
	}
	if len(f.actions) != 1 || f.actions[0] != "restart api" {
		t.Errorf("actions %v", f.actions)
	}
}

func TestFollowEvents(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: f}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+api.PathEvents+"?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var got []api.Event
	next := func() api.Event {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		return e
	}
	// The backlog, oldest first.
	if e := next(); e.PID != 40 {
		t.Errorf("first streamed event %+v, want the older exit", e)
	}
	if e := next(); e.PID != 99 {
		t.Errorf("second streamed event %+v, want the host oom kill", e)
	}
	for deadline := time.Now().Add(10 * time.Second); f.subscribers() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no subscriber")
		}
		time.Sleep(time.Millisecond)
	}
	f.publish(supervisor.Event{Time: time.Now().Add(time.Second), Program: "api", PID: 43, Reason: supervisor.ReasonSignal, Signal: "SIGKILL"})
	if e := next(); e.PID != 43 || e.Signal != "SIGKILL" {
		t.Errorf("live event %+v", e)
	}
}
