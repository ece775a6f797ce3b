//go:build linux

package cgroup

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/containerd/cgroups/v3"
)

// Self locates the memory cgroup of the calling process: the cgroup a
// sidecar's container runs in, or the one of respawnd's service. Unlike a
// Manager it needs no write access and no particular mount point: the
// hierarchy is found in <procfs>/self/mountinfo, so it works where the
// cgroup filesystem is mounted read-only (a restricted pod) and inside a
// cgroup namespace, where the container's cgroup is "/" at the mount's
// root.
//
// A Self is safe for concurrent use.
type Self struct {
	procRoot string
	l        layout
}

// NewSelf finds the hierarchy that holds the memory controller for the
// calling process: the cgroup v1 memory hierarchy when /proc/self/cgroup
// lists the memory controller on one (legacy and hybrid hosts), else the
// cgroup v2 mount. procRoot is where procfs is mounted ("/proc"). The
// error wraps ErrNoMemoryController when neither is there.
func NewSelf(procRoot string) (*Self, error) {
	self, mi, err := readProcSelf(procRoot)
	if err != nil {
		return nil, err
	}
	l, err := selfLayout(self, mi)
	if err != nil {
		return nil, err
	}
	return &Self{procRoot: procRoot, l: l}, nil
}

// V2 reports whether the cgroup is on cgroup v2, where the OOM counters are
// in memory.events; on v1 they are in memory.oom_control.
func (s *Self) V2() bool { return s.l.v2 }

// Dir returns the directory of the calling process's memory cgroup. It
// reads /proc/self/cgroup at each call, so it follows a move of the
// process (respawnd moving itself into its supervisor leaf, for one).
func (s *Self) Dir() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.procRoot, "self", "cgroup"))
	if err != nil {
		return "", fmt.Errorf("reading own cgroup: %w", err)
	}
	p, err := selfPath(b, s.l.v2)
	if err != nil {
		return "", err
	}
	return s.l.dir(p)
}

// selfLayout picks the hierarchy of the memory controller from the contents
// of /proc/self/cgroup and /proc/self/mountinfo. A "memory" entry in
// /proc/self/cgroup means the controller is bound to a v1 hierarchy (a
// controller lives on one hierarchy only), so the v2 tree of a hybrid host
// is not used then.
func selfLayout(self, mountinfo []byte) (layout, error) {
	ps, err := parseProcSelf(self, mountinfo)
	if err != nil {
		return layout{}, err
	}
	if own, ok := ps.v1Paths["memory"]; ok {
		m, ok := v1MemoryMount("/", ps.mounts)
		if !ok {
			return layout{}, fmt.Errorf("%w: own cgroup has a memory entry but no cgroup v1 memory hierarchy is mounted", ErrNoMemoryController)
		}
		l := layout{mount: filepath.Clean(m.point), mountRoot: path.Clean(m.root), own: path.Clean(own)}
		return l, checkUnder(l)
	}
	if ps.unified == "" {
		return layout{}, fmt.Errorf("%w: own cgroup has neither a memory nor a cgroup v2 entry", ErrNoMemoryController)
	}
	own := path.Clean(ps.unified)
	for _, m := range ps.mounts {
		if m.fstype != "cgroup2" {
			continue
		}
		l := layout{v2: true, mount: filepath.Clean(m.point), mountRoot: path.Clean(m.root), own: own}
		if under(own, l.mountRoot) {
			return l, nil
		}
	}
	return layout{}, fmt.Errorf("%w: no cgroup2 mount holds own cgroup %s", ErrNoMemoryController, own)
}

func checkUnder(l layout) error {
	_, err := l.dir(l.own)
	return err
}

// selfPath returns the cgroup path of the memory controller's hierarchy in
// the contents of /proc/self/cgroup.
func selfPath(self []byte, v2 bool) (string, error) {
	v1Paths, unified, err := cgroups.ParseCgroupFromReaderUnified(bytes.NewReader(self))
	if err != nil {
		return "", fmt.Errorf("parsing own cgroup: %w", err)
	}
	if v2 {
		if unified == "" {
			return "", fmt.Errorf("%w: own cgroup has no cgroup v2 entry", ErrNoMemoryController)
		}
		return path.Clean(unified), nil
	}
	p, ok := v1Paths["memory"]
	if !ok {
		return "", fmt.Errorf("%w: own cgroup has no memory entry", ErrNoMemoryController)
	}
	return path.Clean(p), nil
}
