package oom

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzScan(f *testing.F) {
	files, _ := filepath.Glob("../testdata/kmsg/*.txt")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// Seed with the OOM-relevant lines only, to keep inputs small.
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "process") || strings.Contains(l, "oom") || strings.Contains(l, "Task in") {
				keep = append(keep, l)
			}
		}
		f.Add([]byte(strings.Join(keep, "\n")))
	}
	// The forms of issue 14 as one seed each, whatever the captures hold.
	for _, l := range []string{
		"Memory cgroup out of memory: Killed process 7 (x) total-vm:8kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
		"> > oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=x,pid=7,uid=0",
		"[   12.345678][ T1234] Out of memory: Killed process 7 (x) total-vm:8kB, anon-rss:4kB, file-rss:0kB",
		"апр 12 10:11:12 vm kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),global_oom,task_memcg=/,task=x,pid=7,uid=0",
		"[mer. déc.  2 08:03:27 2026] Killed process 7 (x) total-vm:8kB, anon-rss:4kB, file-rss:0kB",
		"kern  :err   : 2026-12-02T08:03:27,527307+00:00 Killed process 7 (x) total-vm:8kB, anon-rss:4kB, file-rss:0kB",
	} {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Scan(bytes.NewReader(data), func(k Kill) {
			if k.PID <= 0 {
				t.Fatalf("kill without pid: %+v", k)
			}
			if !k.Confirmed && (k.TotalVMBytes != nil || k.AnonRSSBytes != nil) {
				t.Fatalf("unconfirmed kill with sizes of a Killed process line: %+v", k)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		// The live follower's assembler reports confirmed kills only.
		a := newAssembler(nil, time.UTC)
		if err := scan(bytes.NewReader(data), a, func(k Kill) {
			if !k.Confirmed {
				t.Fatalf("live assembler reported an unconfirmed kill: %+v", k)
			}
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// benchLog builds a large mixed kernel log: the captures' lines (OOM dumps
// in every form) diluted with ordinary chatter, about 1 kill per 800 lines.
func benchLog(b *testing.B) ([]byte, int) {
	files, _ := filepath.Glob("../testdata/kmsg/*.txt")
	var oom []string
	for _, name := range files {
		d, err := os.ReadFile(name)
		if err != nil {
			b.Fatal(err)
		}
		oom = append(oom, strings.Split(strings.TrimSpace(string(d)), "\n")...)
	}
	chatter := []string{
		"[  1.262071] pci_bus 0000:00: root bus resource [mem 0xeec00000-0xeecfffff]",
		"6,340,1224688,-;EXT4-fs (vda): mounted filesystem r/w without journal. Quota mode: none.",
		"Nov 24 02:11:03 vm kernel: [ 1203.123456] docker0: port 2(vethcd0dbfb) entered forwarding state",
		"2026-11-24T02:11:03.123456+00:00 vm kernel: IPv6: ADDRCONF(NETDEV_CHANGE): veth4cb51e1: link becomes ready",
		"[Tue Nov 24 02:11:03 2026] audit: type=1400 audit(1700000000.123:45): apparmor=\"STATUS\" operation=\"profile_load\"",
		" SUBSYSTEM=pci_bus",
		"Nov 24 02:11:03 vm sshd[1234]: Accepted publickey for root from 10.0.0.1 port 52000 ssh2",
		"4,421,546785112,-;Memory cgroup stats for /x: anon 66752512 file 61440 kernel 1234",
	}
	var buf bytes.Buffer
	lines := 0
	for buf.Len() < 32<<20 {
		for _, l := range oom {
			buf.WriteString(l)
			buf.WriteByte('\n')
			lines++
		}
		for i := 0; i < 20*len(oom); i++ {
			buf.WriteString(chatter[i%len(chatter)])
			buf.WriteByte('\n')
			lines++
		}
	}
	return buf.Bytes(), lines
}

func BenchmarkScan(b *testing.B) {
	data, lines := benchLog(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	kills := 0
	for b.Loop() {
		if err := Scan(bytes.NewReader(data), func(Kill) { kills++ }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	if kills == 0 {
		b.Fatal("no kills")
	}
}
