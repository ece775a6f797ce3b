package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	// home is the directory of the test process's own cgroup on the same
	// hierarchy, where threads of the test process found in the cgroup at
	// the end are moved back to.
	home string
}

// Procs is the file a process writes its pid to in order to join.
func (c *MemoryCgroup) Procs() string { return filepath.Join(c.Dir, "cgroup.procs") }

// memoryRoot finds a hierarchy with the memory controller: pure cgroup v2 at
// /sys/fs/cgroup, or cgroup v1 at /sys/fs/cgroup/memory.
func memoryRoot() (root string, v2 bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " memory ") {
			return "/sys/fs/cgroup", true, nil
		}
	}
	if err := unix.Statfs("/sys/fs/cgroup/memory", &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		return "/sys/fs/cgroup/memory", false, nil
	}
	return "", false, errors.New("no cgroup hierarchy with the memory controller")
}

// NewMemoryCgroup creates a cgroup limited to limit bytes of memory (and no
// swap) for this test, and removes it in t.Cleanup (see RemoveCgroup). It
// skips when memory cgroups are unavailable.
func NewMemoryCgroup(t testing.TB, limit int64) *MemoryCgroup {
	t.Helper()
	RequireRoot(t, "memory cgroup")
	root, v2, err := memoryRoot()
	if err != nil {
		Skip(t, "memory cgroup: %v", err)
	}
	home, err := OwnCgroupDir(root, v2)
	if err != nil {
		t.Fatalf("memory cgroup: %v", err)
	}
	name := fmt.Sprintf("respawnd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			Skip(t, "memory cgroup: %v", err)
		}
		t.Fatalf("creating cgroup: %v", err)
	}
	c := &MemoryCgroup{Dir: dir, Path: "/" + name, V2: v2, home: home}
	t.Cleanup(func() { RemoveCgroup(t, c.Dir, c.Path, c.V2, c.home) })
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
	return readIDs(c.Procs())
}

func readIDs(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, f := range strings.Fields(string(b)) {
		if id, err := strconv.Atoi(f); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// OwnCgroupDir returns the directory of the test process's own cgroup on
// the hierarchy mounted at root: the unified one (v2), or the v1 one of the
// memory controller.
func OwnCgroupDir(root string, v2 bool) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	p, ok := cgroupPathOf(b, v2)
	if !ok {
		return "", fmt.Errorf("no %s entry in /proc/self/cgroup", hierarchyName(v2))
	}
	return filepath.Join(root, p), nil
}

func hierarchyName(v2 bool) string {
	if v2 {
		return "cgroup v2"
	}
	return "cgroup v1 memory"
}

// cgroupPathOf returns the path of the /proc/PID/cgroup content on the
// unified hierarchy (v2) or on the v1 hierarchy of the memory controller.
func cgroupPathOf(procCgroup []byte, v2 bool) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if v2 && parts[0] == "0" && parts[1] == "" {
			return parts[2], true
		}
		if !v2 && slices.Contains(strings.Split(parts[1], ","), "memory") {
			return parts[2], true
		}
	}
	return "", false
}

// inCgroup reports whether the live process pid is in the cgroup at path
// (as /proc/PID/cgroup shows it) or below it.
func inCgroup(pid int, path string, v2 bool) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false
	}
	p, ok := cgroupPathOf(b, v2)
	return ok && (p == path || strings.HasPrefix(p, strings.TrimSuffix(path, "/")+"/"))
}

// removeTimeout bounds RemoveCgroup.
const removeTimeout = 10 * time.Second

// RemoveCgroup empties the cgroup directory dir, whose path in the hierarchy
// is path (as /proc/PID/cgroup shows it), and removes it with the cgroups
// below it, retrying for a few seconds while the kernel tears processes
// down; a failure is reported with t.Errorf. It never kills the test
// process: threads of the test process found there (a test may move one in
// for the instant of a fork, and on cgroup v1 one thread is enough to list
// the whole process in cgroup.procs) are moved back to home, the cgroup
// directory they came from, and the test process itself (on v2) too. Every
// other process is SIGKILLed through a pidfd opened before its membership
// is checked, so that a pid reused by a process outside the cgroup is never
// hit.
func RemoveCgroup(t testing.TB, dir, path string, v2 bool, home string) {
	t.Helper()
	deadline := time.Now().Add(removeTimeout)
	for {
		err := removeCgroupOnce(dir, path, v2, home)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("removing test cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeCgroupOnce tries once to empty and remove dir and its descendants,
// deepest first.
func removeCgroupOnce(dir, path string, v2 bool, home string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		rel, _ := filepath.Rel(dir, d)
		p := filepath.Join(path, rel)
		if err := bringHome(d, v2, home); err != nil {
			errs = append(errs, err)
		}
		pids, _ := readIDs(filepath.Join(d, "cgroup.procs"))
		for _, pid := range pids {
			if pid != os.Getpid() {
				killMember(pid, p, v2)
			}
		}
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// bringHome moves the test process's threads (v1) or the test process (v2)
// out of the cgroup directory d into home.
func bringHome(d string, v2 bool, home string) error {
	self := os.Getpid()
	if v2 {
		pids, _ := readIDs(filepath.Join(d, "cgroup.procs"))
		if !slices.Contains(pids, self) {
			return nil
		}
		if home == "" {
			return fmt.Errorf("the test process is in %s and its own cgroup is unknown", d)
		}
		return os.WriteFile(filepath.Join(home, "cgroup.procs"), []byte(strconv.Itoa(self)), 0)
	}
	tids, _ := readIDs(filepath.Join(d, "tasks"))
	var errs []error
	for _, tid := range tids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", self, tid)); err != nil {
			continue // not a thread of the test process
		}
		if home == "" {
			errs = append(errs, fmt.Errorf("thread %d of the test process is in %s and its own cgroup is unknown", tid, d))
			continue
		}
		if err := os.WriteFile(filepath.Join(home, "tasks"), []byte(strconv.Itoa(tid)), 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("moving thread %d of the test process back to %s: %w", tid, home, err))
		}
	}
	return errors.Join(errs...)
}

// killMember SIGKILLs pid if it is in the cgroup at path (or below it),
// through a pidfd opened before the check.
func killMember(pid int, path string, v2 bool) {
	_ = SignalIf(pid, unix.SIGKILL, func(pid int) bool { return inCgroup(pid, path, v2) })
}

// SignalIf sends sig to pid if check(pid) holds, through a pidfd opened
// before check runs: the pidfd pins the process that had the pid then, so
// a check that passes was about the process that gets the signal, never
// about a later owner of a reused pid. It returns nil without signalling
// when the process is gone or check fails.
func SignalIf(pid int, sig syscall.Signal, check func(pid int) bool) error {
	if pid <= 0 || pid == os.Getpid() {
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening a pidfd of pid %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if !check(pid) {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling pid %d: %w", pid, err)
	}
	return nil
}

// KillHelper SIGKILLs pid if it is a helper process of this test binary
// (started through HelperArgv), never another owner of a reused pid. It is
// for helpers that are not children of the test (a grandchild, an orphan),
// which cannot be signalled through an os.Process.
func KillHelper(pid int) {
	_ = SignalIf(pid, unix.SIGKILL, isHelper)
}

// isHelper reports whether pid runs the helper program of this test binary.
func isHelper(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) >= 2 && args[1] == helperArg
}
