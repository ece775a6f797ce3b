// Package memwatch is respawnd's memory watchdog: it measures each
// program's memory against its thresholds, event-driven where the kernel
// allows, and decides when the host has recovered from an OOM. It reports;
// it never acts.
//
// # Per-program watch
//
// A Watcher judges every program by one Measure (WorkingSet, RSS or Anon,
// read from the program's cgroup by ReadCgroup, or a Sample function for
// an adopted process without a cgroup) against a Spec: Recycle when the
// measure stays at or above Spec.Above for Spec.For, Warn and WarnCleared
// around Spec.WarnAbove. One goroutine (Run) and one epoll set serve every
// program. The kernel's signals only wake a check early: on cgroup v2 the
// group's memory.events (which changes when, among others, the high
// counter moves, so a memory.high at or below the recycle threshold makes
// the crossing an event) and a PSI trigger on its memory.pressure; on v1 a
// usage threshold registered through cgroup.event_control. Every program
// is also measured every SampleInterval, so a missing or silent signal
// costs latency, never a decision.
//
// # Host gate
//
// A Gate holds the restarts of programs killed by a host-wide OOM until
// /proc/meminfo's MemAvailable and /proc/pressure/memory show that the
// host has recovered, then releases them one at a time in configuration
// order, each after its own window; a maximum hold releases a program
// anyway. ReadHost gives the same figures for metrics.
//
// # What it does not do
//
// The package knows nothing of the configuration, the supervisor, metrics
// or restart policy: it takes bytes and durations and reports Events and
// release calls. Stopping, restarting, counting recycles and guarding
// against recycle loops are the supervisor's. Percentages of memory.max
// are resolved into bytes by the caller.
//
// The Watcher needs Linux (New returns ErrUnsupported elsewhere); the
// parsers, the decisions and the Gate work everywhere.
package memwatch
