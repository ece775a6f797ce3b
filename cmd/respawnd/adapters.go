package main

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/respawnd/respawnd/cgroup"
	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
)

var (
	_ supervisor.Launcher = launcherAdapter{}
	_ supervisor.Process  = (*restart.Process)(nil)
	_ supervisor.Cgroups  = (*cgroupsAdapter)(nil)
	_ supervisor.Group    = groupAdapter{}
)

// launcherAdapter lets the supervisor use the restart launcher, adding
// the output settings the supervisor does not pass on.
type launcherAdapter struct {
	l       *restart.Launcher
	outputs *outputSettings
}

// outputSettings holds the output section of every configured program,
// replaced whole at each configuration applied.
type outputSettings struct {
	m atomic.Pointer[map[string]config.Output]
}

// set records the output sections of cfg's programs.
func (o *outputSettings) set(cfg *config.Config) {
	m := make(map[string]config.Output, len(cfg.Programs))
	for _, p := range cfg.Programs {
		m[p.Name] = p.Output
	}
	o.m.Store(&m)
}

// apply adds the rotation and time stamp settings of cmd's program to cmd,
// those of the file cmd writes to only.
func (o *outputSettings) apply(cmd *restart.Command) {
	m := o.m.Load()
	if m == nil {
		return
	}
	out, ok := (*m)[cmd.Name]
	if !ok {
		return
	}
	cmd.OutputTimestamps = out.Timestamps
	if cmd.OutputFile != "" && cmd.OutputFile == out.File {
		cmd.OutputMaxSize, cmd.OutputMaxFiles = out.MaxSize, out.MaxFiles
	}
}

func (a launcherAdapter) Start(cmd restart.Command) (supervisor.Process, error) {
	if a.outputs != nil {
		a.outputs.apply(&cmd)
	}
	p, err := a.l.Start(cmd)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// cgroupsAdapter lets the supervisor create memory cgroups and read their
// OOM counters.
type cgroupsAdapter struct {
	m   *cgroup.Manager
	log *slog.Logger
	// watcher watches every program cgroup's OOM counters; nil when it
	// could not be made (then the kernel log alone sees worker kills).
	watcher *oom.CgroupWatcher
}

func newCgroups(root string, logger *slog.Logger) (*cgroupsAdapter, error) {
	m, err := cgroup.New(cgroup.Config{Root: root, Logger: logger})
	if err != nil {
		return nil, err
	}
	a := &cgroupsAdapter{m: m, log: logger}
	if a.watcher, err = oom.NewCgroupWatcher(m.V2(), logger); err != nil {
		logger.Warn("cgroup oom counters not watched: worker oom kills are seen in the kernel log only", "err", err)
	}
	return a, nil
}

func (a *cgroupsAdapter) mode() string {
	if a.m.V2() {
		return "v2"
	}
	return "v1"
}

func (a *cgroupsAdapter) Create(program string, l supervisor.Limits) (supervisor.Group, error) {
	g, err := a.m.Create(program, cgroup.Limits{Max: l.Max, High: l.High, SwapMax: l.SwapMax})
	if err != nil {
		return nil, err
	}
	ga := groupAdapter{Group: g, v2: a.m.V2(), watcher: a.watcher}
	if !ga.v2 {
		// Where respawnd's forking thread returns after a start (cgroup v1).
		if own, err := a.m.OwnDir(); err == nil {
			ga.leave = []string{own}
		}
	}
	for _, w := range g.Warnings() {
		a.log.Warn("memory limit not applied", "program", program, "reason", w)
	}
	return ga, nil
}

type groupAdapter struct {
	*cgroup.Group
	v2      bool
	leave   []string
	watcher *oom.CgroupWatcher
}

func (g groupAdapter) Leave() []string { return g.leave }

func (g groupAdapter) Update(l supervisor.Limits) error {
	return g.Group.Update(cgroup.Limits{Max: l.Max, High: l.High, SwapMax: l.SwapMax})
}

func (g groupAdapter) Watch(out chan oom.CgroupCounts) (func(), error) {
	if g.watcher == nil {
		return nil, errors.New("no cgroup oom watcher")
	}
	return g.watcher.Add(g.Dir(), out)
}

func (g groupAdapter) OOMKills() (uint64, error) {
	c, err := oom.ReadCgroupCounts(g.Dir(), g.v2)
	return c.OOMKill, err
}
