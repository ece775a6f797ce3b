package watch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/respawnd/respawnd/internal/pseudofs"
	"github.com/respawnd/respawnd/internal/securefs"
)

// maxProcFile caps reads of single /proc files. Their reported size is 0
// (or wrong), so they are read to EOF; the cap guards against a runaway.
const maxProcFile = 1 << 20

// Matcher selects programs among the processes in /proc. Every key that is
// set must match; a Matcher must set at least one of Comm, Exe, Cmdline and
// Pidfile. User only narrows the others down.
type Matcher struct {
	// Comm is compared exactly with the process name (/proc/PID/comm, at
	// most 15 bytes; spaces and parentheses are kept).
	Comm string
	// Exe is compared with the resolved executable (/proc/PID/exe), either
	// as given or with its own symbolic links resolved. The " (deleted)"
	// the kernel appends after the binary was replaced is ignored.
	Exe string
	// Cmdline must match the arguments joined with single spaces.
	Cmdline *regexp.Regexp
	// Pidfile names a file holding the pid of the one process to consider.
	// A missing or empty pidfile matches nothing.
	Pidfile string
	// User is a user name or a numeric uid compared with the process's
	// effective uid.
	User string
	// Env is a KEY=value entry that must be in the process's initial
	// environment (/proc/PID/environ). respawnd tags the programs it
	// starts this way, to find them again after its own restart.
	Env string
}

func (m Matcher) empty() bool {
	return m.Comm == "" && m.Exe == "" && m.Cmdline == nil && m.Pidfile == "" && m.Env == ""
}

// Process is one process found in /proc.
type Process struct {
	// Identity is the process's pid and start time.
	Identity Identity
	// Comm is the process name (/proc/PID/comm) without the trailing
	// newline.
	Comm string
	// Exe is the resolved executable path with any " (deleted)" suffix
	// removed; "" when it cannot be read (no permission, or the process
	// exited while it was read).
	Exe string
	// Cmdline is the argument vector (/proc/PID/cmdline).
	Cmdline []string
	// UID is the effective user id.
	UID int
	// PPID is the parent's pid.
	PPID int
	// PGID is the process group id.
	PGID int
}

// Scanner reads processes from a procfs. It keeps no state between calls
// besides the boot time, read once, and is safe for concurrent use.
type Scanner struct {
	fs       procfs.FS
	root     string
	log      *slog.Logger
	pageSize uint64
	bootTime func() (time.Time, error)
}

// New returns a Scanner for the procfs at cfg.ProcRoot. Only ProcRoot and
// Logger of cfg are used.
func New(cfg Config) (*Scanner, error) {
	root := cfg.procRoot()
	pfs, err := procfs.NewFS(root)
	if err != nil {
		return nil, fmt.Errorf("opening procfs at %s: %w", root, err)
	}
	s := &Scanner{fs: pfs, root: root, log: cfg.logger(), pageSize: uint64(os.Getpagesize())}
	s.bootTime = sync.OnceValues(func() (time.Time, error) {
		st, err := pfs.Stat()
		if err != nil {
			return time.Time{}, fmt.Errorf("reading boot time from %s/stat: %w", root, err)
		}
		return time.Unix(int64(st.BootTime), 0), nil
	})
	return s, nil
}

