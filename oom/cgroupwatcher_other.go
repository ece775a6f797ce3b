//go:build !linux

package oom

import (
	"context"
	"log/slog"
)

// CgroupWatcher watches cgroup OOM counters; it is Linux's.
type CgroupWatcher struct{}

// NewCgroupWatcher returns ErrUnsupported outside Linux.
func NewCgroupWatcher(bool, *slog.Logger) (*CgroupWatcher, error) { return nil, ErrUnsupported }

// Add returns ErrUnsupported.
func (w *CgroupWatcher) Add(string, chan CgroupCounts) (func(), error) { return nil, ErrUnsupported }

// Run returns ErrUnsupported.
func (w *CgroupWatcher) Run(context.Context) error { return ErrUnsupported }
