package postmortem

import (
	"time"

	"github.com/respawnd/respawnd/oom"
)

// Record is the account of one death of a program's instance. Fields the
// evidence did not carry are omitted from JSON.
type Record struct {
	// ID names the record: unique, safe as a file name, and ordered by
	// Died within a program.
	ID         string `json:"id"`
	Program    string `json:"program"`
	PID        int    `json:"pid,omitempty"`
	Generation uint64 `json:"generation"`
	// Started is when the instance started (zero when unknown); Died is
	// when respawnd collected its exit.
	Started time.Time `json:"started,omitzero"`
	Died    time.Time `json:"died"`
	// UptimeSeconds is Died less Started.
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
	// Reason is the exit's final reason (oom_kill, signal, exit_error…).
	Reason string `json:"reason"`
	// Signal ("SIGKILL") is set when a signal ended the instance; ExitCode
	// when it exited.
	Signal   string `json:"signal,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// Error says what failed, for start_failure, and what the failed check
	// saw, for health_check and watchdog.
	Error string `json:"error,omitempty"`
	// Recycle says respawnd was stopping the instance for its memory.
	Recycle bool `json:"recycle,omitempty"`
	// Stopped says respawnd stopped the instance on request (an operator's
	// stop or restart, a reload, its own shutdown). Hooks do not run for
	// such exits.
	Stopped bool `json:"stopped,omitempty"`
	// OOM is the kernel's OOM report, when there was one.
	OOM *oom.Kill `json:"oom,omitempty"`
	// Memory is the program's cgroup at death, when it has one.
	Memory *Memory `json:"memory,omitempty"`
	// Host is the host's memory at death.
	Host *Host `json:"host,omitempty"`
	// Core is set when the kernel reported a core dump.
	Core *Core `json:"core,omitempty"`
	// Output is the instance's last output lines, oldest first, both
	// streams: up to 200 lines or 64 KiB per stream.
	Output []Line `json:"output,omitempty"`
	// OutputKept is false for an instance whose output respawnd did not
	// see (one adopted after respawnd's own restart).
	OutputKept bool `json:"output_kept"`
}

// Memory is a program's cgroup around a death: its peak, the events over
// the instance's life, and memory.stat read right after the death, before
// anything restarted in the cgroup.
type Memory struct {
	// Cgroup is the cgroup's path as the kernel prints it; Version is 1
	// or 2.
	Cgroup  string `json:"cgroup"`
	Version int    `json:"cgroup_version"`
	// PeakBytes is the instance's peak (memory.peak on v2,
	// memory.max_usage_in_bytes on v1), PeakSource where it came from.
	PeakBytes  int64  `json:"peak_bytes,omitempty"`
	PeakSource string `json:"peak_source,omitempty"`
	// StatAfterExit is memory.stat as the kernel wrote it (bytes or
	// counts), read once the instance's main process was reaped: what is
	// still charged to the cgroup then (page cache, shmem and tmpfs files,
	// kernel memory, what other processes of the cgroup hold). The
	// breakdown at an OOM kill itself is in the kernel's report
	// (Record.OOM.MemcgStats).
	StatAfterExit map[string]uint64 `json:"stat_after_exit,omitempty"`
	// Events are the increases of the cgroup's event counters over the
	// instance's life (memory.events on v2: low, high, max, oom, oom_kill,
	// oom_group_kill; failcnt and oom_kill on v1); a counter is there even
	// when it did not move. EventsSince says from when: the instance's
	// start, or respawnd's first look at the cgroup when that came later.
	Events      map[string]uint64 `json:"events,omitempty"`
	EventsSince time.Time         `json:"events_since,omitzero"`
	// PressureSomeSeconds and PressureFullSeconds are the cgroup's memory
	// stall time over the same span (v2 with PSI).
	PressureSomeSeconds *float64 `json:"pressure_some_seconds,omitempty"`
	PressureFullSeconds *float64 `json:"pressure_full_seconds,omitempty"`
}

// Host is the host's memory at death.
type Host struct {
	MemTotalBytes     uint64 `json:"mem_total_bytes"`
	MemAvailableBytes uint64 `json:"mem_available_bytes"`
	// PressureSomeAvg10 and PressureFullAvg10 are /proc/pressure/memory's
	// 10-second averages in percent, when PSI is on.
	PressureSomeAvg10 *float64 `json:"pressure_some_avg10,omitempty"`
	PressureFullAvg10 *float64 `json:"pressure_full_avg10,omitempty"`
}

// Core says the kernel wrote a core dump (WCOREDUMP) and where it went.
type Core struct {
	Dumped bool `json:"dumped"`
	// Pattern is /proc/sys/kernel/core_pattern at death: a path template,
	// or a "|program" that received the dump (systemd-coredump, apport).
	Pattern string `json:"pattern,omitempty"`
}

// Line is one line of a program's output, with the time respawnd read it.
type Line struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // stdout or stderr
	Text   string    `json:"text"`
}
