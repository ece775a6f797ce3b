package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/postmortem"
	"github.com/respawnd/respawnd/supervisor"
)

// Source is what the API reads. Its methods must be safe for concurrent use.
type Source interface {
	// Programs returns every program's status, sorted by name.
	Programs() []Program
	// Events returns the recent events, newest first.
	Events() []supervisor.Event
	// Subscribe returns a channel of new events and a func that ends the
	// subscription (the shape of supervisor.Supervisor.Subscribe). The
	// sender must never block on a follower that does not read: the
	// supervisor drops events for a follower whose buffer is full.
	Subscribe() (<-chan supervisor.Event, func())
}

// OrphanSource is a Source that also knows instances of programs that are
// no longer configured but were kept running (respawnd run
// --state.orphans=keep); GET /api/v1/programs lists them.
type OrphanSource interface {
	// Orphans returns the kept instances, sorted by program name.
	Orphans() []Orphan
}

// DeathSource is a Source that also keeps death records (respawnd run with
// a state directory); without it the death endpoints answer 404.
type DeathSource interface {
	// Deaths returns the newest limit records of program (of every
	// program when program is ""), newest first.
	Deaths(program string, limit int) ([]Death, error)
	// Death returns one record by its ID; an unknown ID is an error
	// wrapping postmortem.ErrNotFound, a malformed one postmortem.ErrBadID.
	Death(id string) (Death, error)
}

// Controller carries out operator actions. *supervisor.Supervisor has the
// Control method; the daemon adds Reload.
type Controller interface {
	Control(ctx context.Context, name string, a supervisor.Action, sig syscall.Signal) error
	// Reload loads the configuration file again and applies it; the error
	// says why it was rejected.
	Reload(ctx context.Context) error
}

// Config configures the API handler. Source is required; every other zero
// value means the default.
type Config struct {
	Source Source
	// Controller, when not nil, enables the lifecycle endpoints
	// (POST /-/reload and program control); when nil they answer 403.
	Controller Controller
	// Ready says whether the daemon is ready: configuration loaded and
	// every OOM source initialised or deliberately degraded. Nil means
	// always ready.
	Ready func() bool
	// Logger receives errors writing responses; nil means discard.
	Logger *slog.Logger

	// MaxFollowers caps the event streams (GET /api/v1/events?follow=true)
	// open at once; more are answered 503 with Retry-After. Default 64.
	MaxFollowers int
	// MaxRequestsInFlight caps the other API requests (programs, events,
	// reload, program control) served at once; more are answered 503 with
	// Retry-After, as promhttp does for scrapes. /-/healthy and /-/ready
	// are never limited. Default 16.
	MaxRequestsInFlight int
	// WriteTimeout bounds every write of a response, and each write of an
	// event stream, to a client that does not read. Default 10s.
	WriteTimeout time.Duration
	// Heartbeat is how long an event stream stays silent before an empty
	// line is written, so that a dead client is noticed and proxies keep
	// the stream open. Default 30s.
	Heartbeat time.Duration
}

// Paths of the endpoints, for links and clients.
const (
	PathHealthy  = "/-/healthy"
	PathReady    = "/-/ready"
	PathReload   = "/-/reload"
	PathPrograms = "/api/v1/programs"
	PathEvents   = "/api/v1/events"
	PathDeaths   = "/api/v1/deaths"
	// SuffixDeaths follows a program's path: /api/v1/programs/NAME/deaths.
	SuffixDeaths = "/deaths"
)

// Limits of the death endpoints.
const (
	// DefaultDeathLimit is how many records GET .../deaths returns without
	// ?limit=, and MaxDeathLimit the most it returns with one.
	DefaultDeathLimit = 10
	MaxDeathLimit     = 100
	// maxDeathsBytes bounds the records in one answer (the client reads up
	// to 16 MiB).
	maxDeathsBytes = 8 << 20
	// maxIDBytes is the longest death record ID accepted.
	maxIDBytes = 128
)

