package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// managerSys is the Linux part of a Manager.
type managerSys struct {
	ops      v2Ops // used on v2 only
	pageSize int
}

// New detects the cgroup mode and where program cgroups go. The error wraps
// ErrNoMemoryController and says why memory cgroups are unusable. New
// changes nothing on the cgroup fs; the first Create does.
func New(cfg Config) (*Manager, error) {
	root := cfg.Root
	if root == "" {
		root = DefaultRoot
	}
	self, mi, err := readProcSelf("/proc")
	if err != nil {
		return nil, err
	}
	l, err := detectFrom(root, cfg.Parent, hostMode(root), self, mi, readControllers)
	if err != nil {
		return nil, err
	}
	return newManager(l, cfg.Logger), nil
}

// detectFrom runs detect on the contents of /proc/self/cgroup and
// /proc/self/mountinfo.
func detectFrom(root, parent string, md mode, self, mountinfo []byte, controllers func(string) (string, error)) (layout, error) {
	ps, err := parseProcSelf(self, mountinfo)
	if err != nil {
		return layout{}, err
	}
	return detect(detectInput{
		root:        root,
		parent:      parent,
		mode:        md,
		v1Paths:     ps.v1Paths,
		unified:     ps.unified,
		mounts:      ps.mounts,
		controllers: controllers,
	})
}

// readProcSelf reads <procRoot>/self/cgroup and <procRoot>/self/mountinfo.
func readProcSelf(procRoot string) (self, mountinfo []byte, err error) {
	self, err = os.ReadFile(filepath.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading own cgroup: %w", ErrNoMemoryController, err)
	}
	mountinfo, err = os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading mountinfo: %w", ErrNoMemoryController, err)
	}
	return self, mountinfo, nil
}

// procSelf is what /proc/self/cgroup and /proc/self/mountinfo say: the
// process's cgroup in each v1 hierarchy (by controller), its cgroup v2
// path, and the mounts.
type procSelf struct {
	v1Paths map[string]string
	unified string
	mounts  []mount
}

func parseProcSelf(self, mountinfo []byte) (procSelf, error) {
	v1Paths, unified, err := cgroups.ParseCgroupFromReaderUnified(bytes.NewReader(self))
	if err != nil {
		return procSelf{}, fmt.Errorf("%w: parsing own cgroup: %w", ErrNoMemoryController, err)
	}
	mounts, err := parseMountInfo(mountinfo)
	if err != nil {
		return procSelf{}, fmt.Errorf("%w: %w", ErrNoMemoryController, err)
	}
	return procSelf{v1Paths: v1Paths, unified: unified, mounts: mounts}, nil
}

func newManager(l layout, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		layout: l,
		logger: logger.With("component", "cgroup"),
		sys:    managerSys{ops: libV2Ops{l}, pageSize: os.Getpagesize()},
	}
}

func readControllers(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	return string(b), err
}

