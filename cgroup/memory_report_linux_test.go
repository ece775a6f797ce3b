package cgroup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

// Report reads a real group's memory.stat whole, its event counters and,
// on v2 with PSI, its stall totals.
func TestReportOfRealGroup(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "report", Limits{Max: ptr(64 << 20), SwapMax: ptr(0)})
	c := startInGroupArgv(t, g, testenv.HelperArgv("hog-after", "100ms"))
	var r MemoryReport
	anon := "total_rss"
	if m.V2() {
		anon = "anon"
	}
	poll(t, "the helper's memory in memory.stat", func() bool {
		var err error
		r, err = g.Report()
		return err == nil && r.Stat[anon] > 16<<20
	})
	// Report and Memory share the group's open files; whichever opened
	// memory.stat first, Memory still reads the usage.
	if mem, err := g.Memory(); err != nil || mem.Usage < 16<<20 {
		t.Errorf("Memory() after Report() = %+v, %v; want the helper's usage", mem, err)
	}
	_ = c.Process.Kill()
	_ = c.Wait()
	want := 1
	if m.V2() {
		want = 2
	}
	if r.Version != want || len(r.Stat) < 10 {
		t.Fatalf("report v%d with %d stat keys: %+v", r.Version, len(r.Stat), r)
	}
	if _, ok := r.Events["oom_kill"]; !ok {
		t.Errorf("events %v: no oom_kill counter", r.Events)
	}
	if m.V2() {
		for _, k := range []string{"low", "high", "max", "oom"} {
			if _, ok := r.Events[k]; !ok {
				t.Errorf("events %v: no %s", r.Events, k)
			}
		}
	} else if _, ok := r.Events["failcnt"]; !ok {
		t.Errorf("events %v: no failcnt", r.Events)
	}
	// Only the files every scrape reads stay open: each descriptor
	// respawnd holds is copied by every fork and closed by every exec.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || filepath.Dir(target) != g.dir {
			continue
		}
		switch filepath.Base(target) {
		case "memory.stat", "memory.current", "memory.pressure":
		default:
			t.Errorf("%s kept open after the report", target)
		}
	}
}

func TestParseFlatKeyed(t *testing.T) {
	got := parseFlatKeyed([]byte("anon 4096\nfile 0\nbroken\nthree fields 1\nneg -1\noom_kill 2\n"))
	if len(got) != 3 || got["anon"] != 4096 || got["file"] != 0 || got["oom_kill"] != 2 {
		t.Fatalf("parseFlatKeyed = %v", got)
	}
}
