//go:build !linux

package testenv

import "testing"

// MemoryCgroup is a memory-limited cgroup made for one test.
type MemoryCgroup struct {
	Dir, Path string
	V2        bool
}

// Procs is the file a process writes its pid to in order to join.
func (c *MemoryCgroup) Procs() string { return c.Dir + "/cgroup.procs" }

// NewMemoryCgroup skips: memory cgroups are Linux's.
func NewMemoryCgroup(t testing.TB, _ int64) *MemoryCgroup {
	t.Helper()
	Skip(t, "memory cgroups need Linux")
	return nil
}