// Limits on what a request may carry. No endpoint takes a body or a long
// path, so each limit is far above any legitimate request.
const (
	// maxNameBytes is the longest program name the API accepts.
	maxNameBytes = 64
	// maxPathBytes and maxQueryBytes bound the escaped path and the raw
	// query: the longest valid path is under 100 bytes.
	maxPathBytes  = 512
	maxQueryBytes = 1024
	// maxBodyBytes is the largest body read and ignored (a client may send
	// "{}" or an empty form with a POST); a longer one is refused with 413.
	maxBodyBytes = 4 << 10
	// bodyReadTimeout bounds reading that body.
	bodyReadTimeout = 10 * time.Second
	// retryAfter is the Retry-After, in seconds, of a 503 for a full limit.
	retryAfter = "5"
)

// Defaults of Config.
const (
	defaultMaxFollowers        = 64
	defaultMaxRequestsInFlight = 16
	defaultWriteTimeout        = 10 * time.Second
	defaultHeartbeat           = 30 * time.Second
)

// nameRE is what a program name must match (config's rule, refusing "."
// and ".." separately).
var nameRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)

// validName says whether name can be a program's name.
func validName(name string) bool {
	return len(name) <= maxNameBytes && name != "." && name != ".." && nameRE.MatchString(name)
}

var actions = map[string]supervisor.Action{
	supervisor.ActionStart.String():   supervisor.ActionStart,
	supervisor.ActionStop.String():    supervisor.ActionStop,
	supervisor.ActionRestart.String(): supervisor.ActionRestart,
}

// NewHandler returns the handler of every API endpoint:
//
//	GET  /-/healthy                        200 while the process is up
//	GET  /-/ready                          200 once ready, else 503
//	POST /-/reload                         reload the configuration (lifecycle only)
//	GET  /api/v1/programs                  ProgramsResponse
//	GET  /api/v1/programs/{name}           Program
//	POST /api/v1/programs/{name}/{action}  start, stop or restart (lifecycle only)
//	GET  /api/v1/events[?follow=true][&program=NAME]
//	                                       EventsResponse, or a stream of Event lines
//	GET  /api/v1/programs/{name}/deaths[?limit=N]  DeathsResponse, newest first
//	GET  /api/v1/deaths[?limit=N]          DeathsResponse: every program's, newest first
//	GET  /api/v1/deaths/{id}               Death
//
// GET also answers HEAD. A wrong method is answered 405 with Allow; errors
// under /api/ have an ErrorResponse body, the others plain text. Requests
// beyond the limits in Config are answered 503 with Retry-After, a body
// over 4 KiB 413, a path over 512 bytes or a query over 1 KiB 414.
//
// The handler bounds its own reads of a request body and its writes, so a
// stalled client holds no more than its connection; the server's
// ReadTimeout and WriteTimeout do not cut event streams or a slow reload
// short.
//
// The handler is safe for concurrent use.
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxFollowers <= 0 {
		cfg.MaxFollowers = defaultMaxFollowers
	}
	if cfg.MaxRequestsInFlight <= 0 {
		cfg.MaxRequestsInFlight = defaultMaxRequestsInFlight
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = defaultHeartbeat
	}
	return &handler{
		cfg: cfg,
		// Semaphores: a token held per request being served.
		followers: make(chan struct{}, cfg.MaxFollowers),
		inFlight:  make(chan struct{}, cfg.MaxRequestsInFlight),
	}
}

type handler struct {
	cfg       Config
	followers chan struct{}
	inFlight  chan struct{}
}

