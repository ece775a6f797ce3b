//go:build !linux

package watch

import (
	"context"
	"syscall"
)

// watcherSys is empty where pidfds do not exist.
type watcherSys struct{}

// procSys is empty where pidfds do not exist.
type procSys struct{}

// NewWatcher returns ErrUnsupported: death detection needs Linux.
func NewWatcher(Config) (*Watcher, error) { return nil, ErrUnsupported }

// Run returns ErrUnsupported.
func (w *Watcher) Run(context.Context) error { return ErrUnsupported }

func (w *Watcher) watch(*Proc) error { return ErrUnsupported }

func (p *Proc) release() {}

func (p *Proc) signal(syscall.Signal) error { return ErrUnsupported }
