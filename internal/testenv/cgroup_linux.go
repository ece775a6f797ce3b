package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// MemoryCgroup is a memory-limited cgroup made for one test.
type MemoryCgroup struct {
	// Dir is the cgroup's directory on the cgroup filesystem.
	Dir string
	// Path is the cgroup's path as the kernel prints it (e.g. in
	// oom-kill:task_memcg=), relative to the hierarchy root.
	Path string
	// V2 is true on a cgroup v2 hierarchy.
	V2 bool
}

// Procs is the file a process writes its pid to in order to join.
func (c *MemoryCgroup) Procs() string { return filepath.Join(c.Dir, "cgroup.procs") }

// memoryRoot finds a hierarchy with the memory controller: pure cgroup v2 at
// /sys/fs/cgroup, or cgroup v1 at /sys/fs/cgroup/memory.
func memoryRoot() (root string, v2 bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err == nil && strings.Contains(" "+string(b)+" ", " memory ") {
			return "/sys/fs/cgroup", true, nil
		}
	}
	if err := unix.Statfs("/sys/fs/cgroup/memory", &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		return "/sys/fs/cgroup/memory", false, nil
	}
	return "", false, errors.New("no cgroup hierarchy with the memory controller")
}

// NewMemoryCgroup creates a cgroup limited to limit bytes of memory (and no
// swap) for this test, and removes it in t.Cleanup after SIGKILLing every
// process still in it. It skips when memory cgroups are unavailable.
func NewMemoryCgroup(t testing.TB, limit int64) *MemoryCgroup {
	t.Helper()
	RequireRoot(t, "memory cgroup")
	root, v2, err := memoryRoot()
	if err != nil {
		Skip(t, "memory cgroup: %v", err)
	}
	name := fmt.Sprintf("respawnd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			Skip(t, "memory cgroup: %v", err)
		}
		t.Fatalf("creating cgroup: %v", err)
	}
	c := &MemoryCgroup{Dir: dir, Path: "/" + name, V2: v2}
	t.Cleanup(func() { c.remove(t) })
	lim := strconv.FormatInt(limit, 10)
	if v2 {
		mustWrite(t, filepath.Join(dir, "memory.max"), lim)
		mustWrite(t, filepath.Join(dir, "memory.swap.max"), "0")
	} else {
		mustWrite(t, filepath.Join(dir, "memory.limit_in_bytes"), lim)
		// memsw exists only with swap accounting; without it there is no swap to limit.
		if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(lim), 0)
		}
	}
	return c
}

func mustWrite(t testing.TB, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

// PIDs lists the processes in the cgroup.
func (c *MemoryCgroup) PIDs() ([]int, error) {
	b, err := os.ReadFile(c.Procs())
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// remove kills what is left in the cgroup (by pid; only processes the test
// put there) and removes it, retrying while the kernel finishes teardown.
func (c *MemoryCgroup) remove(t testing.TB) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, _ := c.PIDs()
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		err := os.Remove(c.Dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("removing test cgroup %s: %v", c.Dir, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
