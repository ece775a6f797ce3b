package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/postmortem"
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
	stateDir *watch.StateDir
	adopt    *adoption // nil when adoption is off (exec) or unavailable
	cgroups  *cgroupsAdapter
	health   *health
	settle   *settler
	mem      *memoryWatch
	live     *liveness
	deaths   *postmortem.Keeper // nil without a state directory
	hooks    *hook.Runner
	outputs  outputSettings
}

// daemonOpts says what a daemon does beyond supervising.
type daemonOpts struct {
	// env is the environment programs inherit.
	env []string
	// onTransition is called after every state change of a program.
	onTransition func(supervisor.Status)
	// adopt takes over instances recorded in --state.dir and records its
	// own there (respawnd run).
	adopt bool
	// keepOrphans leaves recorded instances of programs that are no longer
	// configured running (--state.orphans=keep).
	keepOrphans bool
	// serveHTTP and serveSocket open the HTTP listeners and the control
	// socket.
	serveHTTP, serveSocket bool
}

// newDaemon builds the daemon. Everything that can stop respawnd from
// running is done here, before any program is adopted or started: the state
// directory is checked, every listener bound, every source opened. An error
// means respawnd must exit having touched nothing.
func newDaemon(f *flags, logger *slog.Logger, o daemonOpts) (*daemon, error) {
	d := &daemon{log: logger, rec: metrics.NewRecorder(), obs: newObserver(), settle: newSettler(logger)}
	d.obs.procfs = f.procfs
	if o.adopt || o.serveSocket {
		sd, err := watch.OpenStateDir(f.web.stateDir)
		if err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		d.stateDir = sd
	}
	if err := d.serve(f.web, o.serveHTTP, o.serveSocket); err != nil {
		d.close()
		return nil, err
	}

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
	d.hooks = hook.New(hook.Config{Launcher: d.launcher, Logger: logger.With("component", "hook"), Outcome: d.rec.HookRun, Env: o.env})
	if o.adopt {
		k, err := newDeaths(d.stateDir, int64(f.deathsSize), f.procfs, fireHook(d.hooks), logger.With("component", "postmortem"))
		if err != nil {
			// Records are worth having, not worth refusing to run over.
			logger.Warn("death records unavailable; on_exit hooks run without one", "err", err)
			k = postmortem.New(postmortem.Config{Logger: logger.With("component", "postmortem"), Written: fireHook(d.hooks)})
		}
		d.deaths = k
		d.obs.deaths = k.Store()
	}
	d.obs.dropped = d.launcher.OutputDroppedLines

	sources := []any{}
	k, err := oom.NewKmsg(oom.KmsgConfig{Path: f.kmsg, Logger: logger.With("component", "oom")})
	if err != nil {
		logger.Warn("oom source unavailable: kernel log", "err", err)
		sources = append(sources, "kmsg", "down")
	} else {
		d.kmsg = k
		sources = append(sources, "kmsg", "up")
	}
	d.obs.setSource("kmsg", d.kmsg != nil)
	procfs := f.procfs
	hostOOM := func() (uint64, error) { return oom.VMStatOOMKills(procfs) }
	if _, err := hostOOM(); err != nil {
		logger.Warn("oom source unavailable: vmstat", "err", err)
		hostOOM = nil
		sources = append(sources, "vmstat", "down")
	} else {
		sources = append(sources, "vmstat", "up")
	}
	d.obs.setSource("vmstat", hostOOM != nil)
	// Programs that get no cgroup of their own run in respawnd's: its
	// counter settles their SIGKILLs (a sidecar's only OOM evidence).
	ownOOM, err := newOwnOOMKills(procfs)
	if err != nil {
		logger.Warn("oom source unavailable: own cgroup", "err", err)
		sources = append(sources, "own_cgroup", "down")
	} else {
		sources = append(sources, "own_cgroup", "up")
	}
	cg, cgErr := newCgroups(filepath.Join(f.sysfs, "fs", "cgroup"), logger.With("component", "cgroup"))
	if cgErr != nil {
		logger.Warn("cgroups unavailable: memory limits are not applied, and a stop waits for a program's process group only", "err", cgErr)
		sources = append(sources, "cgroup", "down")
	} else {
		sources = append(sources, "cgroup", cg.mode())
	}
	d.obs.setSource("cgroup", cg != nil)
	logger.Info("oom sources", sources...)
	logger.Info("privileges", "uid", os.Geteuid(), "pid1", os.Getpid() == 1)

	scfg := supervisor.Config{
		Launcher:     launcherAdapter{l: d.launcher, outputs: &d.outputs},
		Recorder:     d.rec,
		Logger:       logger.With("component", "supervisor"),
		Env:          o.env,
		KernelLog:    d.kmsg != nil,
		HostOOMKills: hostOOM,
		OwnOOMKills:  ownOOM,
		OnTransition: func(st supervisor.Status) {
			d.settle.changed()
			if o.onTransition != nil {
				o.onTransition(st)
			}
		},
		CgroupsErr:  cgErr,
		KeepOrphans: o.keepOrphans,
	}
	if d.deaths != nil {
		scfg.Deaths = deathsAdapter{d.deaths}
	}
	if cg != nil {
		d.cgroups = cg
		t := &trackedCgroups{cgroupsAdapter: cg, o: d.obs}
		if d.deaths != nil {
			t.deaths = deathsAdapter{d.deaths}
		}
		scfg.Cgroups = t
	}
	if o.adopt {
		a, err := newAdoption(f.procfs, d.stateDir, logger.With("component", "watch"))
		if err != nil {
			logger.Warn("adoption unavailable: programs are started, never taken over", "err", err)
		} else {
			d.adopt = a
			if cg != nil {
				a.src.member = cg.m.Contains
			}
			a.configure(&scfg, f.kmsg)
		}
	}
	d.mem = newMemoryWatch(f.procfs, d.obs.scan, logger.With("component", "memory"))
	d.mem.configure(&scfg)
	stateDir := ""
	if d.stateDir != nil {
		stateDir = d.stateDir.Path()
	}
	d.live = newLiveness(d.launcher, d.obs.scan, d.cgroups, d.rec, notifyNamespace(stateDir, os.Getpid()), logger)
	d.live.configure(&scfg)
	d.sup = supervisor.New(scfg)
	d.obs.sup = d.sup
	d.health = newHealth(d.sup, logger)
	d.obs.health = d.health
	return d, nil
}

