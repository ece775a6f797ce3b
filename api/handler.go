package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"syscall"

	"github.com/respawnd/respawnd/supervisor"
)

// Source is what the API reads. Its methods must be safe for concurrent use.
type Source interface {
	// Programs returns every program's status, sorted by name.
	Programs() []Program
	// Events returns the recent events, newest first.
	Events() []supervisor.Event
	// Subscribe returns a channel of new events and a func that ends the
	// subscription (the shape of supervisor.Supervisor.Subscribe).
	Subscribe() (<-chan supervisor.Event, func())
}

// Controller carries out operator actions. *supervisor.Supervisor has the
// Control method; the daemon adds Reload.
type Controller interface {
	Control(ctx context.Context, name string, a supervisor.Action, sig syscall.Signal) error
	// Reload loads the configuration file again and applies it; the error
	// says why it was rejected.
	Reload(ctx context.Context) error
}

// Config configures the API handler. Source is required.
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
}

// Paths of the endpoints, for links and clients.
const (
	PathHealthy  = "/-/healthy"
	PathReady    = "/-/ready"
	PathReload   = "/-/reload"
	PathPrograms = "/api/v1/programs"
	PathEvents   = "/api/v1/events"
)

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
//	GET  /api/v1/events[?follow=true]      EventsResponse, or a stream of Event lines
//
// The handler is safe for concurrent use.
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthy, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "respawnd is healthy.\n")
	})
	mux.HandleFunc("GET "+PathReady, h.ready)
	mux.HandleFunc("POST "+PathReload, h.reload)
	mux.HandleFunc("PUT "+PathReload, h.reload)
	mux.HandleFunc("GET "+PathPrograms, h.programs)
	mux.HandleFunc("GET "+PathPrograms+"/{name}", h.program)
	mux.HandleFunc("POST "+PathPrograms+"/{name}/{action}", h.control)
	mux.HandleFunc("GET "+PathEvents, h.events)
	return mux
}

type handler struct{ cfg Config }

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, s)
}

func (h *handler) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.cfg.Logger.Debug("writing api response", "err", err)
	}
}

func (h *handler) writeError(w http.ResponseWriter, code int, msg string) {
	h.writeJSON(w, code, ErrorResponse{Error: msg})
}

// ready answers 200 once the daemon is ready and 503 before, as Prometheus
// does for /-/ready.
func (h *handler) ready(w http.ResponseWriter, _ *http.Request) {
	if h.cfg.Ready != nil && !h.cfg.Ready() {
		writeText(w, http.StatusServiceUnavailable, "respawnd is not ready.\n")
		return
	}
	writeText(w, http.StatusOK, "respawnd is ready.\n")
}

// reload follows Prometheus: 403 unless the lifecycle API is enabled; and
// blackbox_exporter: the reason of a failed reload in a 500.
func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Controller == nil {
		writeText(w, http.StatusForbidden, "Lifecycle API is not enabled.\n")
		return
	}
	if err := h.cfg.Controller.Reload(r.Context()); err != nil {
		writeText(w, http.StatusInternalServerError, "failed to reload config: "+err.Error()+"\n")
		return
	}
	writeText(w, http.StatusOK, "configuration reloaded\n")
}

func (h *handler) programs(w http.ResponseWriter, _ *http.Request) {
	ps := h.cfg.Source.Programs()
	if ps == nil {
		ps = []Program{}
	}
	h.writeJSON(w, http.StatusOK, ProgramsResponse{Programs: ps})
}

func (h *handler) program(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ps := h.cfg.Source.Programs()
	i := slices.IndexFunc(ps, func(p Program) bool { return p.Name == name })
	if i < 0 {
		h.writeError(w, http.StatusNotFound, "unknown program "+strconv.Quote(name))
		return
	}
	h.writeJSON(w, http.StatusOK, ps[i])
}

func (h *handler) control(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Controller == nil {
		h.writeError(w, http.StatusForbidden, "lifecycle API is not enabled")
		return
	}
	name, action := r.PathValue("name"), r.PathValue("action")
	a, ok := actions[action]
	if !ok {
		h.writeError(w, http.StatusNotFound, "unknown action "+strconv.Quote(action)+" (want start, stop or restart)")
		return
	}
	if err := h.cfg.Controller.Control(r.Context(), name, a, 0); err != nil {
		if errors.Is(err, supervisor.ErrUnknownProgram) {
			h.writeError(w, http.StatusNotFound, "unknown program "+strconv.Quote(name))
			return
		}
		h.writeError(w, http.StatusInternalServerError, action+" "+name+": "+err.Error())
		return
	}
	h.writeJSON(w, http.StatusOK, ControlResponse{Program: name, Action: action})
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	if !follow {
		evs := h.cfg.Source.Events()
		out := make([]Event, len(evs))
		for i, e := range evs {
			out[i] = NewEvent(e)
		}
		h.writeJSON(w, http.StatusOK, EventsResponse{Events: out})
		return
	}
	// Subscribe before listing, so that nothing falls between the two; an
	// event in both is sent once.
	c, cancel := h.cfg.Source.Subscribe()
	defer cancel()
	backlog := h.cfg.Source.Events()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	for i := len(backlog) - 1; i >= 0; i-- {
		if err := enc.Encode(NewEvent(backlog[i])); err != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-c:
			if !ok {
				return
			}
			if inBacklog(backlog, e) {
				continue
			}
			if err := enc.Encode(NewEvent(e)); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
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
