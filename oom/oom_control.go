package oom

import "io"

// parseOOMControl parses cgroup v1 memory.oom_control
// (Documentation/admin-guide/cgroup-v1/memory.rst): "oom_kill_disable",
// "under_oom" and, since Linux 4.13, "oom_kill". Older kernels have no
// kill counter; it then reads as 0.
func parseOOMControl(r io.Reader) (CgroupCounts, error) {
	var c CgroupCounts
	err := flatKeyed(r, "memory.oom_control", func(k string, v uint64) {
		switch k {
		case "oom_kill":
			c.OOMKill = v
		case "under_oom":
			c.UnderOOM = v != 0
		}
	})
	return c, err
}
