//go:build !linux

package oom

import (
	"context"
	"fmt"
)

// WatchCgroup returns ErrUnsupported outside Linux.
func WatchCgroup(ctx context.Context, dir string, v2 bool, out chan<- CgroupCounts) error {
	return fmt.Errorf("watching cgroup %s: %w", dir, ErrUnsupported)
}
