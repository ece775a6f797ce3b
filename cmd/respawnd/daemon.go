package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

// daemon is respawnd's wiring: launcher, OOM sources, supervisor, metrics
// and what serves them.
type daemon struct {
	log      *slog.Logger
	launcher *restart.Launcher
	sup      *supervisor.Supervisor
	kmsg     *oom.Kmsg
	rec      *metrics.Recorder
	obs      *observer
	servers  *servers
	adopt    *adoption // nil when adoption is off (exec) or unavailable
	cgroups  *cgroupsAdapter
}

// newDaemon builds the daemon. env is the environment programs inherit.
func newDaemon(f *flags, logger *slog.Logger, env []string, onTransition func(supervisor.Status), adopt bool) *daemon {
	d := &daemon{log: logger, rec: metrics.NewRecorder(), obs: &observer{sources: map[string]bool{}}}
	if scan, err := watch.New(watch.Config{ProcRoot: f.procfs, Logger: logger.With("component", "watch")}); err != nil {
		logger.Warn("process tree memory unavailable", "err", err)
	} else {
		d.obs.scan = scan
	}
	lcfg := restart.LauncherConfig{Logger: logger.With("component", "launcher"), Subreaper: true}
	if adj := ownOOMScoreAdj(); adj != 0 {
		// respawnd is protected from the OOM killer (systemd's
		// OOMScoreAdjust=, say); its programs must not inherit that.
		zero := 0
		lcfg.ChildOOMScoreAdj = &zero
		logger.Info("protected from the oom killer; programs start with oom_score_adj 0", "oom_score_adj", adj)
	}
	d.launcher = restart.NewLauncher(lcfg)

	sources := []any{}
	k, err := oom.NewKmsg(oom.KmsgConfig{Path: f.kmsg, Logger: logger.With("component", "oom")})
	if err != nil {
		logger.Warn("oom source unavailable: kernel log", "err", err)
		sources = append(sources, "kmsg", "down")
	} else {
		d.kmsg = k
		sources = append(sources, "kmsg", "up")
	}
	d.obs.sources["kmsg"] = d.kmsg != nil
	procfs := f.procfs
	hostOOM := func() (uint64, error) { return oom.VMStatOOMKills(procfs) }
	if _, err := hostOOM(); err != nil {
		logger.Warn("oom source unavailable: vmstat", "err", err)
		hostOOM = nil
		sources = append(sources, "vmstat", "down")
	} else {
		sources = append(sources, "vmstat", "up")
	}
	d.obs.sources["vmstat"] = hostOOM != nil
	cg, cgErr := newCgroups(filepath.Join(f.sysfs, "fs", "cgroup"), logger.With("component", "cgroup"))
	if cgErr != nil {
		logger.Warn("oom source unavailable: memory cgroups (programs with memory limits run without them)", "err", cgErr)
		sources = append(sources, "cgroup", "down")
	} else {
		sources = append(sources, "cgroup", cg.mode())
	}
	d.obs.sources["cgroup"] = cg != nil
	logger.Info("oom sources", sources...)
	logger.Info("privileges", "uid", os.Geteuid(), "pid1", os.Getpid() == 1)

	scfg := supervisor.Config{
		Launcher:     launcherAdapter{d.launcher},
		Recorder:     d.rec,
		Logger:       logger.With("component", "supervisor"),
		Env:          env,
		KernelLog:    d.kmsg != nil,
		HostOOMKills: hostOOM,
		OnTransition: onTransition,
		CgroupsErr:   cgErr,
	}
	if cg != nil {
		d.cgroups = cg
		scfg.Cgroups = &trackedCgroups{cgroupsAdapter: cg, o: d.obs}
	}
	if adopt {
		a, err := newAdoption(f.procfs, f.web.stateDir, logger.With("component", "watch"))
		if err != nil {
			logger.Warn("adoption unavailable: programs are started, never taken over", "err", err)
		} else {
			d.adopt = a
			a.configure(&scfg, f.kmsg)
		}
	}
	d.sup = supervisor.New(scfg)
	d.obs.sup = d.sup
	return d
}

// serve sets up the HTTP listener and the control socket that run serves.
func (d *daemon) serve(wf *webFlags, serveHTTP, serveSocket bool) error {
	s, err := newServers(wf, d.log.With("component", "web"), d.obs, d.rec, serveHTTP, serveSocket)
	if err != nil {
		return err
	}
	d.servers = s
	return nil
}

