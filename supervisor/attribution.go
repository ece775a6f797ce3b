package supervisor

import (
	"sync"
	"syscall"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// evidence is what is known about one death at the moment its exit status
// arrives. The kernel raises the cgroup's and the host's oom_kill counters
// before it sends the SIGKILL (mm/oom_kill.c, "Raise event before sending
// signal"), so counters read after wait are already up to date; the kernel
// log record is printed after the signal and may arrive later.
type evidence struct {
	status restart.ExitStatus
	// kill is the kernel's report for this pid, if it arrived already.
	kill *oom.Kill
	// ownCgroup is true when the program has a cgroup of its own and its
	// counter could be read; cgroupOOMs is the rise of its oom_kill counter
	// not yet explained by other deaths.
	ownCgroup  bool
	cgroupOOMs uint64
	// hostKnown is true when /proc/vmstat oom_kill could be compared with
	// its value at start; hostOOMs is the rise since then.
	hostKnown bool
	hostOOMs  uint64
	// ownKnown is true for an instance without a cgroup of its own that
	// respawnd started, so that it ran in respawnd's own cgroup, when that
	// cgroup's oom_kill counter could be compared with its value at the
	// start; ownOOMs is the rise since then that no other death claimed
	// (see ownLedger).
	ownKnown bool
	ownOOMs  uint64
	// kernelLog is true while the kernel log source is live, so a missing
	// record may still arrive.
	kernelLog bool
}

// judge returns the reason for a death and whether it is final. A reason
// that is not final is the best guess until the kernel log record arrives
// or the attribution window closes.
func judge(e evidence) (r Reason, final bool) {
	st := e.status
	if st.Unknown {
		// How a process respawnd did not start ended is not known on this
		// kernel; only OOM evidence can say more. Never guess.
		if e.kill != nil || e.ownCgroup && e.cgroupOOMs > 0 {
			return ReasonOOMKill, true
		}
		if e.kernelLog && !(e.hostKnown && e.hostOOMs == 0) {
			return ReasonUnknown, false
		}
		return ReasonUnknown, true
	}
	if !st.Signaled {
		if st.Code == 0 {
			return ReasonExitSuccess, true
		}
		return ReasonExitError, true
	}
	// The OOM killer only ever sends SIGKILL.
	if st.Signal != syscall.SIGKILL {
		return ReasonSignal, true
	}
	if e.kill != nil {
		return ReasonOOMKill, true
	}
	if e.ownCgroup {
		if e.cgroupOOMs > 0 {
			return ReasonOOMKill, true
		}
		return ReasonSignal, true
	}
	if e.ownKnown {
		// The instance ran in respawnd's own cgroup (a sidecar's: the
		// container's). The kernel raises the counter of the victim's
		// cgroup for every OOM kill, limit or host-wide, before it sends
		// the SIGKILL; respawnd is alive, so a rise is a kill of another
		// process in its cgroup, most likely this one (see ownLedger). No
		// rise: no OOM kill in the cgroup, whatever the host's counter says.
		if e.ownOOMs > 0 {
			return ReasonOOMKill, true
		}
		return ReasonSignal, true
	}
	if e.hostKnown && e.hostOOMs == 0 {
		// No OOM kill anywhere on the host since the instance started.
		return ReasonSignal, true
	}
	if e.kernelLog {
		if e.hostKnown {
			// The host's counter moved: this may be the OOM kill whose
			// report is not in yet. Without the report it stays unknown.
			return ReasonUnknown, false
		}
		// Every OOM kill prints its report: without one in the window, a
		// SIGKILL is a plain signal.
		return ReasonSignal, false
	}
	return ReasonUnknown, true
}

// ownLedger is the share of the oom_kill counter of respawnd's own cgroup
// that deaths have claimed. Every program without a cgroup of its own runs
// there, so their loops share one ledger: each rise is claimed by one death
// at most, and a SIGKILL that comes after a rise another death explained
// is a plain signal. A rise is claimed only by an instance that was
// running when it happened (its start baseline is below it).
//
// An ownLedger is safe for concurrent use; its zero value is ready.
type ownLedger struct {
	mu sync.Mutex
	// claimed is the counter value up to which rises are claimed.
	claimed uint64
}

// claim returns the rise of the counter, now at n, above base (its value
// at the instance's start) that no death claimed yet, and claims one of
// it: the OOM kill of the instance whose SIGKILL is being judged. The rest
// stays for other instances that died of it (several processes killed in
// one OOM, or OOMs close together).
func (l *ownLedger) claim(n, base uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(base, l.claimed)
	if n <= from {
		return 0
	}
	l.claimed = from + 1
	return n - from
}
