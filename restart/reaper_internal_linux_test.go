package restart

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

// zombie reports whether pid is a zombie, read with the launcher's own
// reader of /proc/PID/stat.
func zombie(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state == 'Z'
}

// A round peeks without the lock Start holds from its fork until the child
// is registered. A child that is already a zombie when the round peeks,
// but not yet registered, must still be left to its own waiter: the round
// asks again under the lock, after the start registered it.
func TestRoundLeavesAChildBeingRegistered(t *testing.T) {
	l := NewLauncher(LauncherConfig{})
	l.reapMu.RLock() // as Start does before its fork
	locked := true
	t.Cleanup(func() {
		if locked {
			l.reapMu.RUnlock()
		}
	})
	c := exec.Command("/bin/true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	t.Cleanup(func() { _ = c.Wait() })
	testenv.Eventually(t, fmt.Sprintf("child %d to exit", pid), func() bool { return zombie(pid) })

	round := make(chan struct{})
	go func() {
		l.reapOrphans()
		close(round)
	}()
	// The round has seen the zombie and waits for the lock; a round that
	// reaped without it would have taken the status by now.
	time.Sleep(100 * time.Millisecond)
	if !zombie(pid) {
		t.Fatalf("child %d was reaped by the round while its start still held the lock", pid)
	}
	l.register(pid)
	l.reapMu.RUnlock()
	locked = false
	<-round
	if !zombie(pid) {
		t.Fatalf("child %d, registered before the round could reap, was reaped by the round", pid)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("the child's own wait: %v (want its exit status, not the reaper's leftovers)", err)
	}
}

// An orphan is reaped by a round whatever the delay: the round takes the
// lock only to reap.
func TestRoundReapsAnUnregisteredZombie(t *testing.T) {
	l := NewLauncher(LauncherConfig{})
	c := exec.Command("/bin/true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	testenv.Eventually(t, fmt.Sprintf("child %d to exit", pid), func() bool { return zombie(pid) })
	l.reapOrphans()
	if zombie(pid) {
		t.Fatalf("zombie %d, registered by no start, left by the round", pid)
	}
	if err := c.Wait(); err == nil {
		t.Fatalf("wait after the round reaped %d: no error, want ECHILD", pid)
	}
}
