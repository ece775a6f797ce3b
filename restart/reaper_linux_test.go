package restart_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// reaped reports whether pid is no zombie child of this process any more:
// it is gone, or the pid now belongs to some other process.
func reaped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:]) // state, ppid, …
	if len(f) < 2 {
		return true
	}
	ppid, _ := strconv.Atoi(f[1])
	return !(f[0] == "Z" && ppid == os.Getpid())
}

// runReaper runs l.Run until the test ends and checks that it returns nil.
func runReaper(t *testing.T, l *restart.Launcher) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func orphanPIDs(t *testing.T, out string) []int {
	t.Helper()
	var pids []int
	for line := range strings.Lines(out) {
		_, v, ok := strings.Cut(strings.TrimSpace(line), " | ")
		if !ok || !strings.HasPrefix(line, "orphan") {
			continue
		}
		pid, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("bad orphan line %q", line)
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestReaperReapsOrphan(t *testing.T) {
	verifyNoLeaks(t)
	l, out := newTestLauncher(restart.LauncherConfig{Subreaper: true})
	runReaper(t, l)
	p := start(t, l, restart.Command{Name: "orphan", Argv: localHelperArgv("orphan", "7")})
	if st := waitDone(t, p); st.Code != 7 {
		t.Fatalf("exit status %+v, want code 7", st)
	}
	waitOutput(t, p)
	pids := orphanPIDs(t, out.String())
	if len(pids) != 1 {
		t.Fatalf("output %q, want one orphan pid", out)
	}
	testenv.Eventually(t, fmt.Sprintf("orphan %d to be reaped", pids[0]), func() bool { return reaped(pids[0]) })
}

// Many short-lived supervised children and orphans at once: every
// supervised exit code must arrive exactly, and every orphan be reaped.
func TestReaperNeverStealsSupervisedStatus(t *testing.T) {
	verifyNoLeaks(t)
	l, out := newTestLauncher(restart.LauncherConfig{Subreaper: true})
	runReaper(t, l)
	const workers, perWorker = 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker) // at most one per start
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				code := (w*perWorker + i) % 100
				cmd := restart.Command{Name: "exit", Argv: testenv.HelperArgv("exit", strconv.Itoa(code))}
				if i%3 == 0 {
					cmd = restart.Command{Name: "orphan", Argv: localHelperArgv("orphan", strconv.Itoa(code))}
				}
				p, err := l.Start(cmd)
				if err != nil {
					errs <- err
					continue
				}
				<-p.Done()
				<-p.OutputDone()
				if st := p.Exit(); st.Signaled || st.Code != code {
					errs <- fmt.Errorf("%s pid %d: exit status %+v, want code %d", cmd.Name, p.PID(), st, code)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	pids := orphanPIDs(t, out.String())
	if want := workers * ((perWorker + 2) / 3); len(pids) != want {
		t.Fatalf("%d orphan pids, want %d", len(pids), want)
	}
	for _, pid := range pids {
		testenv.Eventually(t, fmt.Sprintf("orphan %d to be reaped", pid), func() bool { return reaped(pid) })
	}
}

func TestRunWithoutSubreaper(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newTestLauncher(restart.LauncherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
