package restart_test

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

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// The v1 shim puts the program into the memory cgroup before it execs:
// the program's first look at /proc/self/cgroup already shows it there.
func TestShimJoinsV1CgroupBeforeExec(t *testing.T) {
	testenv.RequireRoot(t, "joining a cgroup v1 memory cgroup")
	testenv.RequireCgroupV1(t, "the v1 shim")
	verifyNoLeaks(t)
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	l, out := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "cg", Argv: localHelperArgv("cgroup"), CgroupProcs: []string{cg.Procs()}})
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit status %+v\n%s", st, out)
	}
	waitOutput(t, p)
	if want := ":memory:" + cg.Path + "\n"; !strings.Contains(out.String(), want) {
		t.Errorf("the program's /proc/self/cgroup lacks %q:\n%s", want, out)
	}
}

// A hog under a 64 MiB limit is OOM-killed: every allocation of the program
// was charged to the cgroup.
func TestShimHogIsOOMKilled(t *testing.T) {
	testenv.RequireRoot(t, "OOM kill in a cgroup v1 memory cgroup")
	testenv.RequireCgroupV1(t, "the v1 shim")
	verifyNoLeaks(t)
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	l, _ := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "hog", Argv: testenv.HelperArgv("hog"), CgroupProcs: []string{cg.Procs()}})
	st := waitDone(t, p)
	waitOutput(t, p)
	if !st.Signaled || st.Signal != syscall.SIGKILL {
		t.Fatalf("exit status %+v, want SIGKILL by the OOM killer", st)
	}
}

// cgroup2Root finds a mounted cgroup v2 hierarchy, memory controller or
// not: clone3(CLONE_INTO_CGROUP) needs only the hierarchy.
func cgroup2Root(t *testing.T) string {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir
		}
	}
	testenv.Skip(t, "no cgroup v2 hierarchy mounted")
	return ""
}

// newCgroup2 creates an empty cgroup v2 directory and removes it when the
// test ends, after SIGKILLing what the test left in it (testenv.RemoveCgroup:
// never the test process, never a pid outside the cgroup).
func newCgroup2(t *testing.T) (dir, path string) {
	root := cgroup2Root(t)
	home, err := testenv.OwnCgroupDir(root, true)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("respawnd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	dir, path = filepath.Join(root, name), "/"+name
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			testenv.Skip(t, "creating a cgroup v2 directory: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.RemoveCgroup(t, dir, path, true, home) })
	return dir, path
}

func TestCgroupFDJoinsV2Cgroup(t *testing.T) {
	testenv.RequireRoot(t, "cloning into a cgroup v2 directory")
	verifyNoLeaks(t)
	dir, path := newCgroup2(t)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	l, out := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "cg2", Argv: localHelperArgv("cgroup"), CgroupFD: fd})
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit status %+v\n%s", st, out)
	}
	waitOutput(t, p)
	if want := "cg2 | 0::" + path + "\n"; !strings.Contains(out.String(), want) {
		t.Errorf("the program's /proc/self/cgroup lacks %q:\n%s", want, out)
	}
}

// With CgroupLeave the forking thread itself joins the cgroup for the
// instant of the fork: the program is in the cgroup from its first
// instruction, no shim runs, and no thread of respawnd stays behind.
func TestThreadMoveJoinsV1CgroupBeforeExec(t *testing.T) {
	cg, own := v1CgroupForThreadMove(t)
	// A shim that does not exist proves the shim is not used.
	l, out := newTestLauncher(restart.LauncherConfig{ShimPath: "/nonexistent/respawnd-shim"})
	for i := 0; i < 5; i++ {
		p := start(t, l, restart.Command{Name: "cg", Argv: localHelperArgv("cgroup"), CgroupProcs: []string{cg.Procs()}, CgroupLeave: []string{own}})
		if st := waitDone(t, p); st.Code != 0 {
			t.Fatalf("exit status %+v\n%s", st, out)
		}
		waitOutput(t, p)
	}
	if want := ":memory:" + cg.Path + "\n"; strings.Count(out.String(), want) != 5 {
		t.Errorf("not every program's /proc/self/cgroup has %q:\n%s", want, out)
	}
	// Every thread of this process is back where it was.
	tasks, _ := os.ReadFile(filepath.Join(cg.Dir, "tasks"))
	for _, f := range strings.Fields(string(tasks)) {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(os.Getpid()), "task", f)); err == nil {
			t.Errorf("thread %s of the launcher stayed in the program's cgroup", f)
		}
	}
}

func TestThreadMoveHogIsOOMKilled(t *testing.T) {
	cg, own := v1CgroupForThreadMove(t)
	l, _ := newTestLauncher(restart.LauncherConfig{ShimPath: "/nonexistent/respawnd-shim"})
	p := start(t, l, restart.Command{Name: "hog", Argv: testenv.HelperArgv("hog"), CgroupProcs: []string{cg.Procs()}, CgroupLeave: []string{own}})
	st := waitDone(t, p)
	waitOutput(t, p)
	if !st.Signaled || st.Signal != syscall.SIGKILL {
		t.Fatalf("exit status %+v, want SIGKILL by the OOM killer", st)
	}
}

// v1CgroupForThreadMove makes a 64 MiB v1 memory cgroup for a test and
// returns it with the directory the launcher's thread returns to.
func v1CgroupForThreadMove(t *testing.T) (*testenv.MemoryCgroup, string) {
	testenv.RequireRoot(t, "joining a cgroup v1 memory cgroup")
	testenv.RequireCgroupV1(t, "moving a thread into a memory cgroup (cgroup v2 places whole processes)")
	verifyNoLeaks(t)
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	return cg, ownMemoryCgroupDir(t, filepath.Dir(cg.Dir))
}

// ownMemoryCgroupDir is this process's own memory cgroup directory on the
// v1 hierarchy mounted at mount.
func ownMemoryCgroupDir(t *testing.T, mount string) string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,") {
			return filepath.Join(mount, parts[2])
		}
	}
	t.Fatal("no memory cgroup in /proc/self/cgroup")
	return ""
}
