package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// mode is the cgroup mode of the host, as containerd/cgroups reports it.
type mode int

const (
	modeUnavailable mode = iota
	modeLegacy
	modeHybrid
	modeUnified
)

func (m mode) String() string {
	switch m {
	case modeLegacy:
		return "legacy"
	case modeHybrid:
		return "hybrid"
	case modeUnified:
		return "unified"
	}
	return "unavailable"
}

// mount is one line of /proc/self/mountinfo, reduced to what we need.
type mount struct {
	root      string   // cgroup path mounted (field 4)
	point     string   // mount point (field 5)
	fstype    string   // after the " - " separator
	superOpts []string // super block options: the v1 controllers
}

// parseMountInfo parses /proc/self/mountinfo (proc(5)). Lines that do not
// have the separator are skipped rather than failing the whole read.
func parseMountInfo(b []byte) ([]mount, error) {
	var out []mount
	s := bufio.NewScanner(bytes.NewReader(b))
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for s.Scan() {
		f := strings.Fields(s.Text())
		sep := slices.Index(f, "-")
		if sep < 5 || len(f) < sep+4 {
			continue
		}
		out = append(out, mount{
			root:      unescapeOctal(f[3]),
			point:     unescapeOctal(f[4]),
			fstype:    f[sep+1],
			superOpts: strings.Split(f[sep+3], ","),
		})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("parsing mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes the \ooo escapes the kernel uses for space, tab,
// newline and backslash in mountinfo paths (fs/proc_namespace.c mangle).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detectInput is everything mode detection looks at, so that tests can
// inject it.
type detectInput struct {
	root   string // Config.Root
	parent string // Config.Parent
	mode   mode
	// v1Paths and unified are /proc/self/cgroup: controller → path for v1
	// hierarchies and the "0::" path.
	v1Paths map[string]string
	unified string
	mounts  []mount
	// controllers returns the contents of cgroup.controllers in a v2
	// directory.
	controllers func(dir string) (string, error)
}

// layout says where program cgroups live.
type layout struct {
	v2        bool
	mount     string // mount point of the hierarchy used
	mountRoot string // cgroup path mounted there, usually "/"
	own       string // respawnd's own cgroup
	parent    string // parent of the program cgroups
}

// detect chooses the hierarchy for program cgroups: cgroup v2 when the host
// is unified with the memory controller available, the v1 memory hierarchy
// in legacy or hybrid mode. Hybrid hosts keep the memory controller on v1
// (a controller is bound to one hierarchy), so their v2 tree is not used.
func detect(in detectInput) (layout, error) {
	root := filepath.Clean(in.root)
	var l layout
	switch in.mode {
	case modeUnified:
		c, err := in.controllers(root)
		if err != nil {
			return layout{}, fmt.Errorf("%w: reading controllers of cgroup v2 at %s: %w", ErrNoMemoryController, root, err)
		}
		if !slices.Contains(strings.Fields(c), "memory") {
			return layout{}, fmt.Errorf("%w: cgroup v2 at %s does not offer the memory controller (cgroup.controllers: %q)", ErrNoMemoryController, root, strings.TrimSpace(c))
		}
		if in.unified == "" {
			return layout{}, fmt.Errorf("%w: /proc/self/cgroup has no cgroup v2 entry", ErrNoMemoryController)
		}
		l = layout{v2: true, mount: root, mountRoot: "/", own: path.Clean(in.unified)}
		for _, m := range in.mounts {
			if m.fstype == "cgroup2" && filepath.Clean(m.point) == root {
				l.mountRoot = path.Clean(m.root)
			}
		}
		// A respawnd that finds itself in the supervisor leaf was put there
		// by an earlier respawnd or by systemd's DelegateSubgroup=; its
		// cgroup proper is the leaf's parent.
		if in.parent == "" && path.Base(l.own) == supervisorLeaf {
			l.own = path.Dir(l.own)
		}
	case modeLegacy, modeHybrid:
		m, ok := v1MemoryMount(root, in.mounts)
		if !ok {
			return layout{}, fmt.Errorf("%w: cgroup %s mode but no cgroup v1 hierarchy has the memory controller mounted", ErrNoMemoryController, in.mode)
		}
		// cgroup1.NewMemory addresses the hierarchy as <dir>/memory.
		if filepath.Base(m.point) != "memory" {
			return layout{}, fmt.Errorf("%w: cgroup v1 memory hierarchy is mounted at %s, not in a directory named memory", ErrNoMemoryController, m.point)
		}
		own, ok := in.v1Paths["memory"]
		if !ok {
			return layout{}, fmt.Errorf("%w: /proc/self/cgroup has no memory entry", ErrNoMemoryController)
		}
		l = layout{mount: filepath.Clean(m.point), mountRoot: path.Clean(m.root), own: path.Clean(own)}
	default:
		return layout{}, fmt.Errorf("%w: no cgroup filesystem mounted at %s", ErrNoMemoryController, root)
	}
	if in.parent != "" {
		l.parent = path.Clean("/" + in.parent)
	} else {
		l.parent = path.Join(l.own, programsDir)
	}
	if _, err := l.dir(l.parent); err != nil {
		return layout{}, err
	}
	return l, nil
}

// v1MemoryMount finds the cgroup v1 mount with the memory controller,
// preferring one below root.
func v1MemoryMount(root string, mounts []mount) (mount, bool) {
	var found []mount
	for _, m := range mounts {
		if m.fstype == "cgroup" && slices.Contains(m.superOpts, "memory") {
			found = append(found, m)
		}
	}
	for _, m := range found {
		if under(filepath.Clean(m.point), root) {
			return m, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return mount{}, false
}

// under reports whether p is base or below it; both are clean paths.
func under(p, base string) bool {
	return p == base || base == "/" || strings.HasPrefix(p, base+"/")
}

// rel returns the path of cgroup p relative to the mounted cgroup.
func (l layout) rel(p string) (string, error) {
	if !under(p, l.mountRoot) {
		return "", fmt.Errorf("%w: cgroup %s is outside the hierarchy mounted at %s (%s)", ErrNoMemoryController, p, l.mount, l.mountRoot)
	}
	return path.Join("/", strings.TrimPrefix(p, l.mountRoot)), nil
}

// dir returns the directory of cgroup p on the filesystem.
func (l layout) dir(p string) (string, error) {
	r, err := l.rel(p)
	if err != nil {
		return "", err
	}
	return filepath.Join(l.mount, r), nil
}

// ownChildToward returns the child of own on the way to parent, or "" when
// parent is not strictly below own. Enabling the memory controller for that
// child is what touches own's cgroup.subtree_control.
func ownChildToward(own, parent string) string {
	if parent == own || !under(parent, own) {
		return ""
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(parent, own), "/")
	first, _, _ := strings.Cut(rest, "/")
	return path.Join(own, first)
}

// needLeafMove decides whether respawnd must move its own processes into the
// supervisor leaf: enabling the memory controller in own's
// cgroup.subtree_control failed with EBUSY, which is cgroup v2's "no
// internal processes" rule (Documentation/admin-guide/cgroup-v2.rst). The
// root cgroup is exempt from the rule, and a namespace root ("/") must not
// be emptied, so never then.
func needLeafMove(own string, enableErr error) bool {
	return own != "/" && errors.Is(enableErr, syscall.EBUSY)
}

// v2Ops is the cgroupfs access that preparing a v2 parent needs; cgroup
// paths are relative to the hierarchy root.
type v2Ops interface {
	// enableMemoryAbove writes +memory to cgroup.subtree_control of every
	// ancestor of p (not p itself); the error is that of the lowest one.
	enableMemoryAbove(p string) error
	// mkdir creates cgroup p if it does not exist.
	mkdir(p string) error
	// procs lists the pids in cgroup p itself (not its children).
	procs(p string) ([]int, error)
	// addProc moves the process pid into cgroup p.
	addProc(p string, pid int) error
}

// moveRounds bounds how often the leaf move re-reads own's cgroup.procs:
// processes forked meanwhile land in own and need another round.
const moveRounds = 20

// prepareV2 makes sure program cgroups below l.parent can get the memory
// controller. When l.parent is below respawnd's own cgroup and own holds
// processes, v2 refuses to enable controllers in own's subtree, so those
// processes (respawnd and anything else in its cgroup) first move to the
// leaf own/supervisor. It returns the pids it moved.
func prepareV2(l layout, ops v2Ops) ([]int, error) {
	child := ownChildToward(l.own, l.parent)
	if child == "" {
		return nil, nil // nothing of ours to change; Create enables the rest
	}
	err := ops.enableMemoryAbove(child)
	if err == nil {
		return nil, nil
	}
	if !needLeafMove(l.own, err) {
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("enabling memory controller in %s: respawnd's cgroup is the root of its cgroup namespace and holds processes; set a parent cgroup outside it: %w", l.own, err)
		}
		return nil, fmt.Errorf("enabling memory controller in %s: %w", l.own, asPermission(err))
	}
	leaf := path.Join(l.own, supervisorLeaf)
	if err := ops.mkdir(leaf); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", leaf, asPermission(err))
	}
	var moved []int
	for range moveRounds {
		pids, err := ops.procs(l.own)
		if err != nil {
			return moved, fmt.Errorf("listing processes of cgroup %s: %w", l.own, err)
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if err := ops.addProc(leaf, pid); err != nil {
				if errors.Is(err, syscall.ESRCH) {
					continue // exited meanwhile
				}
				return moved, fmt.Errorf("moving pid %d into cgroup %s: %w", pid, leaf, asPermission(err))
			}
			moved = append(moved, pid)
		}
	}
	if err := ops.enableMemoryAbove(child); err != nil {
		return moved, fmt.Errorf("enabling memory controller in %s after moving respawnd to %s: %w", l.own, leaf, asPermission(err))
	}
	return moved, nil
}

// v2Plan is what Create and Update write on cgroup v2.
type v2Plan struct {
	max, high, swap *int64   // values to write
	unset           []string // files to reset to "max"
	warnings        []string
}

// planV2 maps limits to v2 files. Unset limits are written as "max" so that
// Update can lift them. memory.swap.max exists only with swap accounting.
func planV2(l Limits, haveSwap bool) v2Plan {
	p := v2Plan{max: l.Max, high: l.High}
	if l.Max == nil {
		p.unset = append(p.unset, "memory.max")
	}
	if l.High == nil {
		p.unset = append(p.unset, "memory.high")
	}
	switch {
	case !haveSwap && l.SwapMax != nil:
		p.warnings = append(p.warnings, "swap_max ignored: swap accounting is off (no memory.swap.max)")
	case !haveSwap:
	case l.SwapMax == nil:
		p.unset = append(p.unset, "memory.swap.max")
	default:
		p.swap = l.SwapMax
	}
	return p
}

// v1Unlimited is what v1 memory.limit_in_bytes and friends accept to mean
// no limit.
const v1Unlimited = -1

// v1Plan is what Create and Update write on cgroup v1.
type v1Plan struct {
	limit    int64  // memory.limit_in_bytes
	memsw    *int64 // memory.memsw.limit_in_bytes; nil without swap accounting
	warnings []string
}

// planV1 maps limits to v1 files. memsw limits memory plus swap, so it is
// Max + SwapMax; with no Max it cannot express a swap limit.
func planV1(l Limits, haveMemsw bool) v1Plan {
	p := v1Plan{limit: v1Unlimited}
	if l.Max != nil {
		p.limit = *l.Max
	}
	if l.High != nil {
		p.warnings = append(p.warnings, "high ignored: cgroup v1 has no equivalent of memory.high")
	}
	if !haveMemsw {
		if l.SwapMax != nil {
			p.warnings = append(p.warnings, "swap_max ignored: swap accounting is off (no memory.memsw.limit_in_bytes)")
		}
		return p
	}
	memsw := int64(v1Unlimited)
	switch {
	case l.SwapMax != nil && l.Max == nil:
		p.warnings = append(p.warnings, "swap_max ignored: cgroup v1 can only limit swap together with max")
	case l.SwapMax != nil:
		memsw = *l.Max + *l.SwapMax
	}
	p.memsw = &memsw
	return p
}

// memswFirst reports whether memsw must be written before limit_in_bytes:
// v1 insists that limit_in_bytes <= memsw.limit_in_bytes at every moment
// (mm/memcontrol-v1.c mem_cgroup_resize_max returns EINVAL otherwise), so a
// limit above the current memsw needs memsw raised first. curMemsw is the
// value read from the file, where unlimited shows as a huge page multiple.
func memswFirst(newLimit int64, curMemsw uint64, pageSize int) bool {
	if newLimit < 0 {
		return !v1IsUnlimited(curMemsw, pageSize)
	}
	return uint64(newLimit) > curMemsw
}

// v1IsUnlimited reports whether a v1 limit read back means unlimited: the
// kernel shows PAGE_COUNTER_MAX pages, (LONG_MAX / PAGE_SIZE) * PAGE_SIZE
// bytes.
func v1IsUnlimited(v uint64, pageSize int) bool {
	ps := uint64(pageSize)
	return v >= (uint64(1<<63-1)/ps)*ps
}

// parseLimit parses a limit file: v2 memory.max ("max" or bytes) or v1
// memory.limit_in_bytes. ok is false when unlimited.
func parseLimit(b []byte, pageSize int) (limit uint64, ok bool, err error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parsing limit %q: %w", s, err)
	}
	if v1IsUnlimited(v, pageSize) {
		return 0, false, nil
	}
	return v, true, nil
}

// parseUint parses a file holding one unsigned number, such as
// memory.current.
func parseUint(b []byte) (uint64, error) {
	// The conversion is for the call only: a scrape parses a file of
	// every program with it, and must not allocate.
	b = bytes.TrimSpace(b)
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %q: %w", b, err)
	}
	return v, nil
}
