package cgroup

import (
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

func TestStatFigures(t *testing.T) {
	// Captured on Linux 6.18 (v1) and 6.1 (v2), trimmed.
	v1 := "cache 12292096\nrss 5603328\nmapped_file 8011776\ninactive_file 4096\nhierarchical_memory_limit 9223372036854771712\ntotal_cache 2364002304\ntotal_rss 61349888\ntotal_rss_huge 0\ntotal_mapped_file 44720128\ntotal_inactive_file 1000000000\n"
	v2 := "anon 1048576\nfile 4096000\nkernel 81920\nfile_mapped 524288\nfile_dirty 0\nanon_thp 0\ninactive_file 2048000\n"
	if rss, usage, inactive := statFigures([]byte(v1), false); rss != 61349888+44720128 || usage != 61349888+2364002304 || inactive != 1000000000 {
		t.Errorf("v1: rss %d usage %d inactive %d, want total_rss + total_mapped_file, total_rss + total_cache and total_inactive_file", rss, usage, inactive)
	}
	if rss, usage, inactive := statFigures([]byte(v2), true); rss != 1048576+524288 || usage != 0 || inactive != 2048000 {
		t.Errorf("v2: rss %d usage %d inactive %d, want anon + file_mapped, no usage (memory.current has it) and inactive_file", rss, usage, inactive)
	}
	if rss, _, _ := statFigures([]byte("garbage\nanon x\n"), true); rss != 0 {
		t.Errorf("garbage gave %d", rss)
	}
}

func TestPressureTotals(t *testing.T) {
	// As the kernel prints memory.pressure (Linux 6.1).
	ok := "some avg10=0.00 avg60=0.12 avg300=0.03 total=1234567\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=89\n"
	if some, full, good := pressureTotals([]byte(ok)); !good || some != 1234567*time.Microsecond || full != 89*time.Microsecond {
		t.Errorf("pressureTotals = %v %v %v", some, full, good)
	}
	for _, bad := range []string{"", "some avg10=0.00 total=1\n", "some total=x\nfull total=1\n"} {
		if _, _, good := pressureTotals([]byte(bad)); good {
			t.Errorf("pressureTotals(%q) reported totals", bad)
		}
	}
}

// Memory reads a real group's usage and resident set through descriptors
// it keeps; Limit is the limit in force, cached at apply time.
func TestMemoryAndLimitOfRealGroup(t *testing.T) {
	m := newTestManager(t)
	const limit = 64 << 20
	g := createGroup(t, m, "mem", Limits{Max: ptr(limit), SwapMax: ptr(0)})
	if l, ok := g.Limit(); !ok || l != limit {
		t.Errorf("Limit() = %d, %v; want %d", l, ok, limit)
	}
	// The helper allocates once in the group (on v1 the pages a process
	// touched before it joined stay charged where they were).
	c := startInGroupArgv(t, g, testenv.HelperArgv("hog-after", "100ms"))
	var mem Memory
	poll(t, "the helper's memory charged to the group", func() bool {
		var err error
		mem, err = g.Memory()
		return err == nil && mem.RSS > 16<<20
	})
	if mem.RSS > mem.Usage+1<<20 || mem.Usage > limit+1<<20 || mem.WorkingSet > mem.Usage || mem.WorkingSet < mem.RSS/2 {
		t.Errorf("memory %+v: resident set above usage, or usage above the %d limit", mem, limit)
	}
	_ = c.Process.Kill()
	if err := g.Update(Limits{}); err != nil {
		t.Fatal(err)
	}
	if l, ok := g.Limit(); ok {
		t.Errorf("Limit() = %d after lifting it, want none", l)
	}
}

// TestMemoryReadAllocatesNothing pins a scrape's cost per program: reading a
// group's memory reuses pooled buffers and kept files, so a scrape of a
// thousand programs makes no garbage here (a fresh 8 KiB buffer per read
// was most of it).
func TestMemoryReadAllocatesNothing(t *testing.T) {
	m := newTestManager(t)
	g := createGroup(t, m, "reads", Limits{Max: ptr(64 << 20)})
	if _, err := g.Memory(); err != nil { // opens the files it keeps
		t.Fatal(err)
	}
	var err error
	allocs := testing.AllocsPerRun(100, func() { _, err = g.Memory() })
	if err != nil {
		t.Fatal(err)
	}
	if allocs > 0 {
		t.Errorf("Memory allocates %.1f times per read, want 0", allocs)
	}
	// memory.current, read on v2 only, goes through parseUint: pinned on
	// any host.
	b := []byte("123456789\n")
	if allocs := testing.AllocsPerRun(100, func() { _, err = parseUint(b) }); allocs > 0 || err != nil {
		t.Errorf("parseUint allocates %.1f times (err %v), want 0", allocs, err)
	}
}
