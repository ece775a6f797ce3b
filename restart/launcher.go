package restart

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Command is everything needed to start one program instance.
type Command struct {
	// Name is the program name, used for output prefixes and errors.
	Name string
	// Argv is the program and its arguments. argv[0] is looked up in
	// respawnd's PATH when it has no slash; a relative path with a slash is
	// relative to Dir.
	Argv []string
	// Dir is the working directory; "" keeps respawnd's.
	Dir string
	// Env is the environment, KEY=value. nil means an empty environment,
	// not respawnd's. When User is set, the program also gets HOME, USER,
	// LOGNAME and SHELL from the user's passwd entry (as su and systemd
	// set them), each only if Env lacks it: a key in Env was set by the
	// program's configuration and wins. A numeric uid without an entry gets
	// HOME=/, USER and LOGNAME set to the number and no SHELL; a user
	// missing from /etc/passwd (one of another user database) gets no
	// SHELL.
	Env []string
	// User is a user name or numeric uid; "" keeps respawnd's. The program
	// gets the user's supplementary groups and login variables (see Env).
	// A numeric uid without an entry in the user database runs with the gid
	// of the same number (unless Group is set) and no supplementary groups.
	User string
	// Group is a group name or numeric gid; "" means the user's primary
	// group. With User "" it changes only the gid.
	Group string
	// OutputFile, when set, is an absolute path that receives stdout and
	// stderr (appended, created with mode 0640). Otherwise lines go to the
	// Launcher's Stdout and Stderr with a "NAME | " prefix. Either way the
	// program writes into pipes that respawnd reads, and respawnd writes
	// whole lines: a write that fails (a full disk) drops lines, counted
	// by OutputDroppedLines, and never blocks the program.
	//
	// The file is opened with the program's own user, group and
	// supplementary groups (respawnd's when User and Group are empty), so
	// the user must be allowed to create or write it, and a file created
	// belongs to the user. The path is resolved component by component,
	// trusting root and the program's uid only: every directory on the way
	// and the file must be owned by one of them, no directory may be
	// writable by others unless sticky, a symbolic link is followed only if
	// one of them owns it, and the file must be a regular file with a single
	// link or a character device such as /dev/null. Anything else fails the
	// start with OpOpenOutput and an error naming the component at fault.
	OutputFile string
	// OutputMaxSize, when >0, rotates a regular OutputFile by size: before
	// a write would take it past OutputMaxSize bytes, FILE is renamed
	// FILE.1 (FILE.1 to FILE.2 and so on, the oldest beyond OutputMaxFiles
	// removed) and a new FILE is opened by the rules above. Files are cut
	// between lines; a single line longer than OutputMaxSize gets a file of
	// its own. Renames happen inside the directory opened at start, with
	// the program's credentials, and never follow a link. A file that is
	// not regular (/dev/null, a terminal) is never rotated. With rotation,
	// OutputFile must name the file itself, not a symbolic link to it.
	OutputMaxSize int64
	// OutputMaxFiles is how many rotated files are kept, FILE.1 (the
	// newest) to FILE.N; less than 1 counts as 1.
	OutputMaxFiles int
	// OutputTimestamps starts every line with the time respawnd read it,
	// in RFC 3339 with milliseconds and the local offset
	// (2026-12-02T08:15:04.123Z) and a space: after the "NAME | " prefix on
	// respawnd's output, at the start of the line in OutputFile.
	OutputTimestamps bool
	// CgroupFD, when >0, is an open cgroup v2 directory the child is cloned
	// into (clone3 with CLONE_INTO_CGROUP). The caller keeps it open.
	CgroupFD int
	// CgroupProcs lists cgroup v1 cgroup.procs files the child joins before
	// it execs the program.
	CgroupProcs []string
	// CgroupLeave lists, one for each entry of CgroupProcs, the cgroup v1
	// directory respawnd's own threads live in. With it the launcher moves
	// the one thread that forks into the program's cgroups for the instant
	// of the fork (cgroup v1 places threads one by one), so the child is
	// born inside them and execs the program directly. Without it, or when
	// moving the thread fails, the child goes through the shim, which costs
	// one more exec of respawnd's own binary.
	CgroupLeave []string
	// KillGroupOnExit, when set, sends SIGKILL to what is left of the
	// program's process group when its leader exits, before the leader is
	// reaped: the last moment the group id is known to be the program's.
	KillGroupOnExit bool
	// ExtraFiles are open files the program inherits as fds 3, 4, … (as
	// exec.Cmd.ExtraFiles); the caller closes them after Start returns.
	// They cannot be combined with CgroupProcs, whose shim uses fd 3.
	ExtraFiles []*os.File
}