// hostMode returns the cgroup mode at root. For the default root it is
// cgroups.Mode(); that function only looks at /sys/fs/cgroup, so another root
// gets the same statfs test here.
func hostMode(root string) mode {
	if filepath.Clean(root) == DefaultRoot {
		switch cgroups.Mode() {
		case cgroups.Legacy:
			return modeLegacy
		case cgroups.Hybrid:
			return modeHybrid
		case cgroups.Unified:
			return modeUnified
		}
		return modeUnavailable
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return modeUnavailable
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return modeUnified
	}
	if err := unix.Statfs(filepath.Join(root, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return modeHybrid
	}
	return modeLegacy
}

// Create makes (or reuses) the cgroup Parent/name and applies l. On v2 the
// first Create enables the memory controller down to the parent, which may
// move respawnd's own processes into a leaf (see the package
// documentation). Limits the mode cannot apply are reported by
// Group.Warnings. Errors caused by missing permission (EACCES, EPERM, EROFS)
// satisfy errors.Is(err, fs.ErrPermission).
func (m *Manager) Create(name string, l Limits) (*Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	p := path.Join(m.layout.parent, name)
	rel, err := m.layout.rel(p)
	if err != nil {
		return nil, err
	}
	dir, err := m.layout.dir(p)
	if err != nil {
		return nil, err
	}
	g := &Group{name: name, path: p, dir: dir, v2: m.layout.v2, fd: -1}
	g.sys.pageSize = m.sys.pageSize
	if m.layout.v2 {
		if err := m.prepare(); err != nil {
			return nil, err
		}
		mgr, err := cgroup2.NewManager(m.layout.mount, rel, &cgroup2.Resources{Memory: &cgroup2.Memory{}})
		if err != nil {
			return nil, fmt.Errorf("creating cgroup %s: %w", p, asPermission(err))
		}
		g.sys.v2 = mgr
	} else {
		cg, err := cgroup1.New(cgroup1.StaticPath(rel), &specs.LinuxResources{}, cgroup1.WithHierarchy(m.v1Hierarchy))
		if err != nil {
			return nil, fmt.Errorf("creating cgroup %s: %w", p, asPermission(err))
		}
		g.sys.v1 = cg
	}
	if err := g.apply(l); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", p, err)
	}
	if m.layout.v2 {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening cgroup %s: %w", p, &fs.PathError{Op: "open", Path: dir, Err: err})
		}
		g.fd = fd
	}
	return g, nil
}

// v1Hierarchy limits cgroup1 to the memory controller: respawnd's program
// cgroups exist in that hierarchy only.
func (m *Manager) v1Hierarchy() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{cgroup1.NewMemory(filepath.Dir(m.layout.mount))}, nil
}

// prepare runs prepareV2 until it succeeds once.
func (m *Manager) prepare() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prepared {
		return nil
	}
	moved, err := prepareV2(m.layout, m.sys.ops)
	if len(moved) > 0 {
		m.logger.Info("moved own cgroup's processes into a leaf so that program cgroups can have memory limits",
			"cgroup", path.Join(m.layout.own, supervisorLeaf), "pids", moved)
	}
	if err != nil {
		return err
	}
	m.prepared = true
	return nil
}

// libV2Ops does v2Ops with containerd/cgroups on the hierarchy of l.
type libV2Ops struct{ l layout }

func (o libV2Ops) load(p string) (*cgroup2.Manager, error) {
	rel, err := o.l.rel(p)
	if err != nil {
		return nil, err
	}
	return cgroup2.Load(rel, cgroup2.WithMountpoint(o.l.mount))
}

func (o libV2Ops) enableMemoryAbove(p string) error {
	m, err := o.load(p)
	if err != nil {
		return err
	}
	return m.ToggleControllers([]string{"memory"}, cgroup2.Enable)
}

func (o libV2Ops) mkdir(p string) error {
	m, err := o.load(path.Dir(p))
	if err != nil {
		return err
	}
	_, err = m.NewChild(path.Base(p), nil)
	return err
}

func (o libV2Ops) procs(p string) ([]int, error) {
	m, err := o.load(p)
	if err != nil {
		return nil, err
	}
	pids, err := m.Procs(false)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(pids))
	for i, pid := range pids {
		out[i] = int(pid)
	}
	return out, nil
}

func (o libV2Ops) addProc(p string, pid int) error {
	m, err := o.load(p)
	if err != nil {
		return err
	}
	return m.AddProc(uint64(pid))
}

// gone reports whether err means the cgroup no longer exists.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, cgroup1.ErrCgroupDeleted)
}

// RemoveParent removes the parent of the program cgroups if it is empty,
// as it is after a clean shutdown. It is left in place (and nil returned)
// while any program cgroup is still in it.
func (m *Manager) RemoveParent() error {
	dir, err := m.layout.dir(m.layout.parent)
	if err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
