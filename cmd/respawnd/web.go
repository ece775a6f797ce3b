package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"golang.org/x/net/netutil"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/metrics"
)

// defaultListenAddress is where metrics and the API are served by default.
// Port 8571 lies outside the 9100-9999 range of Prometheus exporters (whose
// allocations it would otherwise collide with) and is not the port of any
// well-known service, nor one of the usual development ports.
const defaultListenAddress = ":8571"

// maxConnections caps the open HTTP connections of each listener.
const maxConnections = 512

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

// servers are the HTTP listeners (exporter-toolkit: TLS and basic auth
// from --web.config.file) and the control socket; either may be absent.
// Every listener is bound when servers are made, before respawnd adopts or
// starts anything: a respawnd that cannot serve exits having touched no
// program.
type servers struct {
	log       *slog.Logger
	reg       *metrics.Registry
	http      *http.Server
	listeners []net.Listener
	wf        *webFlags
	sock      *api.Socket
}

// newServers binds what the daemon serves.
//
// afterScrape, if not nil, is called when a scrape of the metrics has been
// served.
func newServers(wf *webFlags, logger *slog.Logger, o *observer, rec *metrics.Recorder, afterScrape func(), serveHTTP, serveSocket bool) (*servers, error) {
	s := &servers{log: logger, wf: wf}
	src := apiSource{o}
	if serveHTTP {
		if err := validateWebConfig(wf); err != nil {
			return nil, err
		}
		cfg := api.Config{Source: src, Ready: o.Ready, Logger: logger}
		if wf.lifecycle {
			cfg.Controller = o
		}
		s.reg = metrics.NewRegistry(rec, metrics.NewCollector(metrics.CollectorConfig{Source: o}))
		mh := metrics.Handler(s.reg)
		if afterScrape != nil {
			inner := mh
			mh = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inner.ServeHTTP(w, r)
				afterScrape()
			})
		}
		h, err := webHandler(wf.telemetryPath, api.NewHandler(cfg), mh)
		if err != nil {
			return nil, err
		}
		// The timeouts protect /metrics and the landing page from slow
		// clients; the API handler lifts them for a request it has read
		// and sets its own per-write deadlines, so event streams and slow
		// reloads survive.
		s.http = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		}
		if s.listeners, err = listen(wf); err != nil {
			return nil, err
		}
		for i, l := range s.listeners {
			// Each connection costs a goroutine, buffers and a descriptor:
			// no client gets to open them without bound.
			s.listeners[i] = netutil.LimitListener(l, maxConnections)
		}
	}
	if serveSocket {
		h := api.NewHandler(api.Config{Source: src, Controller: o, Ready: o.Ready, Logger: logger})
		sock, err := api.ListenSocket(api.SocketPath(wf.stateDir), h, logger)
		if err != nil {
			s.close()
			return nil, err
		}
		s.sock = sock
		logger.Info("control socket listening", "path", sock.Path())
	}
	return s, nil
}

// validateWebConfig checks --web.config.file at start-up, so that a broken
// TLS or auth setting stops respawnd before it adopts or starts anything,
// not when the first connection comes.
func validateWebConfig(wf *webFlags) error {
	if wf.toolkit.WebConfigFile == nil || *wf.toolkit.WebConfigFile == "" {
		return nil
	}
	if err := web.Validate(*wf.toolkit.WebConfigFile); err != nil {
		return fmt.Errorf("web config %s: %w", *wf.toolkit.WebConfigFile, err)
	}
	return nil
}

// listen binds every --web.listen-address (tcp, or vsock://:PORT), or takes
// systemd's socket-activated listeners with --web.systemd-socket.
func listen(wf *webFlags) ([]net.Listener, error) {
	if sd := wf.toolkit.WebSystemdSocket; sd != nil && *sd {
		ls, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("systemd socket activation: %w", err)
		}
		if len(ls) == 0 {
			return nil, errors.New("systemd socket activation: no sockets passed")
		}
		return ls, nil
	}
	var ls []net.Listener
	for _, addr := range *wf.toolkit.WebListenAddresses {
		var l net.Listener
		var err error
		if strings.HasPrefix(addr, "vsock://") {
			var port uint64
			u, perr := url.Parse(addr)
			if perr == nil {
				_, p, serr := net.SplitHostPort(u.Host)
				perr = serr
				if perr == nil {
					port, perr = strconv.ParseUint(p, 10, 32)
				}
			}
			if perr != nil {
				err = fmt.Errorf("bad vsock address: %w", perr)
			} else {
				l, err = vsock.Listen(uint32(port), nil)
			}
		} else {
			l, err = net.Listen("tcp", addr)
		}
		if err != nil {
			for _, o := range ls {
				_ = o.Close()
			}
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// close releases what newServers bound, for a daemon that never ran.
func (s *servers) close() {
	for _, l := range s.listeners {
		_ = l.Close()
	}
	if s.sock != nil {
		_ = s.sock.Close()
	}
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
				{Address: api.PathEvents, Text: "Events", Description: "recent crashes and host OOM kills, newest first (JSON; ?program=NAME for one program)"},
				{Address: api.PathDeaths, Text: "Deaths", Description: "death records, newest first: reason, OOM report, memory at death, last output (JSON; " + api.PathPrograms + "/NAME" + api.SuffixDeaths + " for one program, " + api.PathDeaths + "/ID for one record)"},
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

// run serves until ctx is done, then shuts the servers down and returns.
// A server that fails while running is logged, not fatal: programs go on
// being supervised without their metrics or API.
func (s *servers) run(ctx context.Context) {
	var wg sync.WaitGroup
	if s.sock != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.sock.Run(ctx); err != nil {
				s.log.Error("control socket failed; respawnd goes on without it", "err", err)
			}
		}()
	}
	if s.http != nil {
		// Requests, event streams included, end with ctx.
		s.http.BaseContext = func(net.Listener) context.Context { return ctx }
		errc := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := web.ServeMultiple(s.listeners, s.http, s.wf.toolkit, s.log)
			errc <- err
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("serving http failed; respawnd goes on without metrics and API", "err", err)
			}
		}()
		select {
		case <-ctx.Done():
		case <-errc:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
}
