package oom

import "time"

// Kill is one OOM kill reported by the kernel. Fields the evidence did not
// carry are zero or nil and omitted from JSON. PID is always positive.
type Kill struct {
	// Time is the wall-clock time of the report, when known: taken from the
	// text (dmesg -T, journal, syslog) or, for a live source, mapped from Boot.
	Time time.Time `json:"time,omitzero"`
	// Boot is the kernel timestamp since boot (kmsg, dmesg), when known.
	Boot time.Duration `json:"-"`
	// PID is the killed process (the thread group leader).
	PID int `json:"pid"`
	// Comm is the process name as the kernel printed it (at most 15 bytes,
	// any bytes but NUL), unescaped.
	Comm string `json:"comm,omitempty"`
	UID  *int   `json:"uid,omitempty"`
	// Constraint is the oom-kill: line's constraint, e.g. CONSTRAINT_MEMCG.
	Constraint string `json:"constraint,omitempty"`
	// OOMMemcg is the memory cgroup whose limit was hit, as the kernel
	// prints it (relative to the hierarchy root). Empty for a global OOM.
	OOMMemcg string `json:"oom_memcg,omitempty"`
	// TaskMemcg is the victim's memory cgroup.
	TaskMemcg     string `json:"task_memcg,omitempty"`
	TotalVMBytes  *int64 `json:"total_vm_bytes,omitempty"`
	AnonRSSBytes  *int64 `json:"anon_rss_bytes,omitempty"`
	FileRSSBytes  *int64 `json:"file_rss_bytes,omitempty"`
	ShmemRSSBytes *int64 `json:"shmem_rss_bytes,omitempty"`
	PgtablesBytes *int64 `json:"pgtables_bytes,omitempty"`
	OOMScoreAdj   *int   `json:"oom_score_adj,omitempty"`
	// Nodemask, Cpuset and MemsAllowed are the oom-kill: line's allocation
	// context: the memory nodes the failed allocation could use ("(null)"
	// when unrestricted), and the cpuset and allowed nodes of the task that
	// allocated, which need not be the victim.
	Nodemask    string `json:"nodemask,omitempty"`
	Cpuset      string `json:"cpuset,omitempty"`
	MemsAllowed string `json:"mems_allowed,omitempty"`
	// Confirmed is true when the kernel's "Killed process" line was seen:
	// the kernel printed it after sending SIGKILL. It is false for a kill
	// known only from its oom-kill: summary line (text filtered with grep,
	// for example), which the kernel prints once it has chosen the victim,
	// just before killing it. Only Scan reports unconfirmed kills; Kmsg and
	// ReadRetained report confirmed ones only. JSON leaves it out when
	// false, so that a Kill built from other proof of a death (cgroup
	// counters) does not read as unconfirmed; respawnd scan always prints it.
	Confirmed bool `json:"confirmed,omitempty"`
	// MemcgStats is the "Memory cgroup stats for …" block the kernel
	// printed with the report when a cgroup's limit was hit: that cgroup's
	// memory.stat at the moment of the kill (bytes, or counts for events).
	MemcgStats map[string]uint64 `json:"memcg_stats,omitempty"`
}
