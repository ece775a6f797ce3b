package oom

import (
	"log/slog"
	"time"
)

// DefaultKmsgPath is the kernel log device.
const DefaultKmsgPath = "/dev/kmsg"

// KmsgConfig configures a Kmsg follower. Zero values mean defaults.
type KmsgConfig struct {
	Path   string       // default DefaultKmsgPath
	Logger *slog.Logger // nil discards; the follower logs at debug level only
}

func (c KmsgConfig) withDefaults() KmsgConfig {
	if c.Path == "" {
		c.Path = DefaultKmsgPath
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "oom")
	return c
}

// wallFromBoot maps a kernel timestamp to wall-clock time, given the wall
// time and the kernel clock read at one moment. printk stamps records with
// local_clock(), which runs with CLOCK_MONOTONIC (both stop in suspend), so
// the monotonic clock read now is the kernel's "now".
func wallFromBoot(boot, monoNow time.Duration, wallNow time.Time) time.Time {
	return wallNow.Add(boot - monoNow)
}
