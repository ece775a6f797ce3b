//go:build !linux

package cgroup

// Self is empty where cgroups do not exist.
type Self struct{}

// NewSelf returns ErrUnsupported.
func NewSelf(string) (*Self, error) { return nil, ErrUnsupported }

// V2 reports false.
func (s *Self) V2() bool { return false }

// Dir returns ErrUnsupported.
func (s *Self) Dir() (string, error) { return "", ErrUnsupported }
