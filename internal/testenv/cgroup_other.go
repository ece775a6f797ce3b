//go:build !linux

package testenv

import (
	"errors"
	"syscall"
	"testing"
)

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

// OwnCgroupDir fails: cgroups are Linux's.
func OwnCgroupDir(string, bool) (string, error) { return "", errors.New("cgroups need Linux") }

// RemoveCgroup does nothing: no test makes a cgroup outside Linux.
func RemoveCgroup(testing.TB, string, string, bool, string) {}

// SignalIf fails: pidfds are Linux's.
func SignalIf(int, syscall.Signal, func(int) bool) error { return errors.New("pidfds need Linux") }

// KillHelper does nothing outside Linux.
func KillHelper(int) {}
