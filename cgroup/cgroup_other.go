//go:build !linux

package cgroup

import (
	"syscall"
	"time"
)

// managerSys is empty where cgroups do not exist.
type managerSys struct{}

// groupSys is empty where cgroups do not exist.
type groupSys struct{}

// New returns ErrUnsupported: cgroups exist on Linux only.
func New(Config) (*Manager, error) { return nil, ErrUnsupported }

// Create returns ErrUnsupported.
func (m *Manager) Create(string, Limits) (*Group, error) { return nil, ErrUnsupported }

// Update returns ErrUnsupported.
func (g *Group) Update(Limits) error { return ErrUnsupported }

// Usage returns ErrUnsupported.
func (g *Group) Usage() (uint64, error) { return 0, ErrUnsupported }

// Limit reports no limit.
func (g *Group) Limit() (uint64, bool) { return 0, false }

// PIDs returns ErrUnsupported.
func (g *Group) PIDs() ([]int, error) { return nil, ErrUnsupported }

// KillAll returns ErrUnsupported.
func (g *Group) KillAll() error { return ErrUnsupported }

// Remove returns ErrUnsupported.
func (g *Group) Remove() error { return ErrUnsupported }

// RemoveParent is not supported on this system.
func (m *Manager) RemoveParent() error { return ErrUnsupported }

// Signal returns ErrUnsupported.
func (g *Group) Signal(syscall.Signal) error { return ErrUnsupported }

// Drain returns ErrUnsupported.
func (g *Group) Drain(time.Duration) error { return ErrUnsupported }

// Contains returns ErrUnsupported.
func (m *Manager) Contains(int, string) (bool, error) { return false, ErrUnsupported }

// ResetPeak does nothing.
func (g *Group) ResetPeak() {}

// Peak reports nothing.
func (g *Group) Peak() (uint64, bool) { return 0, false }

// Memory is a group's memory use.
type Memory struct {
	Usage, RSS, WorkingSet     uint64
	PressureSome, PressureFull time.Duration
	HasPressure                bool
}

type memFiles struct{}

// Memory returns ErrUnsupported.
func (g *Group) Memory() (Memory, error) { return Memory{}, ErrUnsupported }

// MemoryReport is a group's memory files at one moment.
type MemoryReport struct {
	Version                        int
	Stat, Events                   map[string]uint64
	PressureSomeUS, PressureFullUS uint64
	HasPressure                    bool
}

// Report returns ErrUnsupported.
func (g *Group) Report() (MemoryReport, error) { return MemoryReport{}, ErrUnsupported }
