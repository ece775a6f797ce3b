package main

import (
	"fmt"

	"github.com/respawnd/respawnd/cgroup"
	"github.com/respawnd/respawnd/oom"
)

// newOwnOOMKills returns a reader of the oom_kill counter of the memory
// cgroup respawnd runs in: memory.events(.local) on cgroup v2,
// memory.oom_control on v1. In a container that is the container's cgroup,
// readable without privileges, so a sidecar that may not create cgroups
// still tells an OOM kill of its program from a kill -9. The counter is
// read once here to prove that it can be.
func newOwnOOMKills(procfs string) (func() (uint64, error), error) {
	self, err := cgroup.NewSelf(procfs)
	if err != nil {
		return nil, err
	}
	read := func() (uint64, error) {
		dir, err := self.Dir()
		if err != nil {
			return 0, err
		}
		c, err := oom.ReadCgroupCounts(dir, self.V2())
		if err != nil {
			return 0, fmt.Errorf("reading the oom counters of own cgroup %s: %w", dir, err)
		}
		return c.OOMKill, nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return read, nil
}