// The steps a start can fail at, as found in StartError.Op.
const (
	OpLookupCommand  = "lookup command"
	OpLookupUser     = "lookup user"
	OpLookupGroup    = "lookup group"
	OpSetCredentials = "set credentials"
	OpChdir          = "chdir"
	OpExec           = "exec"
	OpJoinCgroup     = "join cgroup"
	OpOpenOutput     = "open output"
)

// StartError says exactly which step of a start failed. Err is the
// underlying error, unchanged, so errors.Is(err, fs.ErrNotExist) and
// fs.ErrPermission work.
type StartError struct {
	// Program is Command.Name.
	Program string
	// Op is one of the Op* constants.
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *StartError) Error() string {
	return "starting " + e.Program + ": " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// LauncherConfig configures a Launcher. Zero values mean defaults.
type LauncherConfig struct {
	// Stdout and Stderr receive the prefixed output lines of programs
	// without an OutputFile; default os.Stdout and os.Stderr. Each line is
	// one Write call, made under a lock shared by both writers.
	Stdout, Stderr io.Writer
	// Logger receives debug records about reaped orphans and failed output
	// writes; nil discards them. Nothing is logged on the start path.
	Logger *slog.Logger
	// ShimPath is the binary re-executed to join cgroup v1 hierarchies
	// before exec; default /proc/self/exe. That binary must call
	// RunShimIfRequested first thing in main.
	ShimPath string
	// Subreaper makes Run set PR_SET_CHILD_SUBREAPER so that orphaned
	// descendants are reparented to respawnd and reaped by Run. Run reaps
	// also when respawnd is PID 1.
	Subreaper bool
	// ChildOOMScoreAdj, when set, is written to every started program's
	// /proc/PID/oom_score_adj right after it execs. A program inherits
	// respawnd's own value at fork; respawnd protects itself from the OOM
	// killer with a low value that its programs must not keep.
	ChildOOMScoreAdj *int
	// TailLines and TailBytes size the last output kept in memory for each
	// instance and each stream (see Process.Tail): at most TailLines lines
	// and TailBytes bytes of text, whichever is reached first. Zero means
	// 200 lines and 64 KiB; TailLines < 0 keeps no tail. Values above
	// 1<<20 lines or 1 GiB count as those.
	TailLines, TailBytes int
}

// Launcher starts programs and reaps orphans without stealing supervised
// children's exit statuses. It is safe for concurrent use.
//
// While Run reaps, every child of the respawnd process must be started by
// this Launcher: an exit status of any other child could be taken by the
// reaper.
type Launcher struct {
	stdout, stderr io.Writer
	outMu          sync.Mutex // serialises whole lines on stdout and stderr
	logger         *slog.Logger
	shimPath       string
	subreaper      bool
	oomAdj         *int
	tailLines      int
	tailBytes      int

	// dropped counts, per program name, the output lines that could not be
	// written.
	droppedMu sync.Mutex
	dropped   map[string]*atomic.Uint64
	// noThreadMove is set once the kernel refused to move a single thread
	// into a cgroup v1 group; starts then go through the shim.
	noThreadMove atomic.Bool

	// reapMu is held for reading by Start from the fork until the child is
	// registered, and for writing by the reaper, so the reaper never sees a
	// supervised child it does not know about.
	reapMu   sync.RWMutex
	childMu  sync.Mutex
	children map[int]struct{} // pids of supervised children not yet reaped
	// poke wakes the reaper after a supervised child was reaped; buffered
	// so the sender never blocks, one pending wake-up is enough.
	poke chan struct{}

	devNullOnce sync.Once
	devNull     *os.File

	// out copies the output pipes of programs without an OutputFile.
	out outputMux
	// waiter waits for the exits of children started with a pidfd.
	waiter childWaiter
}

// NewLauncher returns a Launcher with cfg, zero values replaced by defaults.
func NewLauncher(cfg LauncherConfig) *Launcher {
	l := &Launcher{
		stdout:    cfg.Stdout,
		stderr:    cfg.Stderr,
		logger:    cfg.Logger,
		shimPath:  cfg.ShimPath,
		subreaper: cfg.Subreaper,
		oomAdj:    cfg.ChildOOMScoreAdj,
		tailLines: cfg.TailLines,
		tailBytes: cfg.TailBytes,
		dropped:   make(map[string]*atomic.Uint64),
		children:  make(map[int]struct{}),
		poke:      make(chan struct{}, 1),
	}
	if l.stdout == nil {
		l.stdout = os.Stdout
	}
	if l.stderr == nil {
		l.stderr = os.Stderr
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.shimPath == "" {
		l.shimPath = "/proc/self/exe"
	}
	if l.tailLines == 0 {
		l.tailLines = defaultTailLines
	}
	if l.tailBytes <= 0 {
		l.tailBytes = defaultTailBytes
	}
	l.tailLines, l.tailBytes = min(l.tailLines, 1<<20), min(l.tailBytes, 1<<30)
	l.out.l = l
	return l
}

// droppedCounter returns the dropped-lines counter of program.
func (l *Launcher) droppedCounter(program string) *atomic.Uint64 {
	l.droppedMu.Lock()
	defer l.droppedMu.Unlock()
	c := l.dropped[program]
	if c == nil {
		c = new(atomic.Uint64)
		l.dropped[program] = c
	}
	return c
}

// OutputDroppedLines returns how many lines of program's output, over all
// its instances since the Launcher was made, could not be written to its
// output file or to the Launcher's Stdout and Stderr (a full disk, a
// failed rotation, a reader that does not keep up).
func (l *Launcher) OutputDroppedLines(program string) uint64 {
	l.droppedMu.Lock()
	c := l.dropped[program]
	l.droppedMu.Unlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

// Process is one started instance. It is safe for concurrent use.
//
// The launcher closes Done once the exit status is in and OutputDone once
// every output line has been written; nobody else closes them.
type Process struct {
	pid       int
	startTime time.Time
	done      chan struct{}
	outDone   chan struct{}
	exit      ExitStatus // written before done is closed
	// tail is made on the first line of output, sized by tailLines and
	// tailBytes: a program that writes nothing costs no tail.
	tail                 atomic.Pointer[processTail]
	tailLines, tailBytes int32

	// sigMu is held for reading while signalling and for writing while
	// reaping, so that no signal is sent to a pid after it was reaped.
	sigMu  sync.RWMutex
	reaped bool
	// linger is the deadline, in Unix nanoseconds, until which the leader
	// is kept unreaped after its exit while other members of its process
	// group remain; 0 means none (see Linger).
	linger atomic.Int64
}

// Linger asks that, once the program's main process has exited, its
// process group get up to timeout (from now) to finish: the leader is kept
// unreaped (so the group id cannot be reused and Signal still reaches the
// group) until no other member is left or the time is up, then what is left
// gets SIGKILL (with Command.KillGroupOnExit) and the leader is reaped; Done
// closes after that. Without Linger the group is killed the moment the
// leader exits. Stops of programs that have no cgroup use it so that every
// member of the group gets the whole stop timeout.
func (p *Process) Linger(timeout time.Duration) {
	p.linger.Store(time.Now().Add(timeout).UnixNano())
}

// PID returns the pid of the program, which is also its process group and
// session id.
func (p *Process) PID() int { return p.pid }

// StartTime returns when the program had exec'd.
func (p *Process) StartTime() time.Time { return p.startTime }

// Done returns a channel the launcher closes once the exit status is in.
// It does not wait for output: see OutputDone.
func (p *Process) Done() <-chan struct{} { return p.done }

// OutputDone returns a channel the launcher closes once the output pipes
// reached end of file and every line was written (and the output file, if
// any, closed); that happens only after every process holding the pipes
// (grandchildren too) closed them.
func (p *Process) OutputDone() <-chan struct{} { return p.outDone }

// Exit returns how the instance ended; it is the zero ExitStatus until Done
// is closed.
func (p *Process) Exit() ExitStatus {
	select {
	case <-p.done:
		return p.exit
	default:
		return ExitStatus{}
	}
}

// Kill sends SIGKILL to the whole process group.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// ExitStatus is how an instance ended.
type ExitStatus struct {
	// Time is when the exit status was collected.
	Time time.Time
	// Code is the exit code when !Signaled; -1 when no status could be
	// collected.
	Code int
	// Signaled says a signal ended the program.
	Signaled bool
	// Signal is the signal when Signaled.
	Signal syscall.Signal
	// Core says a core dump was written.
	Core bool
	// Unknown says how the process ended could not be learnt (a process
	// respawnd did not start, on a kernel that does not report a non-child's
	// exit status); the other fields are then not meaningful.
	Unknown bool
}
