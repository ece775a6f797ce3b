package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

// respawnd exec as a sidecar in a restricted pod sees its program's OOM
// kills: it runs in a memory-limited cgroup (the container's), may create
// no cgroup of its own and has no kernel log, so the only evidence is the
// oom_kill counter of the cgroup it runs in (memory.events on cgroup v2,
// memory.oom_control on v1). An OOM kill is recorded oom_kill and the
// program restarted; a kill -9 of the next instance is a plain signal.
func TestExecSidecarOOMKillFromOwnCgroup(t *testing.T) {
	testenv.RequireRoot(t, "a memory-limited cgroup for respawnd")
	// The cgroup startRespawnd puts respawnd in, limited as a container
	// would be.
	cg := testCgroup(t)
	limitCgroup(t, cg, 64<<20)

	// The first instance allocates until the OOM killer strikes; the next
	// ones only sleep.
	dir := t.TempDir()
	marker := filepath.Join(dir, "hogged")
	script := `if [ -e "$0" ]; then exec ` + shellQuote(testenv.HelperArgv("sleep")) + `; fi; : > "$0"; exec ` + shellQuote(testenv.HelperArgv("hog"))
	d := startRespawnd(t,
		"--path.kmsg="+filepath.Join(dir, "no-kmsg"),
		// No cgroup filesystem where respawnd looks for one: it cannot
		// create program cgroups, as in a pod without cgroup delegation.
		"--path.sysfs="+filepath.Join(dir, "no-sysfs"),
		"exec", "--name=hog", "--restart.backoff-initial=10ms", "--",
		"/bin/sh", "-c", script, marker)

	src, _ := d.waitLog(0, map[string]any{"msg": "oom sources"})
	if src["kmsg"] != "down" || src["cgroup"] != "down" || src["own_cgroup"] != "up" {
		t.Fatalf("oom sources %v, want kmsg and cgroup down, own_cgroup up", src)
	}
	first, _ := runningPID(d, 0, "hog")
	e, next := d.waitLog(0, map[string]any{"msg": "exited", "program": "hog"})
	if e["reason"] != "oom_kill" || e["signal"] != "SIGKILL" || pidOf(e) != first {
		t.Fatalf("the OOM-killed program: %v, want reason oom_kill, signal SIGKILL, pid %d", e, first)
	}
	second, next := runningPID(d, next, "hog")
	if second == first {
		t.Fatalf("no new instance after the OOM kill (pid %d)", first)
	}
	p, ok := identify(second)
	if !ok {
		t.Fatalf("hog (pid %d) is gone", second)
	}
	p.kill()
	e, _ = d.waitLog(next, map[string]any{"msg": "exited", "program": "hog"})
	if e["reason"] != "signal" || e["signal"] != "SIGKILL" || pidOf(e) != second {
		t.Errorf("kill -9 of the next instance: %v, want reason signal, pid %d", e, second)
	}
	if exited, err := d.wait(0); exited {
		t.Fatalf("respawnd exited (%v): the OOM killer took it instead of its program", err)
	}
}

// limitCgroup sets a memory limit, and no swap, on the cgroup directory dir.
func limitCgroup(t *testing.T, dir string, limit int64) {
	t.Helper()
	lim := strconv.FormatInt(limit, 10)
	files := [][2]string{{"memory.limit_in_bytes", lim}, {"memory.memsw.limit_in_bytes", lim}}
	if _, err := os.Stat(filepath.Join(dir, "memory.max")); err == nil {
		files = [][2]string{{"memory.max", lim}, {"memory.swap.max", "0"}}
	}
	for i, f := range files {
		p := filepath.Join(dir, f[0])
		if _, err := os.Stat(p); i > 0 && err != nil {
			// No swap accounting (v1 memsw) or no swap controller: no
			// swap to limit.
			continue
		}
		if err := os.WriteFile(p, []byte(f[1]), 0); err != nil {
			t.Fatalf("limiting respawnd's cgroup: %v", err)
		}
	}
}