// isChurn reports whether err only says that a process went away while it
// was read: normal on a live system, never an error of the caller's.
func isChurn(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// Match returns the live processes that match m, oldest first (by start
// time, then pid). Kernel threads and zombies never match; processes that
// vanish during the scan are skipped. It fails only when m is invalid
// (ErrInvalidMatcher), the pidfile cannot be read for a reason other than
// its absence or is refused (see readPidfile: it must be root's,
// respawnd's or m.User's), or /proc cannot be listed.
func (s *Scanner) Match(m Matcher) ([]Process, error) {
	if m.empty() {
		return nil, fmt.Errorf("%w: no comm, exe, cmdline, pidfile or env given", ErrInvalidMatcher)
	}
	uid := -1
	if m.User != "" {
		u, err := lookupUID(m.User)
		if err != nil {
			return nil, fmt.Errorf("%w: user %q: %w", ErrInvalidMatcher, m.User, err)
		}
		uid = u
	}
	exes := exeCandidates(m.Exe)

	var procs procfs.Procs
	if m.Pidfile != "" {
		trusted := []int{0, os.Geteuid()}
		if uid >= 0 {
			trusted = append(trusted, uid)
		}
		pid, ok, err := readPidfile(m.Pidfile, trusted)
		if err != nil || !ok {
			return nil, err
		}
		p, err := s.fs.Proc(pid)
		if err != nil {
			if isChurn(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("reading pid %d of pidfile %s: %w", pid, m.Pidfile, err)
		}
		procs = procfs.Procs{p}
	} else {
		var err error
		procs, err = s.fs.AllProcs()
		if err != nil {
			return nil, fmt.Errorf("listing processes in %s: %w", s.root, err)
		}
	}

	var out []Process
	for _, p := range procs {
		proc, ok := s.match(p, m, exes, uid)
		if ok {
			out = append(out, proc)
		}
	}
	slices.SortFunc(out, func(a, b Process) int {
		if a.Identity.StartTime != b.Identity.StartTime {
			if a.Identity.StartTime < b.Identity.StartTime {
				return -1
			}
			return 1
		}
		return a.Identity.PID - b.Identity.PID
	})
	return out, nil
}

// match reads the process p and reports whether it matches m. Cheap checks
// come first, so that most processes cost one read of their stat file. Any
// read error skips the process: vanished processes are normal churn, and a
// file that cannot be read (permission) cannot prove a match.
func (s *Scanner) match(p procfs.Proc, m Matcher, exes []string, uid int) (Process, bool) {
	st, err := p.Stat()
	if err != nil {
		s.skip(p.PID, "stat", err)
		return Process{}, false
	}
	// The comm is taken from stat rather than from Proc.Comm, which trims
	// spaces that belong to the name. Both are the kernel's task comm.
	if st.Flags&pfKthread != 0 || deadState(firstByte(st.State)) {
		return Process{}, false
	}
	if m.Comm != "" && st.Comm != m.Comm {
		return Process{}, false
	}
	if m.Env != "" {
		env, err := p.Environ()
		if err != nil {
			s.skip(p.PID, "environ", err)
			return Process{}, false
		}
		if !slices.Contains(env, m.Env) {
			return Process{}, false
		}
	}
	proc := Process{
		Identity: Identity{PID: p.PID, StartTime: st.Starttime},
		Comm:     st.Comm,
		PPID:     st.PPID,
		PGID:     st.PGRP,
	}
	if proc.Cmdline, err = p.CmdLine(); err != nil {
		s.skip(p.PID, "cmdline", err)
		return Process{}, false
	}
	if m.Cmdline != nil && !m.Cmdline.MatchString(strings.Join(proc.Cmdline, " ")) {
		return Process{}, false
	}
	exe, err := p.Executable()
	if err != nil {
		// Without CAP_SYS_PTRACE the links of other users' processes are
		// unreadable; that only rules the process out when Exe is asked for.
		s.skip(p.PID, "exe", err)
		exe = ""
	}
	proc.Exe = strings.TrimSuffix(exe, " (deleted)")
	if len(exes) > 0 && (proc.Exe == "" || !slices.Contains(exes, proc.Exe)) {
		return Process{}, false
	}
	status, err := p.NewStatus()
	if err != nil {
		s.skip(p.PID, "status", err)
		return Process{}, false
	}
	proc.UID = int(status.UIDs[1])
	if uid >= 0 && proc.UID != uid {
		return Process{}, false
	}
	// The pid may have been reused between the first read of stat and the
	// reads above, which would pair this identity with another process's
	// command line. Confirm that the same process is still there.
	if again, err := s.readStat(p.PID); err != nil || again.StartTime != st.Starttime || deadState(again.State) {
		return Process{}, false
	}
	return proc, true
}

func (s *Scanner) skip(pid int, what string, err error) {
	if isChurn(err) {
		s.log.Debug("process vanished during scan", "pid", pid, "file", what)
		return
	}
	s.log.Debug("skipping unreadable process", "pid", pid, "file", what, "err", err)
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// exeCandidates returns the paths that Matcher.Exe accepts: as written, and
// with its symbolic links resolved (/usr/bin/python3 runs as
// /usr/bin/python3.13 in /proc/PID/exe).
func exeCandidates(exe string) []string {
	if exe == "" {
		return nil
	}
	out := []string{filepath.Clean(exe)}
	if r, err := filepath.EvalSymlinks(exe); err == nil && r != out[0] {
		out = append(out, r)
	}
	return out
}

// maxPidfile caps the bytes read from a pidfile.
const maxPidfile = 4096

// readPidfile reads a pid from path. ok is false, with no error, when the
// file is missing or empty (a daemon that has not written it yet).
//
// The file is opened by internal/securefs's rules, trusting the uids in
// trusted (root, respawnd's and the matched user's): every directory on
// the way and the file must be owned by one of them, no directory may be
// writable by others unless sticky, a symbolic link of anyone else is not
// followed, and the file must be a regular file with one link. Anything
// else is an error, so that another user cannot point respawnd at a pid of
// their choosing. Even so the pid is only a hint: whoever may write the
// file may write any pid, so the caller must prove that the process is the
// program (its executable, user, tag) before adopting or signalling it.
func readPidfile(path string, trusted []int) (pid int, ok bool, err error) {
	file, err := securefs.OpenFile(path, os.O_RDONLY, 0, securefs.Policy{Trusted: trusted})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("reading pidfile %s: %w", path, err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxPidfile))
	if err != nil {
		return 0, false, fmt.Errorf("reading pidfile %s: %w", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false, nil
	}
	pid, err = strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, false, fmt.Errorf("reading pidfile %s: %q is not a pid", path, f[0])
	}
	return pid, true, nil
}

func readCapped(path string, limit int64) ([]byte, error) {
	return pseudofs.Read(path, int(limit))
}

// readStat reads and parses /proc/PID/stat.
func (s *Scanner) readStat(pid int) (statFields, error) {
	b, err := readCapped(filepath.Join(s.root, strconv.Itoa(pid), "stat"), maxProcFile)
	if err != nil {
		return statFields{}, err
	}
	sf, err := parseStat(b)
	if err != nil {
		return statFields{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return sf, nil
}

// Identify returns the Identity of the live process pid. It fails with an
// error wrapping ErrNotFound when there is no such process or it is a
// zombie.
func (s *Scanner) Identify(pid int) (Identity, error) {
	sf, err := s.readStat(pid)
	if err != nil {
		if isChurn(err) {
			return Identity{}, fmt.Errorf("identifying pid %d: %w", pid, ErrNotFound)
		}
		return Identity{}, fmt.Errorf("identifying pid %d: %w", pid, err)
	}
	if deadState(sf.State) {
		return Identity{}, fmt.Errorf("identifying pid %d: zombie: %w", pid, ErrNotFound)
	}
	return Identity{PID: pid, StartTime: sf.StartTime}, nil
}

// Alive reports whether the process id names still runs: its pid exists,
// is not a zombie, and has the same start time. A pid reused by another
// process is not alive. Any read error other than the process's absence
// also gives false, as liveness cannot be proved.
func (s *Scanner) Alive(id Identity) bool {
	if id.PID <= 0 {
		return false
	}
	sf, err := s.readStat(id.PID)
	return err == nil && !deadState(sf.State) && sf.StartTime == id.StartTime
}

// zombieExit returns the exit status of id while it is an unreaped zombie:
// field 52 of its stat. ok is false once it is reaped (or was never dead).
func (s *Scanner) zombieExit(id Identity, at time.Time) (ExitInfo, bool) {
	sf, err := s.readStat(id.PID)
	if err != nil || sf.StartTime != id.StartTime || !deadState(sf.State) || !sf.HasExitCode {
		return ExitInfo{}, false
	}
	return exitFromWaitStatus(sf.ExitCode, at), true
}

// BootTime returns the boot time from the btime line of /proc/stat, read
// once and then cached.
func (s *Scanner) BootTime() (time.Time, error) { return s.bootTime() }

// Started returns the wall-clock start time of id (see TicksToTime for its
// precision).
func (s *Scanner) Started(id Identity) (time.Time, error) {
	boot, err := s.BootTime()
	if err != nil {
		return time.Time{}, err
	}
	return TicksToTime(boot, id.StartTime), nil
}

// TreeRSS returns, for each of roots that is a live process, the resident
// memory in bytes of it and all its descendants, from one pass over /proc
// (a scrape of many programs costs one pass, not one per program). Roots
// that are gone or zombies are left out of the map. Kernel threads and
// processes that vanish mid-read are skipped.
func (s *Scanner) TreeRSS(roots ...int) (map[int]uint64, error) {
	procs, err := s.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", s.root, err)
	}
	children := make(map[int][]int, len(procs))
	rss := make(map[int]uint64, len(procs))
	live := make(map[int]bool, len(roots))
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			s.skip(p.PID, "stat", err)
			continue
		}
		if st.Flags&pfKthread != 0 {
			continue
		}
		children[st.PPID] = append(children[st.PPID], p.PID)
		if st.RSS > 0 {
			rss[p.PID] = uint64(st.RSS) * s.pageSize
		}
		if !deadState(firstByte(st.State)) {
			live[p.PID] = true
		}
	}
	out := make(map[int]uint64, len(roots))
	for _, root := range roots {
		if !live[root] {
			continue
		}
		var total uint64
		seen := map[int]bool{}
		queue := []int{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			total += rss[p]
			queue = append(queue, children[p]...)
		}
		out[root] = total
	}
	return out, nil
}

// maxTreeDepth bounds the walk up a process's ancestors in Descends.
const maxTreeDepth = 64

// Descends reports whether the live process pid is ancestor or one of its
// descendants: ancestor's pid is found walking up the parents of pid. A
// process that cannot be read, or a chain deeper than maxTreeDepth, gives
// false. Both pids are the caller's to keep alive: a pid reused since does
// not descend from a new process started after it.
func (s *Scanner) Descends(pid, ancestor int) bool {
	if pid <= 0 || ancestor <= 0 {
		return false
	}
	for range maxTreeDepth {
		if pid == ancestor {
			return true
		}
		if pid <= 1 {
			return false
		}
		st, err := s.readStat(pid)
		if err != nil || deadState(st.State) {
			return false
		}
		pid = st.PPID
	}
	return false
}