// Methods a route allows, in the form of the Allow header.
const (
	allowGet    = "GET, HEAD"
	allowPost   = "POST"
	allowReload = "POST, PUT"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ew := errorWriter{h: h, api: strings.HasPrefix(r.URL.Path, "/api/")}
	if len(r.URL.EscapedPath()) > maxPathBytes || len(r.URL.RawQuery) > maxQueryBytes {
		ew.write(w, http.StatusRequestURITooLong, "request URI too long")
		return
	}
	if !h.dropBody(w, r, ew) {
		return
	}
	var (
		allow string
		serve func(http.ResponseWriter, *http.Request)
	)
	switch p := r.URL.Path; p {
	case PathHealthy:
		allow, serve = allowGet, h.healthy
	case PathReady:
		allow, serve = allowGet, h.ready
	case PathReload:
		allow, serve = allowReload, h.limited(h.reload)
	case PathPrograms:
		allow, serve = allowGet, h.limited(h.programs)
	case PathEvents:
		allow, serve = allowGet, h.events
	case PathDeaths:
		allow, serve = allowGet, h.limited(func(w http.ResponseWriter, r *http.Request) { h.deaths(w, r, "") })
	default:
		if id, ok := strings.CutPrefix(p, PathDeaths+"/"); ok && id != "" {
			allow = allowGet
			serve = h.limited(func(w http.ResponseWriter, r *http.Request) { h.death(w, r, id) })
			break
		}
		rest, ok := strings.CutPrefix(p, PathPrograms+"/")
		if !ok {
			break
		}
		switch name, action, two := strings.Cut(rest, "/"); {
		case two && name != "" && "/"+action == SuffixDeaths:
			allow = allowGet
			serve = h.limited(func(w http.ResponseWriter, r *http.Request) { h.deaths(w, r, name) })
		case !two && name != "":
			allow = allowGet
			serve = h.limited(func(w http.ResponseWriter, r *http.Request) { h.program(w, r, name) })
		case two && name != "" && action != "" && !strings.Contains(action, "/"):
			allow = allowPost
			serve = func(w http.ResponseWriter, r *http.Request) { h.control(w, r, name, action) }
		}
	}
	if serve == nil {
		ew.write(w, http.StatusNotFound, "not found")
		return
	}
	if !methodAllowed(allow, r.Method) {
		w.Header().Set("Allow", allow)
		ew.write(w, http.StatusMethodNotAllowed, "method "+quoteShort(r.Method)+" not allowed (allowed: "+allow+")")
		return
	}
	serve(w, r)
}

// methodAllowed says whether method is in allow, a list like allowGet.
func methodAllowed(allow, method string) bool {
	for m := range strings.SplitSeq(allow, ", ") {
		if m == method {
			return true
		}
	}
	return false
}

// dropBody reads and drops a request body of at most maxBodyBytes, within
// bodyReadTimeout, and answers a longer or broken one. Reading it here,
// rather than leaving it to the server, starts the server's watch for the
// client going away (it begins at the body's end) and keeps an unending
// body from holding the connection. It then lifts the read and write
// deadlines, so that neither its own nor the server's ReadTimeout or
// WriteTimeout cuts an event stream or a slow reload short (over HTTP/2
// each is a timer that ends the stream when it fires): the request has
// been read in full, and every write the handler makes sets its own
// deadline.
func (h *handler) dropBody(w http.ResponseWriter, r *http.Request, ew errorWriter) bool {
	rc := http.NewResponseController(w)
	refuse := func(code int, msg string) bool {
		// Answer and close without reading on: after the handler, the
		// server would read up to 256 KiB more of the body, for as long
		// as the client takes to send it, hoping to reuse the connection.
		w.Header().Set("Connection", "close")
		_ = rc.SetReadDeadline(time.Unix(1, 0)) // not every ResponseWriter has deadlines
		ew.write(w, code, msg)
		return false
	}
	if r.ContentLength > maxBodyBytes {
		return refuse(http.StatusRequestEntityTooLarge, "request body too large (no endpoint takes a body)")
	}
	if r.Body != nil && r.Body != http.NoBody {
		_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
		_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBodyBytes))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return refuse(http.StatusRequestEntityTooLarge, "request body too large (no endpoint takes a body)")
		case err != nil:
			return refuse(http.StatusBadRequest, "reading request body failed")
		}
	}
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return true
}

// limited serves with a token of the in-flight limit, or answers 503.
func (h *handler) limited(serve func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.inFlight <- struct{}{}:
		default:
			w.Header().Set("Retry-After", retryAfter)
			errorWriter{h: h, api: strings.HasPrefix(r.URL.Path, "/api/")}.write(w, http.StatusServiceUnavailable, "too many requests in flight")
			return
		}
		defer func() { <-h.inFlight }()
		serve(w, r)
	}
}

