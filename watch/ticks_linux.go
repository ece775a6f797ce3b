package watch

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// NowTicks returns the time since boot in clock ticks (USER_HZ), the unit
// and clock of Identity.StartTime: the kernel records a process's start as
// CLOCK_BOOTTIME at fork (start_boottime, shifted by the time namespace's
// offset exactly as this clock is).
func NowTicks() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("reading CLOCK_BOOTTIME: %w", err)
	}
	return uint64(ts.Sec)*userHZ + uint64(ts.Nsec)/(1e9/userHZ), nil
}
