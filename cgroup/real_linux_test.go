package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// newTestManager returns a Manager for the host's cgroups whose program
// cgroups live under a parent made for this test alone, so a real respawnd's
// cgroups are never touched. The parent is removed in t.Cleanup.
func newTestManager(t *testing.T) *Manager {
	t.Helper()
	testenv.RequireRoot(t, "memory cgroups")
	parent := fmt.Sprintf("respawnd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	m, err := New(Config{Parent: parent})
	if errors.Is(err, ErrNoMemoryController) {
		testenv.Skip(t, "memory cgroups: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir, err := m.layout.dir(m.Parent())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("removing test parent cgroup: %v", err)
		}
	})
	return m
}

// createGroup creates a group and removes it in t.Cleanup.
func createGroup(t *testing.T, m *Manager, name string, l Limits) *Group {
	t.Helper()
	g, err := m.Create(name, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return g
}

// startInGroup starts the sleeping helper so that it is in g before it runs
// a single instruction of its own: it does all its allocating inside the
// limited group. On v2 that is clone3 with CLONE_INTO_CGROUP; on v1 the child
// is traced, so it stops right after exec, is moved, and then let go.
func startInGroup(t *testing.T, g *Group) *exec.Cmd {
	t.Helper()
	return startInGroupArgv(t, g, testenv.HelperArgv("sleep"))
}

// startInGroupArgv is startInGroup for the helper mode in argv.
func startInGroupArgv(t *testing.T, g *Group, argv []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	if g.FD() >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
	} else {
		// ptrace requests must come from the thread that forked the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child, by its pidfd
		_ = cmd.Wait()
	})
	if g.FD() >= 0 {
		return cmd
	}
	pid := cmd.Process.Pid
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || !ws.Stopped() {
		t.Fatalf("waiting for the traced helper to stop at exec: status %v, %v", ws, err)
	}
	for _, f := range g.Procs() {
		if err := os.WriteFile(f, []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatalf("moving helper into %s: %v", f, err)
		}
	}
	if err := syscall.PtraceDetach(pid); err != nil {
		t.Fatalf("letting the helper go: %v", err)
	}
	return cmd
}