// serve binds the HTTP listeners and the control socket that run serves.
func (d *daemon) serve(wf *webFlags, serveHTTP, serveSocket bool) error {
	s, err := newServers(wf, d.log.With("component", "web"), d.obs, d.rec, d.settle.scraped, serveHTTP, serveSocket)
	if err != nil {
		return err
	}
	d.servers = s
	return nil
}

// close releases what newDaemon opened, for a daemon that never ran.
func (d *daemon) close() {
	if d.servers != nil {
		d.servers.close()
	}
	if d.kmsg != nil {
		_ = d.kmsg.Close()
	}
	if d.stateDir != nil {
		_ = d.stateDir.Close()
	}
}

// apply makes cfg the configuration in force and records the outcome for
// metrics and readiness.
func (d *daemon) apply(ctx context.Context, cfg *config.Config) error {
	// Named before the apply, so that the first exits of new programs are
	// counted and the last words of removed ones are not.
	d.rec.SetPrograms(programNames(cfg))
	d.rec.SetLiveness(liveNames(cfg))
	d.outputs.set(cfg)
	if err := d.sup.Apply(ctx, cfg); err != nil {
		return err
	}
	// After the apply: a rejected configuration changes no hook. A death
	// in between fires its hook once its record is written, later still.
	d.hooks.SetAll(hook.Specs(cfg))
	if d.deaths != nil {
		d.deaths.Keep(programNames(cfg))
	}
	d.obs.forget(cfg)
	d.obs.applied(nil, time.Now())
	return nil
}

