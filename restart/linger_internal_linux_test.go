package restart

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startInGroup starts sleep in process group pgid (0: a group of its own)
// and kills and reaps it when the test ends.
func startInGroup(t *testing.T, pgid int) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// The census sees a group's members but not its leader, and a look begun
// before a member was forked is not trusted for it.
func TestCensusFindsMembers(t *testing.T) {
	var c groupCensus
	leader := startInGroup(t, 0)
	if c.hasMembers(leader, time.Now()) {
		t.Fatalf("group %d has no member but its leader, and the census found one", leader)
	}
	startInGroup(t, leader)
	if !c.hasMembers(leader, time.Now()) {
		t.Fatalf("the member of group %d forked after the last look was not found", leader)
	}
}

// Groups that wait together share a look: a hundred groups asking at once
// about the same moment cost one look at respawnd's children, not a hundred.
func TestCensusSharedByGroups(t *testing.T) {
	var c groupCensus
	leader := startInGroup(t, 0)
	startInGroup(t, leader)
	since := time.Now()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if !c.hasMembers(leader, since) {
				t.Errorf("group %d's member not found", leader)
			}
		})
	}
	wg.Wait()
	if n := c.looks.Load(); n != 1 {
		t.Errorf("%d looks for a hundred groups asking about one moment, want 1", n)
	}
}
