package main

import (
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

// adoption is what lets `respawnd run` take back programs after its own
// restart and adopt processes it did not start: the /proc scanner, the
// pidfd watcher, the instance tags and the state file in the state
// directory.
type adoption struct {
	log      *slog.Logger
	scan     *watch.Scanner
	w        *watch.Watcher
	src      *processSource
	dir      *watch.StateDir
	tagger   *watch.Tagger
	adopt    map[string]supervisor.Instance
	lastSync time.Time
}

// newAdoption sets up adoption; the error says why it is unavailable (then
// programs are started, never adopted).
func newAdoption(procfs string, dir *watch.StateDir, logger *slog.Logger) (*adoption, error) {
	a := &adoption{log: logger, dir: dir, adopt: map[string]supervisor.Instance{}}
	var err error
	if a.scan, err = watch.New(watch.Config{ProcRoot: procfs, Logger: logger}); err != nil {
		return nil, err
	}
	bootID, err := watch.BootID(procfs)
	if err != nil {
		return nil, err
	}
	secret, err := dir.Secret()
	if err != nil {
		return nil, fmt.Errorf("instance tag secret: %w", err)
	}
	if a.tagger, err = watch.NewTagger(secret, bootID); err != nil {
		return nil, err
	}
	if a.w, err = watch.NewWatcher(watch.Config{ProcRoot: procfs, Logger: logger}); err != nil {
		return nil, err
	}
	if a.src, err = newProcessSource(a.scan, a.w, bootID, a.tagger, logger); err != nil {
		return nil, err
	}
	entries, err := dir.Load()
	if err != nil {
		// A corrupt file (watch.ErrCorruptState): the programs are still
		// found by their tags or match, or started.
		logger.Warn("state file unreadable, adopting by tag and match only", "dir", dir.Path(), "err", err)
	}
	for _, e := range entries {
		a.adopt[e.Program] = supervisor.Instance{
			Program: e.Program, PID: e.PID, StartTime: e.StartTime, BootID: e.BootID, Exe: e.Exe, UID: e.UID,
			ConfigHash: e.ConfigHash, Generation: e.Generation, Restarts: e.Restarts, Child: e.Child,
			StopSignal: syscall.Signal(e.StopSignal), StopTimeout: e.StopTimeout,
		}
	}
	logger.Info("adoption ready", "mechanism", a.w.Mechanism().String(), "state_dir", dir.Path(), "recorded_instances", len(entries))
	return a, nil
}

// configure hands the supervisor what adoption needs.
func (a *adoption) configure(c *supervisor.Config, kmsgPath string) {
	c.Processes = a.src
	c.Adopt = a.adopt
	c.SaveState = a.save
	c.Retained = func() ([]oom.Kill, error) { return oom.ReadRetained(kmsgPath) }
	c.Exiting = a.src.exiting
	tagger := a.tagger
	c.Tag = func(program string, gen uint64, configHash string) (string, error) {
		ticks, err := watch.NowTicks()
		if err != nil {
			return "", err
		}
		return tagger.Entry(watch.Tag{Program: program, Generation: gen, Ticks: ticks, Config: tagConfig(configHash)}), nil
	}
}

func (a *adoption) save(in []supervisor.Instance) error {
	out := make([]watch.StateEntry, 0, len(in))
	for _, i := range in {
		out = append(out, watch.StateEntry{
			Program: i.Program, PID: i.PID, StartTime: i.StartTime, BootID: i.BootID, Exe: i.Exe, UID: i.UID,
			ConfigHash: i.ConfigHash, Generation: i.Generation, Restarts: i.Restarts, Child: i.Child,
			StopSignal: int(i.StopSignal), StopTimeout: i.StopTimeout,
		})
	}
	// Synced at most once a second (see watch.StateDir.Write); the
	// supervisor calls save from one goroutine, so lastSync needs no lock.
	sync := time.Since(a.lastSync) >= time.Second
	if sync {
		a.lastSync = time.Now()
	}
	return a.dir.Write(out, sync)
}

// tagConfig shortens a definition hash for the instance tag: 16 hex digits
// tell definitions apart; the supervisor compares them as a prefix.
func tagConfig(hash string) string {
	if len(hash) > 16 {
		return hash[:16]
	}
	return hash
}
