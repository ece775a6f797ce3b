//go:build !linux

package memwatch

import "context"

// Watcher measures programs' memory; it needs Linux.
type Watcher struct{}

// New returns ErrUnsupported outside Linux.
func New(Config) (*Watcher, error) { return nil, ErrUnsupported }

// Add returns ErrUnsupported.
func (w *Watcher) Add(string, Target, Spec) (func(), error) { return nil, ErrUnsupported }

// Update returns ErrUnsupported.
func (w *Watcher) Update(string, Spec) error { return ErrUnsupported }

// Run returns ErrUnsupported.
func (w *Watcher) Run(context.Context) error { return ErrUnsupported }
