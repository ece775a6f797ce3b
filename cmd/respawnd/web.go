package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"golang.org/x/sync/errgroup"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/metrics"
)

// defaultListenAddress is where metrics and the API are served by default.
// Port 8571 lies outside the 9100-9999 range of Prometheus exporters (whose
// allocations it would otherwise collide with) and is not the port of any
// well-known service, nor one of the usual development ports.
const defaultListenAddress = ":8571"

// defaultStateDir holds the control socket.
const defaultStateDir = "/run/respawnd"

// webFlags are the flags of the HTTP listener and the control socket.
type webFlags struct {
	toolkit       *web.FlagConfig
	listenSet     bool
	telemetryPath string
	lifecycle     bool
	stateDir      string
	stateDirSet   bool
}

// addWebFlags registers the web and state flags on app; the CLI
// subcommands find the control socket through --state.dir too.
func addWebFlags(app *kingpin.Application) *webFlags {
	w := &webFlags{toolkit: kingpinflag.AddFlags(app, defaultListenAddress)}
	app.GetFlag("web.listen-address").IsSetByUser(&w.listenSet).
		Help("Addresses on which to expose metrics, the landing page and the HTTP API; repeatable. " +
			"The default port, 8571, lies outside the Prometheus exporters' 9100-9999 range and belongs to no well-known service. " +
			"Examples: `:8571` or `[::1]:8571` for http, `vsock://:8571` for vsock.")
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&w.telemetryPath)
	app.Flag("web.enable-lifecycle", "Enable reload (POST /-/reload) and program start/stop/restart over HTTP (still behind --web.config.file's authentication).").BoolVar(&w.lifecycle)
	app.Flag("state.dir", "Directory of the control socket ("+api.SocketName+", mode 0600, root only) used by respawnd status, start, stop, restart, reload and events.").
		Default(defaultStateDir).IsSetByUser(&w.stateDirSet).StringVar(&w.stateDir)
	return w
}

// servers are the HTTP listener (exporter-toolkit: TLS and basic auth from
// --web.config.file) and the control socket; either may be absent.
type servers struct {
	log  *slog.Logger
	reg  *metrics.Registry
	http *http.Server
	wf   *webFlags
	sock *api.Socket
}

// newServers sets up what the daemon serves. The control socket is created
// at once, so that a second daemon fails at start-up.
func newServers(wf *webFlags, logger *slog.Logger, o *observer, rec *metrics.Recorder, serveHTTP, serveSocket bool) (*servers, error) {
	s := &servers{log: logger, wf: wf}
	src := apiSource{o}
	if serveHTTP {
		cfg := api.Config{Source: src, Ready: o.Ready, Logger: logger}
		if wf.lifecycle {
			cfg.Controller = o
		}
		s.reg = metrics.NewRegistry(rec, metrics.NewCollector(metrics.CollectorConfig{Source: o}))
		h, err := webHandler(wf.telemetryPath, api.NewHandler(cfg), metrics.Handler(s.reg))
		if err != nil {
			return nil, err
		}
		s.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	}
	if serveSocket {
		h := api.NewHandler(api.Config{Source: src, Controller: o, Ready: o.Ready, Logger: logger})
		sock, err := api.ListenSocket(api.SocketPath(wf.stateDir), h, logger)
		if err != nil {
			return nil, err
		}
		s.sock = sock
		logger.Info("control socket listening", "path", sock.Path())
	}
	return s, nil
}

// webHandler routes the telemetry path to metrics, the API and health
// endpoints to apiH, and everything else to the landing page.
func webHandler(telemetryPath string, apiH, metricsH http.Handler) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle(telemetryPath, metricsH)
	mux.Handle("/-/", apiH)
	mux.Handle("/api/", apiH)
	if telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "respawnd",
			Description: "Keeps named programs alive and tells OOM kills apart from every other death",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: telemetryPath, Text: "Metrics"},
				{Address: api.PathPrograms, Text: "Programs", Description: "each program's state, pid, restarts, last exit and memory (JSON)"},
				{Address: api.PathEvents, Text: "Events", Description: "recent crashes and host OOM kills, newest first (JSON)"},
				{Address: api.PathHealthy, Text: "Health"},
				{Address: api.PathReady, Text: "Readiness"},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("building landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// run serves until ctx is done, then shuts both servers down and returns
// nil; a listener that cannot be opened is an error.
func (s *servers) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if s.sock != nil {
		g.Go(func() error { return s.sock.Run(gctx) })
	}
	if s.http != nil {
		// Requests, event streams included, end with ctx.
		s.http.BaseContext = func(net.Listener) context.Context { return gctx }
		errc := make(chan error, 1)
		g.Go(func() error {
			err := web.ListenAndServe(s.http, s.wf.toolkit, s.log)
			errc <- err
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("serving http: %w", err)
		})
		g.Go(func() error {
			select {
			case <-gctx.Done():
			case <-errc:
				return nil
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.http.Shutdown(sctx)
			return nil
		})
	}
	return g.Wait()
}