// run runs everything until ctx is done, then stops every program, waits
// until each is down and every descendant reaped, and returns. reload,
// when not nil, delivers requests to load the configuration again. Nothing
// that fails while running stops the programs: a failed source or server
// is logged and the rest goes on.
func (d *daemon) run(ctx context.Context, initial *config.Config, reload <-chan reloadReq) {
	var wg sync.WaitGroup
	goLog := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				d.log.Error(what+" failed; respawnd goes on without it", "err", err)
			}
		}()
	}
	if d.servers != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.servers.run(ctx)
		}()
	}
	// The reaper and the watcher outlive the supervisor: programs' stops
	// must be seen and their descendants reaped until the very end.
	lateCtx, stopLate := context.WithCancel(context.Background())
	var late sync.WaitGroup
	late.Add(1)
	go func() {
		defer late.Done()
		if err := d.launcher.Run(lateCtx); err != nil {
			d.log.Error("reaping orphans failed; orphaned descendants are left to init", "err", err)
		}
	}()
	if d.cgroups != nil && d.cgroups.watcher != nil {
		late.Add(1)
		go func() {
			defer late.Done()
			if err := d.cgroups.watcher.Run(lateCtx); err != nil {
				d.log.Error("watching cgroup oom counters failed; worker oom kills are seen in the kernel log only", "err", err)
			}
		}()
	}
	late.Go(func() { d.mem.run(lateCtx, d.log) })
	if d.deaths != nil {
		// Records of the last stops are written before respawnd exits.
		late.Go(func() { _ = d.deaths.Run(lateCtx) })
	}
	late.Go(func() { _ = d.hooks.Run(lateCtx) })
	late.Go(func() { d.live.run(lateCtx, d.log) })
	if d.adopt != nil {
		late.Add(1)
		go func() {
			defer late.Done()
			if err := d.adopt.w.Run(lateCtx); err != nil {
				d.log.Error("watching adopted processes failed", "err", err)
			}
		}()
	}
	supDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(supDone)
		_ = d.sup.Run(ctx) // returns nil once every program is down
		// What escaped every program's process group without a cgroup to
		// catch it was reparented to respawnd: it goes too, before exit.
		grace := maxStopTimeout(d.obs.config()) + 5*time.Second
		dctx, cancel := context.WithTimeout(context.Background(), 2*grace)
		if err := d.launcher.DrainOrphans(dctx, grace); err != nil {
			d.log.Warn("ending orphaned descendants", "err", err)
		}
		cancel()
		if d.cgroups != nil {
			// Every program is stopped and its cgroup gone: the parent goes
			// too (after a kill -9 it stays, for the next respawnd).
			if err := d.cgroups.m.RemoveParent(); err != nil {
				d.log.Warn("removing the program cgroups' parent", "err", err)
			}
		}
	}()
	goLog("checking the supervisor's health", func() error { return d.health.run(ctx) })
	goLog("the systemd watchdog", func() error { return watchdog(ctx, d.log, d.health) })
	if d.kmsg != nil {
		// Buffered so the kernel log reader keeps up with an OOM storm while
		// the supervisor routes reports.
		kills := make(chan oom.Kill, 256)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(kills)
			if err := d.kmsg.Run(ctx, kills); err != nil {
				// Attribution goes on from the cgroup and vmstat counters.
				d.log.Error("oom source failed: kernel log; attribution goes on without it", "err", err)
				d.obs.setSource("kmsg", false)
				d.sup.SetKernelLog(false)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range kills {
				d.sup.OOMKill(ctx, k)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.configLoop(ctx, initial, reload)
	}()
	<-supDone
	wg.Wait()
	stopLate()
	late.Wait()
	d.settle.stop()
}

// configLoop applies the initial configuration, then every reload.
func (d *daemon) configLoop(ctx context.Context, initial *config.Config, reload <-chan reloadReq) {
	d.obs.setConfig(initial)
	if err := d.apply(ctx, initial); err != nil {
		if ctx.Err() != nil {
			return
		}
		d.log.Error("applying the configuration failed", "err", err)
		d.obs.applied(err, time.Now())
	} else {
		notify(d.log, sdReady)
	}
	defer notify(d.log, sdStopping)
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-reload:
			notify(d.log, sdReloading())
			cfg, err := req.load()
			if err == nil {
				if err = d.apply(ctx, cfg); err != nil && ctx.Err() != nil {
					return
				}
			}
			notify(d.log, sdReady)
			if err != nil {
				// Logged once the metrics say so, as every line is.
				d.obs.applied(err, time.Now())
				d.log.Error("reload rejected, previous configuration stays in force", "err", err)
			} else {
				d.obs.setConfig(cfg)
				d.log.Info("configuration reloaded", "file", cfg.File)
			}
			if req.reply != nil {
				req.reply <- err
			}
		}
	}
}

// maxStopTimeout is the longest stop timeout of cfg's programs.
func maxStopTimeout(cfg *config.Config) time.Duration {
	var m time.Duration
	if cfg != nil {
		for _, p := range cfg.Programs {
			m = max(m, p.Stop.Timeout)
		}
	}
	return m
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

	d, err := newDaemon(f, logger, daemonOpts{
		env:         inheritedEnv(os.Environ()),
		adopt:       true,
		keepOrphans: f.keepOrphans,
		serveHTTP:   true,
		serveSocket: true,
	})
	if err != nil {
		logger.Error("respawnd failed to start; no program was adopted, started or stopped", "err", err)
		return 1
	}
	d.obs.reloadC, d.obs.load = reload, load
	d.run(ctx, cfg, reload)
	logger.Info("stopped")
	return 0
}

// inheritedEnv is the minimal environment programs inherit from respawnd;
// a program's env adds to it.
func inheritedEnv(environ []string) []string {
	keep := map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true}
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
