//go:build linux

package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

func TestSelfLayout(t *testing.T) {
	const (
		v1Mounts = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`
		hybridMounts = v1Mounts + `40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
		// A container with its own cgroup namespace (Kubernetes on cgroup
		// v2): its cgroup is the mount's root.
		nsMounts = `1271 1262 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw
`
		// Docker on cgroup v1 without a cgroup namespace: the host path
		// of the container's cgroup is mounted at the hierarchy's point.
		dockerMounts = `700 690 0:31 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
`
	)
	for _, tc := range []struct {
		name, self, mounts string
		wantDir            string
		wantV2             bool
	}{
		{"v1 host", "4:memory:/process_api/x\n0::/\n", v1Mounts, "/sys/fs/cgroup/memory/process_api/x", false},
		{"hybrid host uses the v1 memory hierarchy", "4:memory:/system.slice/a.service\n0::/system.slice/a.service\n", hybridMounts, "/sys/fs/cgroup/memory/system.slice/a.service", false},
		{"v2 in a cgroup namespace", "0::/\n", nsMounts, "/sys/fs/cgroup", true},
		{"v2 after the move into the supervisor leaf", "0::/supervisor\n", nsMounts, "/sys/fs/cgroup/supervisor", true},
		{"v1 container without a cgroup namespace", "4:memory:/docker/abc\n", dockerMounts, "/sys/fs/cgroup/memory", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := selfLayout([]byte(tc.self), []byte(tc.mounts))
			if err != nil {
				t.Fatal(err)
			}
			p, err := selfPath([]byte(tc.self), l.v2)
			if err != nil {
				t.Fatal(err)
			}
			dir, err := l.dir(p)
			if err != nil {
				t.Fatal(err)
			}
			if dir != tc.wantDir || l.v2 != tc.wantV2 {
				t.Errorf("dir %s v2 %v, want %s v2 %v", dir, l.v2, tc.wantDir, tc.wantV2)
			}
		})
	}
}

func TestSelfLayoutErrors(t *testing.T) {
	for _, tc := range []struct{ name, self, mounts string }{
		{"no memory hierarchy mounted", "4:memory:/a\n", "30 22 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"},
		{"no cgroup2 mount", "0::/a\n", "30 22 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"},
		{"own cgroup outside the mounted subtree", "4:memory:/other\n", "700 690 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := selfLayout([]byte(tc.self), []byte(tc.mounts)); !errors.Is(err, ErrNoMemoryController) {
				t.Errorf("err %v, want ErrNoMemoryController", err)
			}
		})
	}
}

// On this host, Self finds the directory of the test's own memory cgroup,
// with the counter file of its version.
func TestSelfOnThisHost(t *testing.T) {
	s, err := NewSelf("/proc")
	if errors.Is(err, ErrNoMemoryController) {
		testenv.Skip(t, "no memory controller here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir, err := s.Dir()
	if err != nil {
		t.Fatal(err)
	}
	file := "memory.oom_control"
	if s.V2() {
		file = "memory.events"
	}
	if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
		t.Errorf("own cgroup %s: %v", dir, err)
	}
}
