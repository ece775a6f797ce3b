package watch

import (
	"fmt"
	"time"
)

// userHZ is the unit of the times in /proc/PID/stat: the kernel exports them
// in USER_HZ clock ticks, which is 100 on every architecture Go supports,
// whatever CONFIG_HZ the kernel was built with (include/asm-generic/param.h;
// the same assumption as prometheus/procfs). Reading it with
// sysconf(_SC_CLK_TCK) would need cgo.
const userHZ = 100

// Identity names one process for its whole life: its pid and its start
// time. A pid alone is not enough, as the kernel hands a pid out again once
// its previous owner has been reaped.
type Identity struct {
	// PID is the process id as seen in the pid namespace of the Scanner's
	// ProcRoot.
	PID int
	// StartTime is field 22 of /proc/PID/stat: when the process started, in
	// clock ticks (USER_HZ, 1/100 s) since boot.
	StartTime uint64
}

// String formats the identity as "PID@STARTTIME".
func (id Identity) String() string { return fmt.Sprintf("%d@%d", id.PID, id.StartTime) }

// TicksToTime converts a start time in clock ticks since boot (as in
// Identity.StartTime) into wall-clock time, given the boot time (the btime
// line of /proc/stat, see Scanner.BootTime). btime has a resolution of one
// second and follows changes of the wall clock made after boot only as the
// kernel recomputes it, so the result is good to about a second: fine for
// logs and uptime, not for telling processes apart (use Identity for that).
func TicksToTime(boot time.Time, ticks uint64) time.Time {
	sec := ticks / userHZ
	rem := ticks % userHZ
	return boot.Add(time.Duration(sec)*time.Second + time.Duration(rem)*(time.Second/userHZ))
}
