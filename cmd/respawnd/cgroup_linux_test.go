package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// testCgroups holds each test's cgroup (see testCgroup), by *testing.T.
var (
	testCgroups sync.Map
	cgroupSeq   atomic.Uint64
)

// cgroupHierarchy finds where the test's cgroups go: the root of a pure
// cgroup v2 host that offers the memory controller, else the cgroup v1
// memory hierarchy.
func cgroupHierarchy() (root string, v2 bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err == nil && slices.Contains(strings.Fields(string(b)), "memory") {
			return "/sys/fs/cgroup", true, nil
		}
	}
	if err := unix.Statfs("/sys/fs/cgroup/memory", &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		return "/sys/fs/cgroup/memory", false, nil
	}
	return "", false, errors.New("no cgroup hierarchy with the memory controller")
}

// testCgroup returns the directory of the test's own cgroup, made on first
// use. Every respawnd a test starts runs in it, and respawnd puts its
// programs' cgroups below its own, so the subtree holds everything the
// test's daemons started, setsid'd descendants included. At the end of the
// test (after the daemons' own cleanups, which run first) whatever is left
// there is SIGKILLed, through pidfds and never the test binary itself, and
// the subtree removed.
func testCgroup(t testing.TB) string {
	t.Helper()
	if v, ok := testCgroups.Load(t); ok {
		return v.(string)
	}
	root, v2, err := cgroupHierarchy()
	if err != nil {
		testenv.Skip(t, "a cgroup for respawnd: %v", err)
	}
	home, err := testenv.OwnCgroupDir(root, v2)
	if err != nil {
		t.Fatalf("a cgroup for respawnd: %v", err)
	}
	name := fmt.Sprintf("respawnd-test-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			testenv.Skip(t, "a cgroup for respawnd: %v", err)
		}
		t.Fatalf("creating a cgroup for respawnd: %v", err)
	}
	testCgroups.Store(t, dir)
	t.Cleanup(func() {
		testCgroups.Delete(t)
		testenv.RemoveCgroup(t, dir, "/"+name, v2, home)
	})
	return dir
}
