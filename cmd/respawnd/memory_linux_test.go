package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

// programCgroupDir is the directory of a program's cgroup, from the path
// its status reports.
func programCgroupDir(t *testing.T, path string) (string, bool) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return filepath.Join("/sys/fs/cgroup", path), true
	}
	return filepath.Join("/sys/fs/cgroup/memory", path), false
}

// A program whose memory grows past its recycle threshold gets its stop
// signal (it writes a marker on SIGTERM) and starts again, and the kernel
// never OOM-kills it; the same program without recycle is OOM-killed.
func TestRecycleBeforeTheOOMKiller(t *testing.T) {
	testenv.NewMemoryCgroup(t, 64<<20) // probes that memory cgroups work here
	for _, tc := range []struct {
		name    string
		recycle string
	}{
		{"recycle", "recycle: {above: 60%, for: 1s}"},
		{"no recycle", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "marker")
			cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: grower
    command: %s
    memory: {max: 256MiB, swap_max: 0, %s}
    stop: {timeout: 10s}
`, helperCommand("grow", "4", "100ms", marker), tc.recycle))
			stateDir := filepath.Join(dir, "state")
			d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
			l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
			addr, _ := l["address"].(string)
			_, mark := runningPID(d, 0, "grower")
			st := programStatus(t, stateDir, "grower")
			cgDir, v2 := programCgroupDir(t, st.Cgroup)

			if tc.recycle == "" {
				d.waitLog(mark, map[string]any{"msg": "exited", "program": "grower", "reason": "oom_kill"})
				if b, _ := os.ReadFile(marker); len(b) != 0 {
					t.Errorf("without recycle the program got a stop signal: %q", b)
				}
				return
			}
			e, mark := d.waitLog(mark, map[string]any{"msg": "exited", "program": "grower"})
			if e["reason"] != "memory_recycle" {
				t.Fatalf("first exit %v, want reason memory_recycle", e)
			}
			d.waitLog(mark, map[string]any{"msg": "state changed", "program": "grower", "state": "running", "generation": float64(2)})
			if b, _ := os.ReadFile(marker); !strings.HasPrefix(string(b), "term ") {
				t.Errorf("marker %q: the recycled instance did not get SIGTERM", b)
			}
			c, err := oom.ReadCgroupCounts(cgDir, v2)
			if err != nil {
				t.Fatal(err)
			}
			if c.OOMKill != 0 {
				t.Errorf("the cgroup's oom_kill counter is %d, want 0: the recycle came too late", c.OOMKill)
			}
			m := scrape(t, addr)
			if v := m["respawnd_program_memory_recycles_total"][`program="grower"`]; v != 1 {
				t.Errorf("respawnd_program_memory_recycles_total = %v, want 1", v)
			}
			if v := m["respawnd_program_oom_kills_total"][`program="grower"`]; v != 0 {
				t.Errorf("respawnd_program_oom_kills_total = %v, want 0", v)
			}
			if v := m["respawnd_program_memory_recycle_bytes"][`program="grower"`]; v != math.Floor(float64(256<<20)*0.6) {
				t.Errorf("respawnd_program_memory_recycle_bytes = %v, want 60%% of 256 MiB", v)
			}
		})
	}
}

// A program that outgrows its limit faster than its stop is OOM-killed:
// the exit stays oom_kill, flagged as during a recycle.
func TestOOMKillDuringRecycle(t *testing.T) {
	testenv.NewMemoryCgroup(t, 64<<20)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: spiker
    command: %s
    memory: {max: 256MiB, swap_max: 0, recycle: {above: 50%%, for: 0s}}
    stop: {timeout: 30s}
`, helperCommand("spike-on-term", "160", marker)))
	stateDir := filepath.Join(dir, "state")
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	_, mark := runningPID(d, 0, "spiker")
	e, _ := d.waitLog(mark, map[string]any{"msg": "exited", "program": "spiker"})
	if e["reason"] != "oom_kill" {
		t.Fatalf("exit %v, want oom_kill", e)
	}
	if b, _ := os.ReadFile(marker); !strings.HasPrefix(string(b), "term ") {
		t.Fatalf("marker %q: the recycle's stop signal never came", b)
	}
	st := programStatus(t, stateDir, "spiker")
	if st.LastExit == nil || st.LastExit.Reason != "oom_kill" || !st.LastExit.Recycle {
		t.Errorf("last exit %+v, want oom_kill with recycle set", st.LastExit)
	}
}

// The tree watches of adopted instances share one pass over /proc per
// rssTTL, whatever their number, and a pid with no process is an error.
func TestMemoryWatchTreeRSSSharesOnePass(t *testing.T) {
	scan, err := watch.New(watch.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := &memoryWatch{scan: scan, notify: map[string]func(supervisor.MemoryEvent){}, trees: map[string]int{}}
	self := os.Getpid()
	m.trees["a/1"], m.trees["b/2"] = self, os.Getppid()
	v, err := m.treeRSS(self)
	if err != nil || v == 0 {
		t.Fatalf("treeRSS(self) = %d, %v", v, err)
	}
	at := m.rssAt
	if _, err := m.treeRSS(os.Getppid()); err != nil {
		t.Fatal(err)
	}
	if m.rssAt != at {
		t.Errorf("the second tree's sample made a pass of its own")
	}
	if _, err := m.treeRSS(1 << 30); err == nil {
		t.Errorf("no error for a pid with no process")
	}
}
