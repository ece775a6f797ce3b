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

	"golang.org/x/sync/errgroup"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
)

// daemon is respawnd's wiring: launcher, OOM sources and supervisor.
type daemon struct {
	log      *slog.Logger
	launcher *restart.Launcher
	sup      *supervisor.Supervisor
	kmsg     *oom.Kmsg
}

// newDaemon builds the daemon. env is the environment programs inherit.
func newDaemon(f *flags, logger *slog.Logger, env []string, onTransition func(supervisor.Status)) *daemon {
	d := &daemon{log: logger}
	d.launcher = restart.NewLauncher(restart.LauncherConfig{Logger: logger.With("component", "launcher"), Subreaper: true})

	sources := []any{}
	k, err := oom.NewKmsg(oom.KmsgConfig{Path: f.kmsg, Logger: logger.With("component", "oom")})
	if err != nil {
		logger.Warn("oom source unavailable: kernel log", "err", err)
		sources = append(sources, "kmsg", "down")
	} else {
		d.kmsg = k
		sources = append(sources, "kmsg", "up")
	}
	procfs := f.procfs
	hostOOM := func() (uint64, error) { return oom.VMStatOOMKills(procfs) }
	if _, err := hostOOM(); err != nil {
		logger.Warn("oom source unavailable: vmstat", "err", err)
		hostOOM = nil
		sources = append(sources, "vmstat", "down")
	} else {
		sources = append(sources, "vmstat", "up")
	}
	cg, cgErr := newCgroups(filepath.Join(f.sysfs, "fs", "cgroup"), logger.With("component", "cgroup"))
	if cgErr != nil {
		logger.Warn("oom source unavailable: memory cgroups (programs with memory limits run without them)", "err", cgErr)
		sources = append(sources, "cgroup", "down")
	} else {
		sources = append(sources, "cgroup", cg.mode())
	}
	logger.Info("oom sources", sources...)
	logger.Info("privileges", "uid", os.Geteuid(), "pid1", os.Getpid() == 1)

	scfg := supervisor.Config{
		Launcher:     launcherAdapter{d.launcher},
		Recorder:     nil,
		Logger:       logger.With("component", "supervisor"),
		Env:          env,
		KernelLog:    d.kmsg != nil,
		HostOOMKills: hostOOM,
		OnTransition: onTransition,
		CgroupsErr:   cgErr,
	}
	if cg != nil {
		scfg.Cgroups = cg
	}
	d.sup = supervisor.New(scfg)
	return d
}

// run runs everything until ctx is done. reload, when not nil, delivers a
// freshly loaded configuration (or the reason it could not be loaded).
func (d *daemon) run(ctx context.Context, initial *config.Config, reload <-chan func() (*config.Config, error)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.launcher.Run(gctx) })
	g.Go(func() error { return d.sup.Run(gctx) })
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
		if err := d.sup.Apply(gctx, initial); err != nil && gctx.Err() == nil {
			return err
		}
		for {
			select {
			case <-gctx.Done():
				return nil
			case load := <-reload:
				cfg, err := load()
				if err != nil {
					d.log.Error("reload rejected, previous configuration stays in force", "err", err)
					continue
				}
				if err := d.sup.Apply(gctx, cfg); err != nil && gctx.Err() == nil {
					return err
				}
				d.log.Info("configuration reloaded", "file", cfg.File)
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

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan func() (*config.Config, error))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("reloading configuration", "file", f.configFile)
				select {
				case reload <- load:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	d := newDaemon(f, logger, inheritedEnv(os.Environ()), nil)
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
