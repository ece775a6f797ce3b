package supervisor

import (
	"syscall"
	"time"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// Launcher starts program instances. *restart.Launcher does this for real.
type Launcher interface {
	Start(cmd restart.Command) (Process, error)
}

// Process is one running instance as the supervisor sees it.
type Process interface {
	PID() int
	// Done is closed once the exit status is in.
	Done() <-chan struct{}
	Exit() restart.ExitStatus
	// Signal signals the instance's whole process group.
	Signal(sig syscall.Signal) error
}

// lingerer is a Process started by respawnd that can keep its process group
// (and so its id) reserved after the leader exits: until the group's other
// members are gone or timeout passes, then the rest are SIGKILLed. Stops of
// programs without a cgroup use it so that members get the whole stop
// timeout, as they would with a cgroup.
type lingerer interface {
	Linger(timeout time.Duration)
}

// Cgroups creates per-program memory cgroups.
type Cgroups interface {
	Create(program string, limits Limits) (Group, error)
}

// Limits are memory limits in bytes; nil means unset. A group with no
// limits still holds the program's processes together for stops.
type Limits struct {
	Max, High, SwapMax *int64
}

// Group is one program's cgroup: every program gets one where respawnd can
// create cgroups, with memory limits or without.
type Group interface {
	// Path is the cgroup path as the kernel prints it in OOM reports.
	Path() string
	// FD is an open cgroup v2 directory for CLONE_INTO_CGROUP, or -1.
	FD() int
	// Procs lists cgroup v1 cgroup.procs files to join before exec.
	Procs() []string
	// Leave lists, one for each of Procs, the cgroup v1 directories
	// respawnd's own threads belong in (see restart.Command.CgroupLeave).
	Leave() []string
	// OOMKills reads the group's own oom_kill counter.
	OOMKills() (uint64, error)
	// Watch has the group's OOM counters put in out (buffered 1; the
	// latest replaces any not yet taken) each time they change, until stop
	// is called. One watcher serves every group: no goroutine per program.
	Watch(out chan oom.CgroupCounts) (stop func(), err error)
	// Update applies new limits.
	Update(l Limits) error
	// KillAll SIGKILLs every process left in the group and waits, briefly,
	// until it is empty.
	KillAll() error
	// Signal sends sig to every process in the group, each once, never to
	// a process that has left it.
	Signal(sig syscall.Signal) error
	// ResetPeak starts a new peak memory measurement (before a start).
	ResetPeak()
	// Peak is the group's peak memory use since ResetPeak, when known.
	Peak() (uint64, bool)
	// Drain waits until the group is empty; after timeout it SIGKILLs what
	// is left and waits again, briefly. An error says processes are still
	// there.
	Drain(timeout time.Duration) error
	// Remove kills what is left and removes the group.
	Remove() error
}

// Recorder receives what happened, for metrics. Implementations must not
// block: they are called from program loops, after the restart is done.
type Recorder interface {
	// Exited is called once per exit, when its reason is final.
	Exited(e Exit)
	// Restarted is called after a restart with the time from death noticed
	// to the new process running, less the wait on purpose.
	Restarted(program string, latency time.Duration)
	// RestartWaited is called after each restart with how long the program
	// waited on purpose before it (backoff, the restart bucket, a hold
	// for memory), 0 for a restart at once; latency excludes it.
	RestartWaited(program string, wait time.Duration)
	// OOMKill is called once per OOM kill: program is "" for a process
	// that belongs to no program.
	OOMKill(program string, k oom.Kill)
	// RecycleLoop is called when a program recycled for memory too often
	// and its next start goes through the crash backoff.
	RecycleLoop(program string)
}

// Deaths keeps post-mortems of exits. Both methods are called from the
// program loops and must not block; Died also runs on the restart path, so
// it may read a few files, no more.
type Deaths interface {
	// Died is called when an instance's exit status is in, before anything
	// restarts: with the instance and, for one respawnd started in the
	// program's cgroup, that cgroup (nil otherwise).
	Died(program string, generation uint64, proc Process, group Group)
	// Settled is called once per exit (start failures included) when its
	// reason is final and the kernel's OOM report, when one is awaited, is
	// in or its window has passed.
	Settled(e Exit)
}

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type nopRecorder struct{}

func (nopRecorder) Exited(Exit)                         {}
func (nopRecorder) Restarted(string, time.Duration)     {}
func (nopRecorder) RestartWaited(string, time.Duration) {}
func (nopRecorder) OOMKill(string, oom.Kill)            {}
func (nopRecorder) RecycleLoop(string)                  {}

type nopDeaths struct{}

func (nopDeaths) Died(string, uint64, Process, Group) {}
func (nopDeaths) Settled(Exit)                        {}
