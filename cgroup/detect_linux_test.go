package cgroup

import (
	"errors"
	"strings"
	"testing"
)

// Inputs in the shape of /proc/self/cgroup and /proc/self/mountinfo on the
// host kinds respawnd runs on.
const (
	hybridSelf = `9:name=systemd:/system.slice/respawnd.service
5:devices:/system.slice/respawnd.service
4:memory:/system.slice/respawnd.service
2:cpu,cpuacct:/system.slice/respawnd.service
0::/system.slice/respawnd.service
`
	hybridMounts = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	unifiedSelf   = "0::/system.slice/respawnd.service\n"
	unifiedMounts = "29 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
	// A docker container on a v1 host without a cgroup namespace: the
	// container's cgroup is mounted as the hierarchy root.
	dockerV1Self   = "4:memory:/docker/0123abcd\n1:name=systemd:/docker/0123abcd\n"
	dockerV1Mounts = "700 690 0:31 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
)

func controllersAre(s string) func(string) (string, error) {
	return func(string) (string, error) { return s, nil }
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name          string
		mode          mode
		parent        string
		self, mounts  string
		controllers   string
		want          layout
		wantParentDir string
	}{
		{
			name: "hybrid uses v1 memory", mode: modeHybrid, self: hybridSelf, mounts: hybridMounts,
			want: layout{mount: "/sys/fs/cgroup/memory", mountRoot: "/", own: "/system.slice/respawnd.service",
				parent: "/system.slice/respawnd.service/programs"},
			wantParentDir: "/sys/fs/cgroup/memory/system.slice/respawnd.service/programs",
		},
		{
			name: "legacy with parent", mode: modeLegacy, parent: "respawnd-test", self: hybridSelf, mounts: hybridMounts,
			want: layout{mount: "/sys/fs/cgroup/memory", mountRoot: "/", own: "/system.slice/respawnd.service",
				parent: "/respawnd-test"},
			wantParentDir: "/sys/fs/cgroup/memory/respawnd-test",
		},
		{
			name: "unified", mode: modeUnified, self: unifiedSelf, mounts: unifiedMounts, controllers: "cpuset cpu io memory pids\n",
			want: layout{v2: true, mount: "/sys/fs/cgroup", mountRoot: "/", own: "/system.slice/respawnd.service",
				parent: "/system.slice/respawnd.service/programs"},
			wantParentDir: "/sys/fs/cgroup/system.slice/respawnd.service/programs",
		},
		{
			name: "unified, already in the supervisor leaf", mode: modeUnified,
			self: "0::/system.slice/respawnd.service/supervisor\n", mounts: unifiedMounts, controllers: "memory",
			want: layout{v2: true, mount: "/sys/fs/cgroup", mountRoot: "/", own: "/system.slice/respawnd.service",
				parent: "/system.slice/respawnd.service/programs"},
			wantParentDir: "/sys/fs/cgroup/system.slice/respawnd.service/programs",
		},
		{
			name: "unified in a cgroup namespace", mode: modeUnified, self: "0::/\n", mounts: unifiedMounts, controllers: "memory pids",
			want:          layout{v2: true, mount: "/sys/fs/cgroup", mountRoot: "/", own: "/", parent: "/programs"},
			wantParentDir: "/sys/fs/cgroup/programs",
		},
		{
			name: "docker on v1", mode: modeLegacy, self: dockerV1Self, mounts: dockerV1Mounts,
			want: layout{mount: "/sys/fs/cgroup/memory", mountRoot: "/docker/0123abcd", own: "/docker/0123abcd",
				parent: "/docker/0123abcd/programs"},
			wantParentDir: "/sys/fs/cgroup/memory/programs",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := detectFrom("/sys/fs/cgroup", c.parent, c.mode, []byte(c.self), []byte(c.mounts), controllersAre(c.controllers))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("layout\n got %+v\nwant %+v", got, c.want)
			}
			if dir, err := got.dir(got.parent); err != nil || dir != c.wantParentDir {
				t.Errorf("parent dir = %q, %v; want %q", dir, err, c.wantParentDir)
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	for _, c := range []struct {
		name         string
		mode         mode
		self, mounts string
		controllers  string
		want         string // part of the message saying why
	}{
		{"unavailable", modeUnavailable, "", "", "", "no cgroup filesystem mounted at /sys/fs/cgroup"},
		{"unified without memory", modeUnified, unifiedSelf, unifiedMounts, "cpu pids\n", "does not offer the memory controller"},
		{"unified without own entry", modeUnified, "1:name=systemd:/\n", unifiedMounts, "memory", "no cgroup v2 entry"},
		{"hybrid without v1 memory", modeHybrid, unifiedSelf,
			"40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", "", "no cgroup v1 hierarchy has the memory controller"},
		{"v1 memory co-mounted", modeLegacy, hybridSelf,
			"31 30 0:28 / /sys/fs/cgroup/cpu,memory rw - cgroup cgroup rw,cpu,memory\n", "", "not in a directory named memory"},
		{"v1 own cgroup outside the mount", modeLegacy, "4:memory:/elsewhere\n", dockerV1Mounts, "", "outside the hierarchy"},
		{"bad own cgroup", modeLegacy, "garbage\n", hybridMounts, "", "parsing own cgroup"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := detectFrom("/sys/fs/cgroup", "", c.mode, []byte(c.self), []byte(c.mounts), controllersAre(c.controllers))
			if !errors.Is(err, ErrNoMemoryController) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("detect = %v; want ErrNoMemoryController saying %q", err, c.want)
			}
		})
	}
}
