package watch

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/internal/testenv"
)

// verifyNoLeaks checks for leaked goroutines after every cleanup of t
// (cleanups run last-registered first), so it is registered first.
func verifyNoLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

var mechanisms = []Mechanism{MechanismPidfd, MechanismRescan}

// runWatcher starts a Watcher's Run loop and stops it in t.Cleanup,
// checking that Run returned nil.
func runWatcher(t *testing.T, mech Mechanism) *Watcher {
	t.Helper()
	w, err := NewWatcher(Config{Mechanism: mech, RescanInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if w.Mechanism() != mech {
		t.Fatalf("Mechanism() = %v, want %v", w.Mechanism(), mech)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

func TestWatchAuto(t *testing.T) {
	testenv.RequireRoot(t, "pidfd watching")
	w, err := NewWatcher(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// This kernel has pidfd_open; auto must pick it.
	if w.Mechanism() != MechanismPidfd {
		t.Errorf("auto picked %v", w.Mechanism())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run with a done context: %v", err)
	}
	if _, err := w.Watch(Identity{PID: os.Getpid(), StartTime: 1}); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrPIDReused) {
		t.Errorf("Watch after Run = %v", err)
	}
}

func TestWatchKillNonChild(t *testing.T) {
	testenv.RequireRoot(t, "killing a non-child")
	verifyNoLeaks(t)
	for _, mech := range mechanisms {
		t.Run(mech.String(), func(t *testing.T) {
			w := runWatcher(t, mech)
			id := startNonChild(t, testenv.HelperArgv("sleep")...)
			p, err := w.Watch(id)
			if err != nil {
				t.Fatal(err)
			}
			if p.PID() != id.PID || p.Identity() != id || w.Len() != 1 {
				t.Fatalf("Proc %v, Len %d", p.Identity(), w.Len())
			}
			select {
			case <-p.Done():
				t.Fatal("Done closed while the process runs")
			case <-time.After(50 * time.Millisecond):
			}
			if ex := p.Exit(); ex.Known {
				t.Errorf("Exit before Done: %+v", ex)
			}
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			ex := waitDone(t, p)
			switch {
			case mech == MechanismPidfd && !ex.Known && testenv.KernelAtLeast(t, 6, 15):
				// PIDFD_INFO_EXIT or the zombie's stat always tell on
				// Linux 6.15+. Before, only a zombie not yet reaped by
				// its parent does: the exit may be unknown, never wrong.
				t.Errorf("exit unknown: %+v", ex)
			case ex.Known && (!ex.Signaled || ex.Signal != syscall.SIGKILL):
				t.Errorf("exit %v, want signal killed", ex)
			}
			if ex.Time.IsZero() {
				t.Error("no exit time")
			}
			t.Logf("%v: %v", mech, ex)
			if err := p.Signal(syscall.SIGKILL); !errors.Is(err, ErrNotFound) {
				t.Errorf("Signal after death = %v, want ErrNotFound", err)
			}
			if w.Len() != 0 {
				t.Errorf("Len after death = %d", w.Len())
			}
		})
	}
}

func TestWatchExitCode(t *testing.T) {
	testenv.RequireRoot(t, "watching a non-child")
	verifyNoLeaks(t)
	for _, mech := range mechanisms {
		t.Run(mech.String(), func(t *testing.T) {
			w := runWatcher(t, mech)
			fifo := mkfifo(t)
			self, _ := os.Executable()
			id := startNonChild(t, self, exitOnEOFArg, fifo, "7")
			p, err := w.Watch(id)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // the victim has it open for reading
			if err != nil {
				t.Fatal(err)
			}
			_ = f.Close() // EOF: the victim exits with code 7
			ex := waitDone(t, p)
			if mech == MechanismPidfd && !ex.Known && testenv.KernelAtLeast(t, 6, 15) {
				t.Errorf("exit unknown: %+v", ex)
			}
			if ex.Known && (ex.Signaled || ex.Code != 7) {
				t.Errorf("exit %v, want exit code 7", ex)
			}
		})
	}
}

// A child of respawnd's own that nobody reaps yet is a zombie when its
// pidfd fires: the status then comes from its stat.
func TestWatchUnreapedChild(t *testing.T) {
	testenv.RequireRoot(t, "watching a child")
	verifyNoLeaks(t)
	w := runWatcher(t, MechanismPidfd)
	cmd := startChild(t, testenv.HelperArgv("sleep")...)
	id, err := liveScanner(t).Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Watch(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ex := waitDone(t, p); !ex.Known || !ex.Signaled || ex.Signal != syscall.SIGTERM {
		t.Errorf("exit %v, want signal terminated", ex)
	}
}

func TestWatchPIDReuseGuard(t *testing.T) {
	testenv.RequireRoot(t, "watching a non-child")
	verifyNoLeaks(t)
	s := liveScanner(t)
	id := startNonChild(t, testenv.HelperArgv("sleep")...)
	reused := Identity{PID: id.PID, StartTime: id.StartTime - 1}
	if !s.Alive(id) || s.Alive(reused) {
		t.Fatalf("Alive(%v) = %v, Alive(%v) = %v", id, s.Alive(id), reused, s.Alive(reused))
	}
	for _, mech := range mechanisms {
		t.Run(mech.String(), func(t *testing.T) {
			w := runWatcher(t, mech)
			if p, err := w.Watch(reused); !errors.Is(err, ErrPIDReused) {
				t.Errorf("Watch(%v) = %v, %v; want ErrPIDReused", reused, p, err)
			}
			if _, err := w.Watch(Identity{PID: 1 << 30, StartTime: 5}); !errors.Is(err, ErrNotFound) {
				t.Errorf("Watch of a pid that does not exist = %v, want ErrNotFound", err)
			}
			if w.Len() != 0 {
				t.Errorf("Len = %d", w.Len())
			}
		})
	}
}

func TestWatchCloseAndStop(t *testing.T) {
	testenv.RequireRoot(t, "watching a non-child")
	verifyNoLeaks(t)
	for _, mech := range mechanisms {
		t.Run(mech.String(), func(t *testing.T) {
			w, err := NewWatcher(Config{Mechanism: mech, RescanInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			a := startNonChild(t, testenv.HelperArgv("sleep")...)
			b := startNonChild(t, testenv.HelperArgv("sleep")...)
			pa, err := w.Watch(a) // before Run: fine
			if err != nil {
				t.Fatal(err)
			}
			pb, err := w.Watch(b)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- w.Run(ctx) }()

			_ = pa.Close()
			_ = pa.Close()
			if w.Len() != 1 {
				t.Errorf("Len after Close = %d", w.Len())
			}
			if err := pa.Signal(0); mech == MechanismPidfd && !errors.Is(err, ErrNotFound) {
				t.Errorf("Signal after Close = %v", err)
			}
			killIdentity(a)
			killIdentity(b)
			waitDone(t, pb)
			select {
			case <-pa.Done():
				t.Error("Done of a closed Proc closed")
			case <-time.After(100 * time.Millisecond):
			}
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run = %v", err)
			}
			if _, err := w.Watch(a); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
				t.Errorf("Watch after Run = %v, want ErrClosed", err)
			}
			c := startNonChild(t, testenv.HelperArgv("sleep")...)
			if _, err := w.Watch(c); !errors.Is(err, ErrClosed) {
				t.Errorf("Watch after Run = %v, want ErrClosed", err)
			}
		})
	}
}

// Many processes watched at once, killed together.
func TestWatchMany(t *testing.T) {
	testenv.RequireRoot(t, "watching non-children")
	verifyNoLeaks(t)
	w := runWatcher(t, MechanismPidfd)
	const n = 40
	var procs []*Proc
	for i := 0; i < n; i++ {
		p, err := w.Watch(startNonChild(t, testenv.HelperArgv("sleep")...))
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { _ = p.Signal(syscall.SIGKILL) })
	}
	wg.Wait()
	// Before Linux 6.15 a non-child's status is known only while it is
	// a zombie, so it may be unknown there, but never wrong.
	mustKnow := testenv.KernelAtLeast(t, 6, 15)
	for _, p := range procs {
		ex := waitDone(t, p)
		if ex.Known && ex.Signal != syscall.SIGKILL || !ex.Known && mustKnow {
			t.Errorf("pid %d: %v", p.PID(), ex)
		}
	}
}
