package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/respawnd/respawnd/config"
	probe "github.com/respawnd/respawnd/health"
	"github.com/respawnd/respawnd/metrics"
	sdnotify "github.com/respawnd/respawnd/notify"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

// liveness wires the health checks (probe.Checker) and sd_notify
// (sdnotify.Server) into the supervisor.
type liveness struct {
	checker *probe.Checker
	server  *sdnotify.Server // nil when sd_notify is unavailable
	scan    *watch.Scanner
	cgroups *cgroupsAdapter
	rec     *metrics.Recorder
}

var (
	_ supervisor.Prober   = proberAdapter{}
	_ supervisor.Notifier = (*liveness)(nil)
)

// newLiveness builds both parts. namespace tells this respawnd's sockets
// apart from another's on the same host; it must stay the same across
// restarts of respawnd, so that adopted programs keep a NOTIFY_SOCKET that
// works.
func newLiveness(l *restart.Launcher, scan *watch.Scanner, cg *cgroupsAdapter, rec *metrics.Recorder, namespace string, logger *slog.Logger) *liveness {
	lv := &liveness{scan: scan, cgroups: cg, rec: rec}
	lv.checker = probe.New(probe.Config{
		Launcher: l,
		Logger:   logger,
		Observe: func(program string, r probe.Result, took time.Duration) {
			rec.HealthCheck(program, string(r), took)
		},
	})
	s, err := sdnotify.New(sdnotify.Config{Namespace: namespace, Logger: logger.With("component", "notify"), Rejected: rec.NotifyRejected})
	if err != nil {
		logger.Warn("sd_notify unavailable: programs with a notify section run without it", "err", err)
	} else {
		lv.server = s
	}
	return lv
}

// notifyNamespace derives the namespace of the sockets from the state
// directory (or, without one, from respawnd's pid): stable across restarts
// of the same respawnd, distinct between two of them.
func notifyNamespace(stateDir string, pid int) string {
	key := "dir:" + stateDir
	if stateDir == "" {
		key = "pid:" + strconv.Itoa(pid)
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// configure hands the available parts to the supervisor.
func (lv *liveness) configure(c *supervisor.Config) {
	c.Prober = proberAdapter{lv.checker}
	if lv.server != nil {
		c.Notifier = lv
	}
}

// run runs both until ctx is done.
func (lv *liveness) run(ctx context.Context, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = lv.checker.Run(ctx)
	}()
	if lv.server != nil {
		if err := lv.server.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("sd_notify server failed; programs' readiness and watchdog pings are no longer received", "err", err)
		}
	}
	<-done
}

// liveNames lists the programs of cfg with a health section, and those
// with a notify section.
func liveNames(cfg *config.Config) (probed, notifying []string) {
	for _, p := range cfg.Programs {
		if p.Health != nil {
			probed = append(probed, p.Name)
		}
		if p.Notify != nil {
			notifying = append(notifying, p.Name)
		}
	}
	return probed, notifying
}

// proberAdapter makes the health Checker the supervisor's Prober.
type proberAdapter struct{ c *probe.Checker }

// Probe implements supervisor.Prober.
func (a proberAdapter) Probe(program string, h config.Health, base restart.Command, notify func(supervisor.ProbeEvent)) func() {
	return a.c.Watch(program, h, base, func(ev probe.Event) {
		notify(supervisor.ProbeEvent{Unhealthy: ev.Kind == probe.Unhealthy, Failures: ev.Failures, Reason: ev.Reason})
	})
}

// Open implements supervisor.Notifier: a datagram is the program's when
// its sender is the instance's main process, a process in the instance's
// cgroup (only root puts processes there), or one below the main process
// in the process tree. The server drops (and counts) a MAINPID= naming a
// process outside the program.
func (lv *liveness) Open(program string, who func() (int, string), deliver func(supervisor.NotifyMessage)) (string, func(), error) {
	member := func(pid int) bool {
		main, cgroup := who()
		switch {
		case pid <= 0:
			return false
		case main > 0 && pid == main:
			return true
		case cgroup != "" && lv.cgroups != nil:
			if ok, err := lv.cgroups.m.Contains(pid, cgroup); err == nil && ok {
				return true
			}
		}
		return main > 0 && lv.scan != nil && lv.scan.Descends(pid, main)
	}
	addr, closeSock, err := lv.server.Open(program, member, func(m sdnotify.Message) {
		out := supervisor.NotifyMessage{
			PID: m.PID, Time: time.Now(),
			Ready: m.Ready, Reloading: m.Reloading, Stopping: m.Stopping,
			Status: m.Status, HasStatus: m.HasStatus,
			Watchdog: m.Watchdog, WatchdogTrigger: m.WatchdogTrigger, WatchdogUsec: m.WatchdogUsec,
			ExtendTimeout: m.ExtendTimeout, Errno: m.Errno, HasErrno: m.HasErrno,
		}
		// A MAINPID= outside the program was dropped (and counted) by the
		// server already.
		out.MainPID = m.MainPID
		deliver(out)
	})
	if err != nil {
		return "", nil, err
	}
	return "NOTIFY_SOCKET=" + addr, closeSock, nil
}
