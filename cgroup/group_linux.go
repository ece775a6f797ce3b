package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

const (
	// killTimeout bounds how long KillAll waits for the group to empty.
	killTimeout = 5 * time.Second
	// removeTimeout bounds how long Remove retries rmdir while the kernel
	// finishes tearing down the killed processes.
	removeTimeout = 5 * time.Second
	// pollInterval is the pause between checks of a group's processes.
	pollInterval = 10 * time.Millisecond
)

// groupSys is the Linux part of a Group: exactly one of v1 and v2 is set.
type groupSys struct {
	v1       cgroup1.Cgroup
	v2       *cgroup2.Manager
	pageSize int
}

// maxControlFile is more than any control file respawnd reads holds:
// cgroup.procs of pid_max (4,194,304) processes is 32 MiB. Buffers grow
// only as far as the file.
const maxControlFile = 32 << 20

// apply writes l and records the warnings. Calls are serialised: v1 writes
// two files in an order that depends on what is there.
func (g *Group) apply(l Limits) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	defer g.readLimit()
	if g.v2 {
		return g.applyV2(l)
	}
	return g.applyV1(l)
}

func (g *Group) applyV2(l Limits) error {
	p := planV2(l, g.exists("memory.swap.max"))
	err := g.sys.v2.Update(&cgroup2.Resources{Memory: &cgroup2.Memory{Max: p.max, High: p.high, Swap: p.swap}})
	if err != nil {
		return fmt.Errorf("setting memory limits: %w", asPermission(err))
	}
	// cgroup2.Memory only writes numbers, and the kernel spells "no limit"
	// as "max" (page_counter_memparse); -1 is rejected.
	for _, f := range p.unset {
		if err := pseudofs.Write(filepath.Join(g.dir, f), []byte("max")); err != nil {
			return fmt.Errorf("lifting memory limit: %w", asPermission(err))
		}
	}
	g.setWarnings(p.warnings)
	return nil
}

func (g *Group) applyV1(l Limits) error {
	p := planV1(l, g.exists("memory.memsw.limit_in_bytes"))
	limit := func() error {
		return g.sys.v1.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &p.limit}})
	}
	steps := []func() error{limit}
	if p.memsw != nil {
		b, err := pseudofs.Read(filepath.Join(g.dir, "memory.memsw.limit_in_bytes"), maxControlFile)
		if err != nil {
			return fmt.Errorf("reading memory+swap limit: %w", err)
		}
		cur, err := parseUint(b)
		if err != nil {
			return fmt.Errorf("reading memory+swap limit: %w", err)
		}
		// One value per Update call, in an order the kernel accepts:
		// cgroup1's own reordering only covers raising both limits.
		memsw := func() error {
			return g.sys.v1.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: p.memsw}})
		}
		if memswFirst(p.limit, cur, g.sys.pageSize) {
			steps = []func() error{memsw, limit}
		} else {
			steps = append(steps, memsw)
		}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("setting memory limits: %w", asPermission(err))
		}
	}
	g.setWarnings(p.warnings)
	return nil
}

func (g *Group) exists(file string) bool {
	_, err := os.Stat(filepath.Join(g.dir, file))
	return err == nil
}

// Update changes the group's limits, for example on reload. Limits the mode
// cannot apply are reported by Warnings.
func (g *Group) Update(l Limits) error {
	if err := l.validate(); err != nil {
		return err
	}
	if err := g.apply(l); err != nil {
		return fmt.Errorf("updating cgroup %s: %w", g.path, err)
	}
	return nil
}

// Usage returns the group's memory use in bytes: memory.current on v2,
// memory.usage_in_bytes on v1.
func (g *Group) Usage() (uint64, error) {
	// One small file; the libraries' Stat reads a dozen and, on v2, turns
	// read errors into zeros.
	file := "memory.usage_in_bytes"
	if g.v2 {
		file = "memory.current"
	}
	b, err := pseudofs.Read(filepath.Join(g.dir, file), maxControlFile)
	if err != nil {
		return 0, fmt.Errorf("reading memory usage of cgroup %s: %w", g.path, err)
	}
	v, err := parseUint(b)
	if err != nil {
		return 0, fmt.Errorf("reading memory usage of cgroup %s: %w", g.path, err)
	}
	return v, nil
}

// Limit returns the group's own hard limit (memory.max on v2,
// memory.limit_in_bytes on v1) as the kernel took it (rounded to pages),
// read back once after each Create or Update, so a scrape reads no file.
// ok is false when the group has no limit or it could not be read.
func (g *Group) Limit() (limit uint64, ok bool) {
	g.limitMu.Lock()
	defer g.limitMu.Unlock()
	return g.limit, g.limitOK
}