// errorWriter answers errors in JSON under /api/ and in text elsewhere.
type errorWriter struct {
	h   *handler
	api bool
}

func (e errorWriter) write(w http.ResponseWriter, code int, msg string) {
	if e.api {
		e.h.writeError(w, code, msg)
		return
	}
	e.h.writeText(w, code, msg+"\n")
}

// quoteShort quotes s when it is short enough to echo, or says how long
// it is: an error never repeats much of what a client sent.
func quoteShort(s string) string {
	if len(s) > maxNameBytes {
		return "(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return strconv.Quote(s)
}

// respond writes a whole response within the write timeout; it is the
// handler's last act. The deadline stays armed until the request is done,
// covering the server's final flush.
func (h *handler) respond(w http.ResponseWriter, code int, contentType string, b []byte) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout)) // not every ResponseWriter has deadlines
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		h.cfg.Logger.Debug("writing api response", "err", err)
	}
}

func (h *handler) writeText(w http.ResponseWriter, code int, s string) {
	h.respond(w, code, "text/plain; charset=utf-8", []byte(s))
}

func (h *handler) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.cfg.Logger.Error("encoding api response", "err", err)
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	h.respond(w, code, "application/json", append(b, '\n'))
}

func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	h.writeJSON(w, code, ErrorResponse{Error: msg})
}

func (h *handler) healthy(w http.ResponseWriter, _ *http.Request) {
	h.writeText(w, http.StatusOK, "respawnd is healthy.\n")
}

// ready answers 200 once the daemon is ready and 503 before, as Prometheus
// does for /-/ready.
func (h *handler) ready(w http.ResponseWriter, _ *http.Request) {
	if h.cfg.Ready != nil && !h.cfg.Ready() {
		h.writeText(w, http.StatusServiceUnavailable, "respawnd is not ready.\n")
		return
	}
	h.writeText(w, http.StatusOK, "respawnd is ready.\n")
}

// reload follows Prometheus: 403 unless the lifecycle API is enabled; and
// blackbox_exporter: the reason of a failed reload in a 500.
func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Controller == nil {
		h.writeText(w, http.StatusForbidden, "Lifecycle API is not enabled.\n")
		return
	}
	if err := h.cfg.Controller.Reload(r.Context()); err != nil {
		h.writeText(w, http.StatusInternalServerError, "failed to reload config: "+err.Error()+"\n")
		return
	}
	h.writeText(w, http.StatusOK, "configuration reloaded\n")
}

func (h *handler) programs(w http.ResponseWriter, _ *http.Request) {
	ps := h.cfg.Source.Programs()
	if ps == nil {
		ps = []Program{}
	}
	resp := ProgramsResponse{Programs: ps}
	if os, ok := h.cfg.Source.(OrphanSource); ok {
		resp.Orphans = os.Orphans()
	}
	h.writeJSON(w, http.StatusOK, resp)
}

func (h *handler) program(w http.ResponseWriter, _ *http.Request, name string) {
	if !validName(name) {
		h.writeError(w, http.StatusNotFound, "unknown program "+quoteShort(name))
		return
	}
	for _, p := range h.cfg.Source.Programs() {
		if p.Name == name {
			h.writeJSON(w, http.StatusOK, p)
			return
		}
	}
	h.writeError(w, http.StatusNotFound, "unknown program "+strconv.Quote(name))
}

