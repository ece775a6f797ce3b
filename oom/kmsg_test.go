package oom

import (
	"testing"
	"time"
)

// A record stamped 50s before the kernel's "now" happened 50s before the
// wall clock read at the same moment.
func TestWallFromBoot(t *testing.T) {
	wall := time.Date(2026, 11, 24, 2, 11, 3, 0, time.UTC)
	for _, tc := range []struct {
		boot, mono time.Duration
		want       time.Time
	}{
		{100 * time.Second, 150 * time.Second, wall.Add(-50 * time.Second)},
		{150 * time.Second, 150 * time.Second, wall},
		{546785459 * time.Microsecond, 551 * time.Second, wall.Add(-4214541 * time.Microsecond)},
	} {
		if got := wallFromBoot(tc.boot, tc.mono, wall); !got.Equal(tc.want) {
			t.Errorf("wallFromBoot(%v, %v) = %v, want %v", tc.boot, tc.mono, got, tc.want)
		}
	}
}