// readLimit reads the hard limit in force into the cache Limit returns.
func (g *Group) readLimit() {
	file := "memory.limit_in_bytes"
	if g.v2 {
		file = "memory.max"
	}
	var limit uint64
	ok := false
	if b, err := pseudofs.Read(filepath.Join(g.dir, file), maxControlFile); err == nil {
		if l, isSet, err := parseLimit(b, g.sys.pageSize); err == nil {
			limit, ok = l, isSet
		}
	}
	g.limitMu.Lock()
	g.limit, g.limitOK = limit, ok
	g.limitMu.Unlock()
}

// PIDs lists the processes in the group and any cgroups below it.
func (g *Group) PIDs() ([]int, error) {
	pids, err := procsUnder(g.dir, nil)
	if err != nil {
		return nil, fmt.Errorf("listing processes of cgroup %s: %w", g.path, err)
	}
	return pids, nil
}

// procsUnder appends to pids the processes listed in dir's cgroup.procs and
// in that of every cgroup below it. It reads one file and one directory
// listing per cgroup: the libraries' recursive listings walk the tree with
// an lstat of every control file (some thirty per memory cgroup), which made
// the check for leftovers before each start cost more than the start's
// cgroup set-up. A child cgroup that goes away during the walk is skipped;
// dir itself missing is an fs.ErrNotExist error.
func procsUnder(dir string, pids []int) ([]int, error) {
	b, err := pseudofs.Read(filepath.Join(dir, "cgroup.procs"), maxControlFile)
	if err != nil {
		return pids, err
	}
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		pid, err := strconv.Atoi(string(line))
		if err != nil || pid <= 0 {
			return pids, fmt.Errorf("reading %s: bad pid %q", filepath.Join(dir, "cgroup.procs"), line)
		}
		pids = append(pids, pid)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return pids, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		pids, err = procsUnder(filepath.Join(dir, e.Name()), pids)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return pids, err
		}
	}
	return pids, nil
}

// KillAll SIGKILLs every process in the group and waits, for a few seconds
// at most, until none is left. On v2 with cgroup.kill (Linux 5.14) the
// kernel kills the whole subtree at once, forks included; otherwise every
// listed pid is signalled (never a pid reused by a process outside the
// group: see Signal), again until the list is empty. Zombies are not
// listed, so callers still reap their own children. A group that no longer
// exists counts as empty.
func (g *Group) KillAll() error {
	// cgroup2.Manager.Kill is not used: when the cgroup.kill write fails it
	// falls back to waiting for the processes, which would reap children
	// whose exit status belongs to the launcher.
	useKillFile := g.v2 && g.exists("cgroup.kill")
	if useKillFile {
		if err := pseudofs.Write(filepath.Join(g.dir, "cgroup.kill"), []byte("1")); err != nil {
			if gone(err) {
				return nil
			}
			return fmt.Errorf("killing processes of cgroup %s: %w", g.path, err)
		}
	}
	deadline := time.Now().Add(killTimeout)
	for {
		pids, err := g.PIDs()
		if err != nil {
			if gone(err) {
				return nil
			}
			return fmt.Errorf("killing processes: %w", err)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("killing processes of cgroup %s: %d still there after %s: %v", g.path, len(pids), killTimeout, pids)
		}
		if !useKillFile {
			for _, pid := range pids {
				if err := g.signalMember(pid, unix.SIGKILL); err != nil {
					return fmt.Errorf("killing processes of cgroup %s: %w", g.path, err)
				}
			}
		}
		time.Sleep(pollInterval)
	}
}

// Remove kills what is left in the group, removes its directory (retrying
// briefly while the kernel tears the processes down) and closes FD. A group
// that is already gone is not an error.
func (g *Group) Remove() error {
	defer g.closeFD()
	defer g.closePeak()
	defer g.closeMem()
	if err := g.KillAll(); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", g.path, err)
	}
	deadline := time.Now().Add(removeTimeout)
	for {
		var err error
		if g.v2 {
			err = g.sys.v2.Delete()
		} else {
			err = g.sys.v1.Delete()
		}
		if err == nil || gone(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s: %w", g.path, err)
		}
		time.Sleep(pollInterval)
	}
}

func (g *Group) closeFD() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd >= 0 {
		_ = unix.Close(g.fd) // a close error leaves nothing to undo
		g.fd = -1
	}
}