func (h *handler) control(w http.ResponseWriter, r *http.Request, name, action string) {
	if h.cfg.Controller == nil {
		h.writeError(w, http.StatusForbidden, "lifecycle API is not enabled")
		return
	}
	a, ok := actions[action]
	if !ok {
		h.writeError(w, http.StatusNotFound, "unknown action "+quoteShort(action)+" (want start, stop or restart)")
		return
	}
	if !validName(name) {
		h.writeError(w, http.StatusNotFound, "unknown program "+quoteShort(name))
		return
	}
	h.limited(func(w http.ResponseWriter, r *http.Request) {
		if err := h.cfg.Controller.Control(r.Context(), name, a, 0); err != nil {
			if errors.Is(err, supervisor.ErrUnknownProgram) {
				h.writeError(w, http.StatusNotFound, "unknown program "+strconv.Quote(name))
				return
			}
			h.writeError(w, http.StatusInternalServerError, action+" "+name+": "+err.Error())
			return
		}
		h.writeJSON(w, http.StatusOK, ControlResponse{Program: name, Action: action})
	})(w, r)
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, "malformed query")
		return
	}
	// Other parameters are ignored, as Prometheus does.
	follow := false
	switch vs := q["follow"]; len(vs) {
	case 0:
	case 1:
		if follow, err = strconv.ParseBool(vs[0]); err != nil {
			h.writeError(w, http.StatusBadRequest, "follow: want true or false, not "+quoteShort(vs[0]))
			return
		}
	default:
		h.writeError(w, http.StatusBadRequest, "follow: given more than once")
		return
	}
	program := ""
	switch vs := q["program"]; len(vs) {
	case 0:
	case 1:
		if !validName(vs[0]) {
			h.writeError(w, http.StatusBadRequest, "program: not a program name: "+quoteShort(vs[0]))
			return
		}
		program = vs[0]
	default:
		h.writeError(w, http.StatusBadRequest, "program: given more than once")
		return
	}
	if follow {
		h.follow(w, r, program)
		return
	}
	h.limited(func(w http.ResponseWriter, _ *http.Request) {
		out := []Event{}
		for _, e := range h.cfg.Source.Events() {
			if program == "" || e.Program == program {
				out = append(out, NewEvent(e))
			}
		}
		h.writeJSON(w, http.StatusOK, EventsResponse{Events: out})
	})(w, r)
}

// deaths answers GET /api/v1/programs/{name}/deaths[?limit=N], and GET
// /api/v1/deaths[?limit=N] with name "".
func (h *handler) deaths(w http.ResponseWriter, r *http.Request, name string) {
	ds, ok := h.cfg.Source.(DeathSource)
	if !ok {
		h.writeError(w, http.StatusNotFound, "death records are not kept (no state directory)")
		return
	}
	if name != "" && !validName(name) {
		h.writeError(w, http.StatusNotFound, "unknown program "+quoteShort(name))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, "malformed query")
		return
	}
	limit := DefaultDeathLimit
	switch vs := q["limit"]; len(vs) {
	case 0:
	case 1:
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 1 || n > MaxDeathLimit {
			h.writeError(w, http.StatusBadRequest, "limit: want a whole number from 1 to "+strconv.Itoa(MaxDeathLimit)+", not "+quoteShort(vs[0]))
			return
		}
		limit = n
	default:
		h.writeError(w, http.StatusBadRequest, "limit: given more than once")
		return
	}
	recs, err := ds.Deaths(name, limit)
	if err != nil {
		h.cfg.Logger.Error("reading death records", "program", name, "err", err)
		h.writeError(w, http.StatusInternalServerError, "reading death records failed")
		return
	}
	if len(recs) == 0 && name != "" && !h.known(name) {
		h.writeError(w, http.StatusNotFound, "unknown program "+strconv.Quote(name))
		return
	}
	// DeathsResponse's encoding, each record encoded once: the size bound
	// needs the encodings anyway.
	var resp struct {
		Deaths    []json.RawMessage `json:"deaths"`
		Truncated bool              `json:"truncated,omitempty"`
	}
	resp.Deaths = []json.RawMessage{}
	size := 0
	for _, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			h.cfg.Logger.Error("encoding death record", "id", rec.ID, "err", err)
			continue
		}
		if size+len(b) > maxDeathsBytes && len(resp.Deaths) > 0 {
			resp.Truncated = true
			break
		}
		size += len(b)
		resp.Deaths = append(resp.Deaths, b)
	}
	h.writeJSON(w, http.StatusOK, resp)
}

// known says whether name is a configured program.
func (h *handler) known(name string) bool {
	for _, p := range h.cfg.Source.Programs() {
		if p.Name == name {
			return true
		}
	}
	return false
}

