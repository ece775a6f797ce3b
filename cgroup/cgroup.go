package cgroup

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// DefaultRoot is where the cgroup filesystem is mounted unless
// Config.Root says otherwise.
const DefaultRoot = "/sys/fs/cgroup"

const (
	// programsDir is the child of respawnd's own cgroup that holds the
	// program cgroups by default.
	programsDir = "programs"
	// supervisorLeaf is the leaf that respawnd moves its own processes into
	// on cgroup v2 (see the package documentation).
	supervisorLeaf = "supervisor"
)

// Limits are memory limits in bytes; nil means unset (unlimited).
type Limits struct {
	// Max is the hard limit: memory.max on v2, memory.limit_in_bytes on v1.
	Max *int64
	// High is the throttling limit: memory.high on v2. cgroup v1 has no
	// equivalent, so it is ignored there with a warning.
	High *int64
	// SwapMax limits swap use: memory.swap.max on v2. On v1 it becomes
	// memory.memsw.limit_in_bytes = Max + SwapMax when swap accounting is
	// on and Max is set; otherwise it is ignored with a warning.
	SwapMax *int64
}

func (l Limits) validate() error {
	for _, v := range []struct {
		name string
		v    *int64
	}{{"max", l.Max}, {"high", l.High}, {"swap_max", l.SwapMax}} {
		if v.v != nil && *v.v < 0 {
			return fmt.Errorf("%w: %s is %d", ErrInvalidLimit, v.name, *v.v)
		}
	}
	return nil
}

// Config configures a Manager. Zero values mean defaults.
type Config struct {
	// Root is where the cgroup filesystem is mounted; DefaultRoot if empty.
	Root string
	// Parent is the cgroup path, relative to the hierarchy root, under which
	// program cgroups are created (for example "/respawnd"). If empty they go
	// in "programs" below respawnd's own cgroup, as read from
	// /proc/self/cgroup.
	Parent string
	// Logger receives info messages about changes respawnd makes to its own
	// cgroup; nil discards them.
	Logger *slog.Logger
}

// Manager creates per-program memory cgroups. Its mode is detected once, by
// New: cgroup v2 (unified, with the memory controller) or cgroup v1 (the
// memory controller mounted, in legacy or hybrid mode).
//
// A Manager is safe for concurrent use.
type Manager struct {
	layout layout
	logger *slog.Logger
	sys    managerSys

	mu       sync.Mutex // guards prepared
	prepared bool       // the parent of program cgroups is ready
}

// V2 reports whether program cgroups are cgroup v2.
func (m *Manager) V2() bool { return m.layout.v2 }

// OwnDir returns the directory of respawnd's own cgroup on the hierarchy
// used for program cgroups.
func (m *Manager) OwnDir() (string, error) { return m.layout.dir(m.layout.own) }

// Parent returns the cgroup path, relative to the hierarchy root, that holds
// the program cgroups.
func (m *Manager) Parent() string { return m.layout.parent }

// Group is one program's memory cgroup, made by Manager.Create.
//
// A Group is safe for concurrent use. After Remove it no longer has a
// directory fd and its other methods report the cgroup as gone.
type Group struct {
	name string
	path string
	dir  string
	v2   bool
	sys  groupSys

	applyMu sync.Mutex // serialises limit writes

	mu       sync.Mutex // guards fd and warnings
	fd       int
	warnings []string

	peakMu   sync.Mutex // guards peakFile and peakOK
	peakFile *os.File   // memory.peak on v2, kept open for its per-fd reset
	peakOK   bool       // the last ResetPeak took effect

	memMu sync.Mutex // guards mem
	mem   memFiles   // opened on first use (Linux)

	limitMu sync.Mutex // guards limit and limitOK
	limit   uint64     // the hard limit in force, read back after each apply
	limitOK bool
}

// Name returns the program name the group was created for.
func (g *Group) Name() string { return g.name }

// Path returns the group's path inside the hierarchy, relative to its root,
// as the kernel prints memcg paths in OOM reports (for example
// /system.slice/respawnd.service/programs/api).
func (g *Group) Path() string { return g.path }

// Dir returns the group's directory on the cgroup filesystem.
func (g *Group) Dir() string { return g.dir }

// FD returns an open O_DIRECTORY fd of the group for clone3 with
// CLONE_INTO_CGROUP (SysProcAttr.UseCgroupFD) on v2, and -1 on v1 or after
// Remove. The Group owns the fd and closes it in Remove; callers must not
// close it.
func (g *Group) FD() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fd
}

// Procs returns the cgroup.procs files a child writes its pid to in order to
// join the group before exec on v1. It is nil on v2, where FD is used.
func (g *Group) Procs() []string {
	if g.v2 {
		return nil
	}
	return []string{filepath.Join(g.dir, "cgroup.procs")}
}

// Warnings returns the limits that the last Create or Update could not
// apply in this mode (for example High on cgroup v1), one message each. They
// are not errors: the other limits were applied.
func (g *Group) Warnings() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.warnings...)
}

func (g *Group) setWarnings(w []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.warnings = w
}

// validName reports whether name can be a cgroup directory name.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\n") {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}
