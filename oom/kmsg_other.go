//go:build !linux

package oom

import (
	"context"
	"fmt"
)

// Kmsg follows /dev/kmsg; it exists only on Linux.
type Kmsg struct{}

// NewKmsg returns ErrUnsupported outside Linux.
func NewKmsg(cfg KmsgConfig) (*Kmsg, error) {
	return nil, fmt.Errorf("opening %s: %w", cfg.withDefaults().Path, ErrUnsupported)
}

// Run returns ErrUnsupported outside Linux.
func (k *Kmsg) Run(ctx context.Context, out chan<- Kill) error { return ErrUnsupported }

// Lost is always 0 outside Linux.
func (k *Kmsg) Lost() uint64 { return 0 }

// Close does nothing outside Linux.
func (k *Kmsg) Close() error { return nil }

// ReadRetained returns ErrUnsupported outside Linux.
func ReadRetained(path string) ([]Kill, error) {
	return nil, fmt.Errorf("reading %s: %w", path, ErrUnsupported)
}