// apply makes cfg the configuration in force and records the outcome for
// metrics and readiness.
func (d *daemon) apply(ctx context.Context, cfg *config.Config) error {
	// Named before the apply, so that the first exits of new programs are
	// counted and the last words of removed ones are not.
	d.rec.SetPrograms(programNames(cfg))
	if err := d.sup.Apply(ctx, cfg); err != nil {
		return err
	}
	d.obs.forget(cfg)
	d.obs.applied(nil, time.Now())
	return nil
}

// run runs everything until ctx is done. reload, when not nil, delivers
// requests to load the configuration again.
func (d *daemon) run(ctx context.Context, initial *config.Config, reload <-chan reloadReq) error {
	g, gctx := errgroup.WithContext(ctx)
	if d.servers != nil {
		g.Go(func() error { return d.servers.run(gctx) })
	}
	g.Go(func() error { return d.launcher.Run(gctx) })
	// The watcher reports the deaths of adopted processes, the supervisor's
	// shutdown included: it stops only after the supervisor has returned.
	wctx, stopWatch := context.WithCancel(context.Background())
	g.Go(func() error {
		defer stopWatch()
		err := d.sup.Run(gctx)
		if d.cgroups != nil {
			// Every program is stopped and its cgroup gone: the parent goes
			// too (after a kill -9 it stays, for the next respawnd).
			if rerr := d.cgroups.m.RemoveParent(); rerr != nil {
				d.log.Warn("removing the program cgroups' parent", "err", rerr)
			}
		}
		return err
	})
	if d.adopt != nil {
		g.Go(func() error { return d.adopt.w.Run(wctx) })
	} else {
		defer stopWatch()
	}
	g.Go(func() error { return watchdog(gctx, d.log) })
	if d.kmsg != nil {
		// Buffered so the kernel log reader keeps up with an OOM storm while
		// the supervisor routes reports.
		kills := make(chan oom.Kill, 256)
		g.Go(func() error {
			defer close(kills)
			return d.kmsg.Run(gctx, kills)
		})
		g.Go(func() error {
			for k := range kills {
				d.sup.OOMKill(gctx, k)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := d.apply(gctx, initial); err != nil && gctx.Err() == nil {
			return err
		}
		notify(d.log, sdReady)
		defer notify(d.log, sdStopping)
		for {
			select {
			case <-gctx.Done():
				return nil
			case req := <-reload:
				notify(d.log, sdReloading())
				cfg, err := req.load()
				if err != nil {
					notify(d.log, sdReady)
					d.log.Error("reload rejected, previous configuration stays in force", "err", err)
					d.obs.applied(err, time.Now())
					if req.reply != nil {
						req.reply <- err
					}
					continue
				}
				if err := d.apply(gctx, cfg); err != nil && gctx.Err() == nil {
					return err
				}
				notify(d.log, sdReady)
				d.log.Info("configuration reloaded", "file", cfg.File)
				if req.reply != nil {
					req.reply <- nil
				}
			}
		}
	})
	return g.Wait()
}

// runDaemon is `respawnd run`.
func runDaemon(f *flags, logger *slog.Logger) int {
	logStart(logger, "daemon")
	load := func() (*config.Config, error) {
		if f.configFile == "" {
			return &config.Config{}, nil
		}
		return config.Load(f.configFile)
	}
	cfg, err := load()
	if err != nil {
		printConfigErrors(os.Stderr, err)
		return 1
	}
	if f.configFile == "" {
		logger.Info("no configuration file given: running with no programs")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Programs inherit an ignored SIGPIPE (as systemd's IgnoreSIGPIPE=yes
	// does): should respawnd be killed, a program writing to the pipe of its
	// prefixed output gets EPIPE instead of dying with respawnd.
	signal.Ignore(syscall.SIGPIPE)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan reloadReq)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("reloading configuration", "file", f.configFile)
				select {
				case reload <- reloadReq{load: load}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	d := newDaemon(f, logger, inheritedEnv(os.Environ()), nil, true)
	d.obs.reloadC, d.obs.load = reload, load
	if err := d.serve(f.web, true, true); err != nil {
		logger.Error("respawnd failed", "err", err)
		return 1
	}
	if err := d.run(ctx, cfg, reload); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("respawnd failed", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// inheritedEnv is the minimal environment programs inherit from respawnd;
// a program's env adds to it.
func inheritedEnv(environ []string) []string {
	keep := map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true}
	var out []string
	hasPath := false
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if keep[k] || strings.HasPrefix(k, "LC_") {
			out = append(out, kv)
			hasPath = hasPath || k == "PATH"
		}
	}
	if !hasPath {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return out
}
