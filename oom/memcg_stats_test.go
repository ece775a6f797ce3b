package oom

import (
	"strings"
	"testing"
)

// The stats block reaches the kill in each form the kernel prints it: one
// record per line (Linux 6.4+), one record of several lines (older v2
// kernels: \x0a-escaped in /dev/kmsg), and one line of key:valueKB pairs
// (v1 before 4.19). Only the first block (the cgroup that hit its limit)
// is kept; v1 prints its children's after it.
func TestMemcgStatsForms(t *testing.T) {
	const head = "4,421,546785112,-;hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
	const tail = "6,498,546785395,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=hog,pid=5015,uid=0\n" +
		"3,499,546785459,-;Memory cgroup out of memory: Killed process 5015 (hog) total-vm:75160kB, anon-rss:65280kB, file-rss:6612kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0\n"
	for name, tc := range map[string]struct {
		block string
		want  map[string]uint64
	}{
		"record per line": {
			"6,430,546785200,-;Memory cgroup stats for /a:\n6,431,546785201,-;anon 66846720\n6,432,546785202,-;file 4096\n6,433,546785203,-;kernel 229376\n" +
				"6,434,546785204,-;Memory cgroup stats for /a/child:\n6,435,546785205,-;anon 1\n6,436,546785206,-;Tasks state (memory values in pages):\n",
			map[string]uint64{"anon": 66846720, "file": 4096, "kernel": 229376},
		},
		"one record of lines": {
			"6,430,546785200,-;Memory cgroup stats for /a:\n6,431,546785201,-;anon 66846720\\x0afile 4096\\x0akernel 229376\\x0a\n6,436,546785206,-;Tasks state (memory values in pages):\n",
			map[string]uint64{"anon": 66846720, "file": 4096, "kernel": 229376},
		},
		"v1 one line": {
			"6,430,546785200,-;Memory cgroup stats for /a: cache:0KB rss:65280KB shmem:4KB bogus:12 x:yKB\n6,431,546785201,-;Memory cgroup stats for /a/b: cache:0KB rss:1KB\n",
			map[string]uint64{"cache": 0, "rss": 65280 << 10, "shmem": 4 << 10},
		},
		"another cgroup's block": {
			"6,430,546785200,-;Memory cgroup stats for /elsewhere:\n6,431,546785201,-;anon 5\n",
			nil,
		},
	} {
		var kills []Kill
		if err := Scan(strings.NewReader(head+tc.block+tail), func(k Kill) { kills = append(kills, k) }); err != nil {
			t.Fatal(err)
		}
		if len(kills) != 1 || kills[0].PID != 5015 {
			t.Fatalf("%s: kills %+v", name, kills)
		}
		got := kills[0].MemcgStats
		if len(got) != len(tc.want) {
			t.Errorf("%s: stats %v, want %v", name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %d, want %d", name, k, got[k], v)
			}
		}
	}
}

// A block is bounded, and a stats block of an OOM that killed nothing does
// not stick to the next kill.
func TestMemcgStatsBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("6,430,546785200,-;Memory cgroup stats for /a:\n")
	for i := range 1000 {
		b.WriteString("6,431,546785201,-;k" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + " 1\n")
	}
	b.WriteString("4,500,546785300,-;hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n")
	b.WriteString("3,499,546785459,-;Memory cgroup out of memory: Killed process 5015 (hog) total-vm:75160kB, anon-rss:65280kB, file-rss:6612kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0\n")
	var kills []Kill
	if err := Scan(strings.NewReader(b.String()), func(k Kill) { kills = append(kills, k) }); err != nil {
		t.Fatal(err)
	}
	if len(kills) != 1 || kills[0].MemcgStats != nil {
		t.Fatalf("kills %+v: the stats of an earlier OOM stuck to this kill", kills)
	}

	a := newAssembler(nil, nil)
	a.stats = &memcgStats{open: true}
	for i := range 1000 {
		a.statLine([]byte("key" + strings.Repeat("_", i%60) + string(rune('a'+i%26)) + " 1"))
	}
	if n := len(a.stats.m()); n > maxStatKeys {
		t.Fatalf("%d keys kept, bound %d", n, maxStatKeys)
	}
	for _, bad := range []string{"anon 99999999999999999999999", "anon -1", "Anon 1", "anon", " 1", "anon 1 2"} {
		if a.statLine([]byte(bad)) {
			t.Errorf("statLine(%q) took it", bad)
		}
	}
}
