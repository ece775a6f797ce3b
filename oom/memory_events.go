package oom

import "io"

// parseMemoryEvents parses cgroup v2 memory.events or memory.events.local
// (Documentation/admin-guide/cgroup-v2.rst): "low", "high", "max", "oom",
// "oom_kill" (Linux 4.13+), "oom_group_kill" (5.18+), "sock_throttled" …
// Unknown keys are ignored and missing ones stay 0.
func parseMemoryEvents(r io.Reader) (CgroupCounts, error) {
	var c CgroupCounts
	err := flatKeyed(r, "memory.events", func(k string, v uint64) {
		switch k {
		case "oom":
			c.OOM = v
		case "oom_kill":
			c.OOMKill = v
		case "oom_group_kill":
			c.OOMGroupKill = v
		}
	})
	return c, err
}
