package main

import (
	"log/slog"

	"github.com/respawnd/respawnd/cgroup"
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

// launcherAdapter lets the supervisor use the restart launcher.
type launcherAdapter struct{ l *restart.Launcher }

func (a launcherAdapter) Start(cmd restart.Command) (supervisor.Process, error) {
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
}

func newCgroups(root string, logger *slog.Logger) (*cgroupsAdapter, error) {
	m, err := cgroup.New(cgroup.Config{Root: root, Logger: logger})
	if err != nil {
		return nil, err
	}
	return &cgroupsAdapter{m: m, log: logger}, nil
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
	return groupAdapter{Group: g, v2: a.m.V2()}, nil
}

type groupAdapter struct {
	*cgroup.Group
	v2 bool
}

func (g groupAdapter) OOMKills() (uint64, error) {
	c, err := oom.ReadCgroupCounts(g.Dir(), g.v2)
	return c.OOMKill, err
}
