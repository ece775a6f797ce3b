package supervisor

import (
	"context"
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

// Cgroups creates per-program memory cgroups.
type Cgroups interface {
	Create(program string, limits Limits) (Group, error)
}

// Limits are memory limits in bytes; nil means unset.
type Limits struct {
	Max, High, SwapMax *int64
}

// Group is one program's memory cgroup.
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
	// Watch sends the group's OOM counters to out each time they change,
	// until ctx is done; then it returns nil.
	Watch(ctx context.Context, out chan<- oom.CgroupCounts) error
	// Update applies new limits.
	Update(l Limits) error
	// KillAll SIGKILLs every process left in the group.
	KillAll() error
	// Remove kills what is left and removes the group.
	Remove() error
}

// Recorder receives what happened, for metrics. Implementations must not
// block: they are called from program loops, after the restart is done.
type Recorder interface {
	// Exited is called once per exit, when its reason is final.
	Exited(e Exit)
	// Restarted is called after a restart with the time from death noticed
	// to the new process running.
	Restarted(program string, latency time.Duration)
	// OOMKill is called once per OOM kill: program is "" for a process
	// that belongs to no program.
	OOMKill(program string, k oom.Kill)
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

func (nopRecorder) Exited(Exit)                     {}
func (nopRecorder) Restarted(string, time.Duration) {}
func (nopRecorder) OOMKill(string, oom.Kill)        {}
