// Package oom turns kernel evidence into OOM-kill events.
//
// It owns the kernel's OOM reports in every form respawnd meets: /dev/kmsg
// records followed live (Kmsg) or read once (ReadRetained), log text from
// dmesg, journalctl -k and syslog files (Scan), the cgroup v2 memory.events
// and v1 memory.oom_control counters (ReadCgroupCounts, CgroupWatcher), and the
// host-wide oom_kill counter in /proc/vmstat (VMStatOOMKills).
//
// Kernel log handling is layered: front ends turn each line into a record
// (time and message), and one assembler turns records into Kill values for
// both Scan and the live follower.
//
// A Kill reports what the kernel printed: pid, comm, memory cgroup paths and
// sizes, and whether the kernel's Killed process line confirmed the kill
// (Scan also reports kills known only from their oom-kill: summary line;
// the live follower never does). The package deliberately knows nothing about respawnd's
// configuration, program names or restart decisions; matching a Kill to a
// supervised process is the caller's job.
//
// Code that touches the kernel is Linux-only; elsewhere those functions
// return ErrUnsupported, while the parsers work everywhere.
package oom
