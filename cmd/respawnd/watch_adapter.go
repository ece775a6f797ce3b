package main

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

var (
	_ supervisor.ProcessSource = (*processSource)(nil)
	_ supervisor.Process       = watchedProc{}
)

// processSource lets the supervisor find and watch processes respawnd did
// not start.
type processSource struct {
	scan *watch.Scanner
	w    *watch.Watcher
	boot time.Time
}

func newProcessSource(scan *watch.Scanner, w *watch.Watcher) (*processSource, error) {
	boot, err := scan.BootTime()
	if err != nil {
		return nil, fmt.Errorf("reading boot time: %w", err)
	}
	return &processSource{scan: scan, w: w, boot: boot}, nil
}

func (s *processSource) Find(m config.Match) ([]supervisor.Found, error) {
	re, err := m.CmdlineRegexp()
	if err != nil {
		return nil, err
	}
	ps, err := s.scan.Match(watch.Matcher{Comm: m.Comm, Exe: m.Exe, Cmdline: re, Pidfile: m.Pidfile, User: m.User})
	if err != nil {
		return nil, err
	}
	out := make([]supervisor.Found, 0, len(ps))
	for _, p := range ps {
		out = append(out, supervisor.Found{PID: p.Identity.PID, StartTime: p.Identity.StartTime, Started: s.Started(p.Identity.StartTime)})
	}
	return out, nil
}

func (s *processSource) FindTagged(entry string) ([]supervisor.Found, error) {
	ps, err := s.scan.Match(watch.Matcher{Env: entry})
	if err != nil {
		return nil, err
	}
	var out []supervisor.Found
	for _, p := range ps {
		// respawnd starts every program as the leader of its own session and
		// group; the processes a program forks inherit the tag but not that.
		if p.PGID != p.Identity.PID {
			continue
		}
		out = append(out, supervisor.Found{PID: p.Identity.PID, StartTime: p.Identity.StartTime, Started: s.Started(p.Identity.StartTime)})
	}
	return out, nil
}

func (s *processSource) Watch(pid int, startTime uint64, group bool) (supervisor.Process, error) {
	p, err := s.w.Watch(watch.Identity{PID: pid, StartTime: startTime})
	if err != nil {
		return nil, err
	}
	return watchedProc{Proc: p, group: group}, nil
}

func (s *processSource) StartTime(pid int) (uint64, error) {
	id, err := s.scan.Identify(pid)
	return id.StartTime, err
}

func (s *processSource) Started(ticks uint64) time.Time { return watch.TicksToTime(s.boot, ticks) }

// watchedProc is an adopted process as the supervisor sees it.
type watchedProc struct {
	*watch.Proc
	// group is set when the process leads its own process group (respawnd
	// started it in an earlier life, with setsid), so stop signals reach
	// the whole group as they would for a child.
	group bool
}

func (p watchedProc) Exit() restart.ExitStatus {
	e := p.Proc.Exit()
	if !e.Known {
		return restart.ExitStatus{Time: e.Time, Code: -1, Unknown: true}
	}
	return restart.ExitStatus{Time: e.Time, Code: e.Code, Signaled: e.Signaled, Signal: e.Signal, Core: e.Core}
}

func (p watchedProc) Signal(sig syscall.Signal) error {
	// The pidfd signal goes first: it fails once the leader is gone, so the
	// group signal after it cannot reach a reused process group id.
	if err := p.Proc.Signal(sig); err != nil {
		if errors.Is(err, watch.ErrNotFound) {
			return fmt.Errorf("%w: %w", restart.ErrProcessDone, err)
		}
		return err
	}
	if p.group {
		if err := unix.Kill(-p.PID(), sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling process group %d: %w", p.PID(), err)
		}
	}
	return nil
}

// adoption is what lets `respawnd run` take back programs after its own
// restart and adopt processes it did not start: the /proc scanner, the
// pidfd watcher and the state file in the state directory.
type adoption struct {
	log      *slog.Logger
	scan     *watch.Scanner
	w        *watch.Watcher
	src      *processSource
	stateDir string
	adopt    map[string]supervisor.Instance
	lastSync time.Time
}

// newAdoption sets up adoption; the error says why it is unavailable (then
// programs are started, never adopted).
func newAdoption(procfs, stateDir string, logger *slog.Logger) (*adoption, error) {
	a := &adoption{log: logger, stateDir: stateDir, adopt: map[string]supervisor.Instance{}}
	var err error
	if a.scan, err = watch.New(watch.Config{ProcRoot: procfs, Logger: logger}); err != nil {
		return nil, err
	}
	if a.w, err = watch.NewWatcher(watch.Config{ProcRoot: procfs, Logger: logger}); err != nil {
		return nil, err
	}
	if a.src, err = newProcessSource(a.scan, a.w); err != nil {
		return nil, err
	}
	entries, err := watch.LoadState(stateDir)
	if err != nil {
		// A corrupt file (watch.ErrCorruptState) or an unreadable one: the
		// programs are still adopted by match, or started.
		logger.Warn("state file unreadable, adopting by match only", "dir", stateDir, "err", err)
	}
	for _, e := range entries {
		a.adopt[e.Program] = supervisor.Instance{Program: e.Program, PID: e.PID, StartTime: e.StartTime, ConfigHash: e.ConfigHash, Generation: e.Generation, Restarts: e.Restarts, Child: e.Child}
	}
	logger.Info("adoption ready", "mechanism", a.w.Mechanism().String(), "state_dir", stateDir, "recorded_instances", len(entries))
	return a, nil
}

// configure hands the supervisor what adoption needs.
func (a *adoption) configure(c *supervisor.Config, kmsgPath string) {
	c.Processes = a.src
	c.Adopt = a.adopt
	c.Tag = a.stateDir
	c.SaveState = a.save
	c.Retained = func() ([]oom.Kill, error) { return oom.ReadRetained(kmsgPath) }
}

func (a *adoption) save(in []supervisor.Instance) error {
	out := make([]watch.StateEntry, 0, len(in))
	for _, i := range in {
		out = append(out, watch.StateEntry{Program: i.Program, PID: i.PID, StartTime: i.StartTime, ConfigHash: i.ConfigHash, Generation: i.Generation, Restarts: i.Restarts, Child: i.Child})
	}
	// Synced at most once a second (see watch.WriteState); the supervisor
	// calls save from one goroutine, so lastSync needs no lock.
	sync := time.Since(a.lastSync) >= time.Second
	if sync {
		a.lastSync = time.Now()
	}
	return watch.WriteState(a.stateDir, out, sync)
}
