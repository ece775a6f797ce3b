package oom

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/internal/testenv"
)

// TestKmsgLive follows /dev/kmsg while a hog is OOM-killed in a 64 MiB
// cgroup and checks the Kill and the counters.
func TestKmsgLive(t *testing.T) {
	defer goleak.VerifyNone(t)
	testenv.RequireKmsg(t, "following /dev/kmsg")
	cg := testenv.NewMemoryCgroup(t, 64<<20)
	vmBefore, err := VMStatOOMKills("/proc")
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKmsg(KmsgConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Kill) // unbuffered: the test receives until Run returns
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, out) }()
	defer func() {
		cancel()
		for {
			select {
			case <-out:
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
				return
			}
		}
	}()

	// A program that writes the kernel's lines to /dev/kmsg, even as root,
	// gets facility LOG_USER and is no kernel evidence: neither the Killed
	// process line nor a summary alone may come out as a kill. The pid is
	// above the largest pid_max, so no real process has it.
	const forgedPID = 4194305
	forgeKmsg(t,
		"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/forged,task_memcg=/forged,task=forged,pid=4194305,uid=0",
		"Memory cgroup out of memory: Killed process 4194305 (forged) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0",
		"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/forged,task_memcg=/forged,task=forged,pid=4194306,uid=0")

	start := time.Now()
	cmd := startHog(t, cg)
	pid := cmd.Process.Pid
	deadline := time.After(30 * time.Second)
	var got Kill
	for got.PID != pid {
		select {
		case got = <-out:
			if got.PID >= forgedPID || got.TaskMemcg == "/forged" {
				t.Errorf("forged kmsg record reported as a kill: %+v", got)
			}
			if !got.Confirmed {
				t.Errorf("unconfirmed kill from the live follower: %+v", got)
			}
		case <-deadline:
			t.Fatalf("no kill of pid %d reported", pid)
		}
	}
	wantComm := filepath.Base(testenv.HelperArgv("hog")[0])
	if len(wantComm) > 15 {
		wantComm = wantComm[:15]
	}
	if got.Comm != wantComm {
		t.Errorf("comm %q, want %q", got.Comm, wantComm)
	}
	if got.TaskMemcg != cg.Path {
		t.Errorf("task_memcg %q, want %q", got.TaskMemcg, cg.Path)
	}
	if got.AnonRSSBytes == nil || *got.AnonRSSBytes < 16<<20 {
		t.Errorf("anon rss %v, want the hog's allocation", got.AnonRSSBytes)
	}
	if got.Time.Before(start.Add(-2*time.Second)) || got.Time.After(time.Now().Add(2*time.Second)) {
		t.Errorf("time %v outside the test's run (started %v)", got.Time, start)
	}
	c, err := ReadCgroupCounts(cg.Dir, cg.V2)
	if err != nil || c.OOMKill < 1 {
		t.Errorf("cgroup counts %+v, %v", c, err)
	}
	if n, err := VMStatOOMKills("/proc"); err != nil || n <= vmBefore {
		t.Errorf("vmstat oom_kill %d (before %d), %v", n, vmBefore, err)
	}

	// The retained buffer holds the same kill.
	kills, err := ReadRetained("")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range kills {
		if r.PID == pid && r.TaskMemcg == cg.Path {
			found = true
		}
	}
	if !found {
		t.Errorf("ReadRetained: kill of %d not among %d kills", pid, len(kills))
	}
	if k.Lost() != 0 {
		t.Logf("lost %d records", k.Lost())
	}
}

// forgeKmsg writes lines to /dev/kmsg as a program would. The kernel may
// refuse (printk.devkmsg=off) or drop them (its rate limit); either way the
// follower must not report them, so that is not an error.
func forgeKmsg(t *testing.T, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(DefaultKmsgPath, os.O_WRONLY, 0)
	if err != nil {
		t.Logf("cannot write %s: %v", DefaultKmsgPath, err)
		return
	}
	defer f.Close()
	for _, l := range lines {
		// One write(2) is one record.
		if _, err := f.Write([]byte(l + "\n")); err != nil {
			t.Logf("writing %s: %v", DefaultKmsgPath, err)
		}
	}
}

func TestKmsgCloseWithoutRun(t *testing.T) {
	testenv.RequireKmsg(t, "opening /dev/kmsg")
	k, err := NewKmsg(KmsgConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewKmsgMissing(t *testing.T) {
	if _, err := NewKmsg(KmsgConfig{Path: filepath.Join(t.TempDir(), "kmsg")}); err == nil {
		t.Fatal("no error for a missing device")
	}
}
