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
}
