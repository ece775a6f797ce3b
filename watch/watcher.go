package watch

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Watcher reports the deaths of processes that respawnd did not start (and
// so cannot wait for), each named by its Identity. Build it with
// NewWatcher, call Run in a goroutine, and Watch each process. Watch, Len,
// Mechanism and the methods of the Procs it returns are safe for concurrent
// use; Run must be called exactly once.
type Watcher struct {
	scan     *Scanner
	log      *slog.Logger
	mech     Mechanism
	interval time.Duration
	sys      watcherSys

	// mu guards the registry of watched processes. Watch adds from any
	// goroutine and Run removes, so the map is shared; whoever removes a
	// Proc from it (Run on a death, Proc.Close, or Run's shutdown) owns
	// releasing its pidfd, which keeps a closed fd from being reused under a
	// live registration.
	mu      sync.Mutex
	procs   map[uint64]*Proc
	next    uint64
	stopped bool
}

// Proc is one process watched by a Watcher. Its methods are safe for
// concurrent use.
type Proc struct {
	id   Identity
	w    *Watcher
	key  uint64
	sys  procSys
	done chan struct{}
	exit ExitInfo // written once, before done is closed
}

// Mechanism returns the death-detection mechanism in use: MechanismPidfd
// or MechanismRescan, never MechanismAuto.
func (w *Watcher) Mechanism() Mechanism { return w.mech }

// Len returns the number of processes being watched.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.procs)
}

// Watch starts watching the process id. It fails with an error wrapping
// ErrNotFound when the process is gone, ErrPIDReused when its pid now
// belongs to another process, and ErrClosed once Run has returned; in the
// first two cases the process id names is dead. A process that is already
// a zombie is accepted, and its Done closes as soon as Run sees it. Watch
// may be called before Run starts; deaths are reported once it runs.
func (w *Watcher) Watch(id Identity) (*Proc, error) {
	if id.PID <= 0 {
		return nil, fmt.Errorf("watching pid %d: %w", id.PID, ErrNotFound)
	}
	p := &Proc{id: id, w: w, done: make(chan struct{})}
	if err := w.watch(p); err != nil {
		return nil, err
	}
	return p, nil
}

// verify checks that id still names the process found at its pid, dead or
// alive.
func (w *Watcher) verify(id Identity) error {
	sf, err := w.scan.readStat(id.PID)
	switch {
	case err != nil && isChurn(err):
		return fmt.Errorf("watching pid %d: %w", id.PID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("watching pid %d: %w", id.PID, err)
	case sf.StartTime != id.StartTime:
		return fmt.Errorf("watching pid %d: started at %d, want %d: %w", id.PID, sf.StartTime, id.StartTime, ErrPIDReused)
	}
	return nil
}

// add registers p under a new key.
func (w *Watcher) add(p *Proc) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return fmt.Errorf("watching pid %d: %w", p.id.PID, ErrClosed)
	}
	w.next++
	p.key = w.next
	w.procs[p.key] = p
	return nil
}

// take removes and returns the Proc registered under key, or nil. The
// caller then owns releasing it.
func (w *Watcher) take(key uint64) *Proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.procs[key]
	delete(w.procs, key)
	return p
}

// finish records how p ended, releases it and closes its Done channel.
func (w *Watcher) finish(p *Proc, info ExitInfo) {
	p.exit = info
	p.release()
	close(p.done)
	w.log.Debug("watched process died", "pid", p.id.PID, "exit", info.String())
}

// stopAll ends watching at the end of Run: every remaining Proc is
// released with its Done left open, and Watch fails from now on.
func (w *Watcher) stopAll() {
	w.mu.Lock()
	w.stopped = true
	left := slices.Collect(maps.Values(w.procs))
	clear(w.procs)
	w.mu.Unlock()
	for _, p := range left {
		p.release()
	}
}

// runRescan is Run for MechanismRescan.
func (w *Watcher) runRescan(done <-chan struct{}) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			w.rescan()
		}
	}
}

// rescan checks every watched identity once.
func (w *Watcher) rescan() {
	w.mu.Lock()
	procs := slices.Collect(maps.Values(w.procs))
	w.mu.Unlock()
	for _, p := range procs {
		sf, err := w.scan.readStat(p.id.PID)
		now := time.Now()
		var info ExitInfo
		switch {
		case err != nil && !isChurn(err):
			w.log.Debug("cannot read watched process", "pid", p.id.PID, "err", err)
			continue
		case err != nil, sf.StartTime != p.id.StartTime:
			// Reaped (and maybe replaced): nothing tells how it ended.
			info = ExitInfo{Time: now}
		case deadState(sf.State) && sf.HasExitCode:
			info = exitFromWaitStatus(sf.ExitCode, now)
		case deadState(sf.State):
			info = ExitInfo{Time: now}
		default:
			continue
		}
		if w.take(p.key) == p {
			w.finish(p, info)
		}
	}
}

// PID returns the process id.
func (p *Proc) PID() int { return p.id.PID }

// Identity returns the watched identity.
func (p *Proc) Identity() Identity { return p.id }

// Done returns a channel that the Watcher closes when the process has died.
// It is never closed for a Proc that was closed with Close, or that was
// still alive when Run returned.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exit returns how the process ended once Done is closed, and the zero
// ExitInfo (Known false) before.
func (p *Proc) Exit() ExitInfo {
	select {
	case <-p.done:
		return p.exit
	default:
		return ExitInfo{}
	}
}

// Signal sends sig to the process. It can never reach another process that
// reused the pid: with a pidfd the kernel checks, and otherwise the identity
// is verified through a fresh pidfd (or, where pidfd_open does not exist,
// right before kill(2), which leaves a window of a few microseconds). After
// the death it fails with an error wrapping ErrNotFound.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("signalling pid %d: %w", p.id.PID, ErrNotFound)
	default:
	}
	return p.signal(sig)
}

// Close stops watching the process and releases its pidfd; Done will then
// never close. Closing a Proc that already died, or closing twice, does
// nothing. It always returns nil.
func (p *Proc) Close() error {
	if p.w.take(p.key) == p {
		p.release()
	}
	return nil
}