// death answers GET /api/v1/deaths/{id}.
func (h *handler) death(w http.ResponseWriter, _ *http.Request, id string) {
	ds, ok := h.cfg.Source.(DeathSource)
	if !ok {
		h.writeError(w, http.StatusNotFound, "death records are not kept (no state directory)")
		return
	}
	if len(id) > maxIDBytes {
		h.writeError(w, http.StatusNotFound, "no death record "+quoteShort(id))
		return
	}
	rec, err := ds.Death(id)
	switch {
	case errors.Is(err, postmortem.ErrNotFound), errors.Is(err, postmortem.ErrBadID):
		h.writeError(w, http.StatusNotFound, "no death record "+quoteShort(id))
	case err != nil:
		h.cfg.Logger.Error("reading death record", "id", id, "err", err)
		h.writeError(w, http.StatusInternalServerError, "reading death record failed")
	default:
		h.writeJSON(w, http.StatusOK, rec)
	}
}

// follow streams the recent events, oldest first, then each new one, as
// one JSON object per line, and an empty line after Heartbeat of silence.
// It ends when the client goes away (the request's context), when a write
// does not complete within WriteTimeout (a client that stopped reading),
// or when the subscription ends. It starts no goroutine.
func (h *handler) follow(w http.ResponseWriter, r *http.Request, program string) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		return
	}
	select {
	case h.followers <- struct{}{}:
	default:
		w.Header().Set("Retry-After", retryAfter)
		h.writeError(w, http.StatusServiceUnavailable, "too many event streams")
		return
	}
	defer func() { <-h.followers }()

	// Subscribe before listing, so that nothing falls between the two; an
	// event in both is sent once.
	c, cancel := h.cfg.Source.Subscribe()
	defer cancel()
	backlog := h.cfg.Source.Events()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	s := stream{h: h, w: w, rc: rc}
	for i := len(backlog) - 1; i >= 0; i-- {
		if program != "" && backlog[i].Program != program {
			continue
		}
		if !s.write(backlog[i]) {
			return
		}
	}
	if !s.flush() {
		return
	}
	beat := time.NewTicker(h.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-c:
			if !ok {
				return
			}
			if inBacklog(backlog, e) || program != "" && e.Program != program {
				continue
			}
			if !s.write(e) || !s.flush() {
				return
			}
			beat.Reset(h.cfg.Heartbeat)
		case <-beat.C:
			if !s.writeLine(nil) || !s.flush() {
				return
			}
		}
	}
}

// stream writes one event stream's lines, each within the write timeout.
type stream struct {
	h   *handler
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

// write writes e as one line. An event that cannot be encoded is logged and
// skipped rather than ending every stream that has it in its backlog.
func (s *stream) write(e supervisor.Event) bool {
	b, err := json.Marshal(NewEvent(e))
	if err != nil {
		s.h.cfg.Logger.Error("encoding event", "program", e.Program, "pid", e.PID, "err", err)
		return true
	}
	return s.writeLine(b)
}

func (s *stream) writeLine(b []byte) bool {
	s.buf.Reset()
	s.buf.Write(b)
	s.buf.WriteByte('\n')
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)) // not every ResponseWriter has deadlines
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		s.h.cfg.Logger.Debug("event stream ended", "err", err)
		return false
	}
	return true
}

// flush sends what was written, then disarms the write deadline: over
// HTTP/2 a deadline is a timer that resets the stream when it fires, even
// while nothing is being written.
func (s *stream) flush() bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout))
	if err := s.rc.Flush(); err != nil {
		s.h.cfg.Logger.Debug("event stream ended", "err", err)
		return false
	}
	_ = s.rc.SetWriteDeadline(time.Time{})
	return true
}

// inBacklog says whether e was already sent with the backlog.
func inBacklog(backlog []supervisor.Event, e supervisor.Event) bool {
	if len(backlog) == 0 || e.Time.After(backlog[0].Time) {
		return false
	}
	for _, b := range backlog {
		if b.Time.Equal(e.Time) && b.PID == e.PID && b.Program == e.Program && b.Reason == e.Reason && b.Worker == e.Worker {
			return true
		}
	}
	return false
}
