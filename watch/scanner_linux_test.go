package watch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

// Processes appear and vanish while Match scans: no error, and never a
// match that is not one of the stable processes.
func TestMatchChurn(t *testing.T) {
	testenv.RequireRoot(t, "matching live processes")
	verifyNoLeaks(t)
	s := liveScanner(t)
	tag := fmt.Sprintf("churn-%d-%d", os.Getpid(), time.Now().UnixNano())
	var stable []Identity
	for i := 0; i < 5; i++ {
		cmd := startChild(t, testenv.HelperArgv("sleep", "stable-"+tag)...)
		id, err := s.Identify(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		stable = append(stable, id)
	}
	slices.SortFunc(stable, func(a, b Identity) int { return int(a.StartTime) - int(b.StartTime) })

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				cmd := startChildNoCleanup(testenv.HelperArgv("sleep", "churn-"+tag)...)
				if cmd == nil {
					continue
				}
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	selfComm := strings.TrimSuffix(string(b), "\n")
	re := regexp.MustCompile(regexp.QuoteMeta("sleep stable-"+tag) + "$")
	deadline := time.Now().Add(2 * time.Second)
	scans := 0
	for time.Now().Before(deadline) {
		got, err := s.Match(Matcher{Cmdline: re})
		if err != nil {
			t.Fatalf("Match: %v", err)
		}
		var ids []Identity
		for _, p := range got {
			ids = append(ids, p.Identity)
		}
		if !slices.Equal(ids, stable) {
			t.Fatalf("scan %d matched %v, want %v", scans, ids, stable)
		}
		// A broad matcher sees the churn too, and must not fail on it.
		all, err := s.Match(Matcher{Comm: selfComm})
		if err != nil {
			t.Fatalf("Match: %v", err)
		}
		for _, p := range all {
			if strings.Contains(strings.Join(p.Cmdline, " "), "stable-"+tag) && !slices.Contains(stable, p.Identity) {
				t.Fatalf("false match %+v", p)
			}
		}
		scans++
	}
	t.Logf("%d scans under churn", scans)
}

// startChildNoCleanup starts argv as a child; the caller kills and waits.
func startChildNoCleanup(argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return nil
	}
	return cmd
}

func TestTreeRSSLive(t *testing.T) {
	testenv.RequireRoot(t, "reading other processes' memory")
	s := liveScanner(t)
	pidfile := filepath.Join(t.TempDir(), "grandchild")
	cmd := startChild(t, testenv.HelperArgv("fork-sleep", pidfile)...)
	var gpid int
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile(pidfile)
		if err == nil {
			if gpid, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper wrote no grandchild pid")
		}
		time.Sleep(10 * time.Millisecond)
	}
	gid, err := s.Identify(gpid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killIdentity(gid) })

	got, err := s.TreeRSS(gpid)
	alone := got[gpid]
	if err != nil || alone == 0 {
		t.Fatalf("TreeRSS(grandchild) = %v, %v", got, err)
	}
	st, err := s.fs.Proc(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := st.Stat()
	if err != nil {
		t.Fatal(err)
	}
	own := uint64(stat.ResidentMemory())
	got, err = s.TreeRSS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tree := got[cmd.Process.Pid]
	if tree <= own || tree < alone {
		t.Errorf("TreeRSS(helper) = %d, helper alone %d, its child %d", tree, own, alone)
	}
	if got, _ := s.TreeRSS(1 << 30); len(got) != 0 {
		t.Errorf("TreeRSS of a missing pid = %v", got)
	}
}

// Env matches an entry of the initial environment, and only that process.
func TestMatchEnv(t *testing.T) {
	testenv.RequireRoot(t, "reading other processes' environments")
	s := liveScanner(t)
	tag := fmt.Sprintf("RESPAWND_TEST_TAG=%d-%d", os.Getpid(), time.Now().UnixNano())
	argv := testenv.HelperArgv("sleep")
	tagged := exec.Command(argv[0], argv[1:]...)
	tagged.Env = append(os.Environ(), tag)
	if err := tagged.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tagged.Process.Kill(); _ = tagged.Wait() })
	startChild(t, argv...) // same command, no tag
	got, err := s.Match(Matcher{Env: tag})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Identity.PID != tagged.Process.Pid {
		t.Fatalf("matched %+v, want only pid %d", got, tagged.Process.Pid)
	}
	if got, _ := s.Match(Matcher{Env: tag + "x"}); len(got) != 0 {
		t.Errorf("a longer value matched: %+v", got)
	}
}
