package oom

import (
	"context"
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

	start := time.Now()
	cmd := startHog(t, cg)
	pid := cmd.Process.Pid
	deadline := time.After(30 * time.Second)
	var got Kill
	for got.PID != pid {
		select {
		case got = <-out:
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
