package watch

import (
	"fmt"
	"syscall"
	"time"
)

// ExitInfo is how a watched process ended.
type ExitInfo struct {
	// Known is false when the kernel could not tell how the process ended
	// (a kernel older than 6.15 and a process reaped before respawnd could
	// read its zombie, or the rescan mechanism after the reap). Then Code,
	// Signaled, Signal and Core are zero and mean nothing.
	Known bool
	// Code is the exit code when the process exited on its own.
	Code int
	// Signaled is true when a signal ended the process.
	Signaled bool
	// Signal is the signal that ended the process, when Signaled.
	Signal syscall.Signal
	// Core is true when the process dumped core.
	Core bool
	// Time is when respawnd noticed the death.
	Time time.Time
}

// String describes the exit as "exit code 3", "signal killed", "signal
// segmentation fault (core dumped)" or "unknown".
func (e ExitInfo) String() string {
	switch {
	case !e.Known:
		return "unknown"
	case e.Signaled && e.Core:
		return fmt.Sprintf("signal %v (core dumped)", e.Signal)
	case e.Signaled:
		return fmt.Sprintf("signal %v", e.Signal)
	default:
		return fmt.Sprintf("exit code %d", e.Code)
	}
}

// exitFromWaitStatus decodes a status in the format of wait(2), which is
// what both PIDFD_INFO_EXIT's exit_code and field 52 of /proc/PID/stat hold:
// the low 7 bits are the terminating signal (0 for a normal exit), bit 7 the
// core-dump flag, bits 8-15 the exit code. Stop statuses (low byte 0x7f)
// never describe a dead process and decode as unknown.
func exitFromWaitStatus(status uint32, at time.Time) ExitInfo {
	sig := status & 0x7f
	switch {
	case sig == 0:
		return ExitInfo{Known: true, Code: int(status>>8) & 0xff, Time: at}
	case sig == 0x7f:
		return ExitInfo{Time: at}
	default:
		return ExitInfo{Known: true, Signaled: true, Signal: syscall.Signal(sig), Core: status&0x80 != 0, Time: at}
	}
}
