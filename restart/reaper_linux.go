package restart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Run reaps orphaned descendants until ctx is done, then returns nil. It
// sets PR_SET_CHILD_SUBREAPER when LauncherConfig.Subreaper is set, and
// reaps also when respawnd is PID 1 (a container entrypoint), where orphans
// of the whole namespace arrive. Otherwise it only waits for ctx. The flag
// stays set after Run returns.
//
// Reaping never takes the exit status of a supervised child: each round
// peeks at the first zombie with waitid(WNOWAIT), reaps it only when it is
// not a child Start registered, and ends the round when it is one, whose
// own wait goroutine reaps it and then wakes Run for the next round. Start
// registers a child under a lock that the reap of an orphan excludes, so no
// supervised child is ever unknown to the reaper when it reaps.
//
// A round starts orphanRoundDelay after the signal or wake-up that asked
// for it, and signals in between are served by the same round. The peek
// makes the kernel look at every child, a cost that grows with the number
// of programs; the supervised child whose death sent the signal is reaped
// by its own waiter meanwhile, and its restart forks without waiting for a
// round. An orphan's zombie holds nothing but its pid until then.
//
// Run must be called at most once at a time; it starts no goroutines.
func (l *Launcher) Run(ctx context.Context) error {
	if !l.subreaper && os.Getpid() != 1 {
		<-ctx.Done()
		return nil
	}
	if l.subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting child subreaper: %w", err)
		}
	}
	// One pending SIGCHLD is enough: a round reaps every orphan zombie there
	// is, however many signals were merged.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	defer signal.Stop(sigc)
	for {
		l.reapOrphans()
		select {
		case <-ctx.Done():
			l.reapOrphans()
			return nil
		case <-sigc:
		case <-l.poke:
		}
		select {
		case <-ctx.Done():
			l.reapOrphans()
			return nil
		case <-time.After(orphanRoundDelay):
		}
	}
}

// orphanRoundDelay is how long the reaper lets signals gather before a
// round: with a thousand programs a round's peek costs a tenth of a
// millisecond, and run at the moment of a death it would take the CPU from
// that death's restart.
const orphanRoundDelay = 50 * time.Millisecond

// siginfoChild is the part of siginfo_t that waitid fills for SIGCHLD: the
// pid follows three int32s (signo, errno, code; the last two are swapped on
// MIPS, whose Code would read as Errno: respawnd's reading of si_code
// assumes the other layout, that of every architecture Debian ships) and,
// on 64-bit hosts, four bytes of padding. Stat is the exit code for
// CLD_EXITED and the signal otherwise. See
// include/uapi/asm-generic/siginfo.h.
type siginfoChild struct {
	Signo int32
	Errno int32
	Code  int32
	_     [is64bit]int32
	Pid   int32
	Uid   uint32
	Stat  int32
	_     [128 - (6+is64bit)*4]byte
}

const is64bit = ^uint(0) >> 63

// reapOrphans reaps zombies that are not supervised children, up to the
// first supervised one. The peek runs without the lock, so that a start is
// never held up by a round that finds nothing to reap; the lock is taken
// only to reap, and the zombie asked about again under it: a child whose
// start has not registered it yet is registered once the lock is ours.
func (l *Launcher) reapOrphans() {
	for {
		var info siginfoChild
		err := unix.Waitid(unix.P_ALL, 0, (*unix.Siginfo)(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// ECHILD: no children at all.
			return
		case info.Pid == 0:
			// Children, but no zombie.
			return
		}
		pid := int(info.Pid)
		if l.supervised(pid) {
			// Its wait goroutine reaps it and pokes us; the kernel would
			// keep returning it first, so the round ends here.
			return
		}
		ws, supervised, err := l.reapOrphan(pid)
		if supervised {
			return
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			l.logger.Debug("reaping orphan failed", "pid", pid, "err", err)
			return
		}
		l.logger.Debug("reaped orphan", "pid", pid, "exit_code", ws.ExitStatus(), "signal", ws.Signal())
	}
}

// reapOrphan reaps the zombie pid under the lock that Start holds from
// its fork until the child is registered. supervised is true when pid
// turned out to be a supervised child, which is left to its own waiter.
func (l *Launcher) reapOrphan(pid int) (ws unix.WaitStatus, supervised bool, err error) {
	l.reapMu.Lock()
	defer l.reapMu.Unlock()
	if l.supervised(pid) {
		return ws, true, nil
	}
	var ru unix.Rusage
	wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, &ru)
	if err == nil && wpid != pid {
		err = fmt.Errorf("wait4 returned pid %d", wpid)
	}
	return ws, false, err
}