// poll calls cond until it is true or a deadline passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRealGroupLifecycle(t *testing.T) {
	m := newTestManager(t)
	const limit = 64 << 20
	g := createGroup(t, m, "api", Limits{Max: ptr(limit), High: ptr(limit / 2), SwapMax: ptr(0)})

	if want := m.Parent() + "/api"; g.Path() != want {
		t.Errorf("Path() = %q, want %q", g.Path(), want)
	}
	if fi, err := os.Stat(g.Dir()); err != nil || !fi.IsDir() {
		t.Fatalf("Dir() %s: %v", g.Dir(), err)
	}
	read := func(file string) string {
		b, err := os.ReadFile(filepath.Join(g.Dir(), file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	exists := func(file string) bool {
		_, err := os.Stat(filepath.Join(g.Dir(), file))
		return err == nil
	}
	if m.V2() {
		if g.FD() < 0 || g.Procs() != nil {
			t.Errorf("v2: FD() = %d, Procs() = %v", g.FD(), g.Procs())
		}
		if read("memory.max") != "67108864" || read("memory.high") != "33554432" {
			t.Errorf("v2 limits: max %s, high %s", read("memory.max"), read("memory.high"))
		}
		if exists("memory.swap.max") && read("memory.swap.max") != "0" {
			t.Errorf("memory.swap.max = %s", read("memory.swap.max"))
		}
	} else {
		if g.FD() != -1 || !slices.Equal(g.Procs(), []string{filepath.Join(g.Dir(), "cgroup.procs")}) {
			t.Errorf("v1: FD() = %d, Procs() = %v", g.FD(), g.Procs())
		}
		if got := read("memory.limit_in_bytes"); got != "67108864" {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if exists("memory.memsw.limit_in_bytes") && read("memory.memsw.limit_in_bytes") != "67108864" {
			t.Errorf("memory.memsw.limit_in_bytes = %s", read("memory.memsw.limit_in_bytes"))
		}
		if w := g.Warnings(); len(w) != 1 || !strings.Contains(w[0], "high") {
			t.Errorf("Warnings() = %q, want one about high", w)
		}
	}
	if l, ok := g.Limit(); !ok || l != limit {
		t.Errorf("Limit() = %d, %v", l, ok)
	}

	cmd := startInGroup(t, g)
	pid := cmd.Process.Pid
	poll(t, "the helper in PIDs()", func() bool {
		pids, err := g.PIDs()
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(pids, pid)
	})
	poll(t, "memory usage", func() bool {
		u, err := g.Usage()
		if err != nil {
			t.Fatal(err)
		}
		return u > 0
	})

	if err := g.KillAll(); err != nil {
		t.Fatal(err)
	}
	if sig := exitSignal(t, cmd); sig != syscall.SIGKILL {
		t.Errorf("helper ended by %v, want SIGKILL", sig)
	}
	if pids, err := g.PIDs(); err != nil || len(pids) != 0 {
		t.Errorf("PIDs() after KillAll = %v, %v", pids, err)
	}

	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dir() left after Remove: %v", err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("second Remove() = %v", err)
	}
}

func TestRealUpdate(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "worker", Limits{Max: ptr(64 << 20), SwapMax: ptr(0)})
	memsw := filepath.Join(g.Dir(), "memory.memsw.limit_in_bytes")
	_, err := os.Stat(memsw)
	haveMemsw := !m.V2() && err == nil
	for _, c := range []struct {
		name      string
		l         Limits
		max       uint64
		wantMemsw string
	}{
		// Raising above the current memory+swap limit needs memsw first.
		{"raise", Limits{Max: ptr(128 << 20), SwapMax: ptr(32 << 20)}, 128 << 20, "167772160"},
		{"lower", Limits{Max: ptr(32 << 20), SwapMax: ptr(0)}, 32 << 20, "33554432"},
		{"lift", Limits{}, 0, ""},
		{"again", Limits{Max: ptr(64 << 20)}, 64 << 20, ""},
	} {
		if err := g.Update(c.l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		l, ok := g.Limit()
		if ok != (c.max != 0) || l != c.max {
			t.Errorf("%s: Limit() = %d, %v; want %d", c.name, l, ok, c.max)
		}
		if haveMemsw && c.wantMemsw != "" {
			b, err := os.ReadFile(memsw)
			if err != nil || strings.TrimSpace(string(b)) != c.wantMemsw {
				t.Errorf("%s: memsw = %q, %v; want %s", c.name, b, err, c.wantMemsw)
			}
		}
		if len(g.Warnings()) != 0 {
			t.Errorf("%s: Warnings() = %q", c.name, g.Warnings())
		}
	}
	if err := g.Update(Limits{High: ptr(1 << 20)}); err != nil {
		t.Fatal(err)
	}
	if w := g.Warnings(); m.V2() != (len(w) == 0) {
		t.Errorf("high on v2 = %v: Warnings() = %q", m.V2(), w)
	}
}

// TestRealDefaultPlacement checks that, without a Parent, program cgroups
// would go below respawnd's own cgroup. It creates nothing.
func TestRealDefaultPlacement(t *testing.T) {
	testenv.RequireRoot(t, "memory cgroups")
	m, err := New(Config{})
	if errors.Is(err, ErrNoMemoryController) {
		testenv.Skip(t, "memory cgroups: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	key := ":memory:"
	if m.V2() {
		key = "0::"
	}
	var own string
	for _, line := range strings.Split(string(self), "\n") {
		if _, p, ok := strings.Cut(line, key); ok {
			own = p
		}
	}
	if own == "" || m.Parent() != filepath.Join(own, programsDir) {
		t.Errorf("Parent() = %q, own cgroup %q", m.Parent(), own)
	}
}

// TestRealReadOnlyIsPermissionError creates a group on a read-only cgroup
// tree (a fake one, bind-mounted read-only, as a container without
// delegation sees /sys/fs/cgroup) and expects an error that callers treat as
// missing permission.
func TestRealReadOnlyIsPermissionError(t *testing.T) {
	testenv.RequireRoot(t, "read-only bind mount")
	root := fakeV2(t, "/svc")
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", root, err)
		}
	})
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	for _, parent := range []string{"/svc/programs", "/elsewhere"} {
		m := newManager(layout{v2: true, mount: root, mountRoot: "/", own: "/svc", parent: parent}, nil)
		_, err := m.Create("api", Limits{Max: ptr(64 << 20)})
		if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, syscall.EROFS) {
			t.Errorf("parent %s: Create = %v; want fs.ErrPermission wrapping EROFS", parent, err)
		}
	}
}
