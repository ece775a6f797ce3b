//go:build !linux

package watch

// NowTicks returns the time since boot in clock ticks; it is Linux's.
func NowTicks() (uint64, error) { return 0, ErrUnsupported }
