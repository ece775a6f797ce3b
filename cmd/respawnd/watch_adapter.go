package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

var (
	_ supervisor.ProcessSource = (*processSource)(nil)
	_ supervisor.Process       = watchedProc{}
)

// processSource lets the supervisor find, prove and watch processes
// respawnd did not start in this life. It trusts nothing another user can
// forge: a match must also run as the program's user and executable, a tag
// must carry this daemon's MAC and belong to the process that carries it,
// and a recorded instance must still be the same process of the same boot.
type processSource struct {
	log    *slog.Logger
	scan   *watch.Scanner
	w      *watch.Watcher
	boot   time.Time
	bootID string
	// tagger checks instance tags; nil when tags are off.
	tagger *watch.Tagger
	// member reports cgroup membership (proof for an instance respawnd
	// started); nil without cgroups.
	member func(pid int, path string) (bool, error)

	mu       sync.Mutex
	tagged   map[string][]watch.Details // by program, from one pass over /proc
	taggedAt time.Time
	// regexps caches compiled match.cmdline patterns (on_missing: wait
	// scans every few seconds), at most maxRegexps of them.
	reMu    sync.Mutex
	regexps map[string]*regexp.Regexp
}

// maxRegexps bounds the pattern cache; reloads that change patterns start
// it over.
const maxRegexps = 1024

// cmdline compiles a match.cmdline pattern once; "" gives nil.
func (s *processSource) cmdline(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	s.reMu.Lock()
	defer s.reMu.Unlock()
	if re, ok := s.regexps[pattern]; ok {
		return re, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	if s.regexps == nil || len(s.regexps) >= maxRegexps {
		s.regexps = map[string]*regexp.Regexp{}
	}
	s.regexps[pattern] = re
	return re, nil
}

// taggedTTL is how long one pass over /proc for tagged processes serves
// the programs that look for theirs (at start-up, all of them at once).
const taggedTTL = 5 * time.Second

func newProcessSource(scan *watch.Scanner, w *watch.Watcher, bootID string, tagger *watch.Tagger, logger *slog.Logger) (*processSource, error) {
	boot, err := scan.BootTime()
	if err != nil {
		return nil, fmt.Errorf("reading boot time: %w", err)
	}
	return &processSource{log: logger, scan: scan, w: w, boot: boot, bootID: bootID, tagger: tagger}, nil
}

// expectedUID is the uid a process must run as to be the program's: the
// match's user, else the program's, else respawnd's own.
func expectedUID(spec config.Program) (int, error) {
	name := spec.User
	if spec.Match != nil && spec.Match.User != "" {
		name = spec.Match.User
	}
	if name == "" {
		return os.Geteuid(), nil
	}
	uid, err := watch.LookupUID(name)
	if err != nil {
		return 0, fmt.Errorf("looking up user %s: %w", name, err)
	}
	return uid, nil
}

// expectedExe is the executable a process must run to be the program's:
// the match's exe, else the program's resolved command.
func expectedExe(spec config.Program) (string, error) {
	if spec.Match != nil && spec.Match.Exe != "" {
		return spec.Match.Exe, nil
	}
	if len(spec.Command) == 0 {
		return "", errors.New("no command")
	}
	exe, err := restart.ResolveCommand(spec.Command[0], spec.Dir)
	if err != nil {
		return "", fmt.Errorf("resolving the program's executable %s: %w", spec.Command[0], err)
	}
	return exe, nil
}

func (s *processSource) Find(spec config.Program) ([]supervisor.Found, error) {
	m := spec.Match
	if m == nil {
		return nil, nil
	}
	re, err := s.cmdline(m.Cmdline)
	if err != nil {
		return nil, err
	}
	uid, err := expectedUID(spec)
	if err != nil {
		return nil, err
	}
	exe, err := expectedExe(spec)
	if err != nil {
		return nil, err
	}
	ps, err := s.scan.Match(watch.Matcher{Comm: m.Comm, Exe: exe, Cmdline: re, Pidfile: m.Pidfile, User: strconv.Itoa(uid)})
	if err != nil {
		return nil, err
	}
	out := make([]supervisor.Found, 0, len(ps))
	for _, p := range ps {
		d, err := s.scan.Inspect(p.Identity.PID)
		if err != nil || d.StartTime != p.Identity.StartTime || d.Exiting {
			continue
		}
		if d.UID != uid || d.EUID != uid {
			// A set-user-id program run by another user: not the program's.
			s.log.Debug("matching process runs with other uids", "program", spec.Name, "pid", d.PID, "uid", d.UID, "euid", d.EUID)
			continue
		}
		out = append(out, supervisor.Found{PID: d.PID, StartTime: d.StartTime, Started: s.Started(d.StartTime)})
	}
	return out, nil
}

func (s *processSource) FindTagged(program string) ([]supervisor.Found, error) {
	if s.tagger == nil {
		return nil, nil
	}
	ds, err := s.taggedOf(program)
	if err != nil {
		return nil, err
	}
	var out []supervisor.Found
	for _, d := range ds {
		t, err := s.tagger.Valid(d.Tag, program, d.StartTime)
		if err != nil {
			s.log.Warn("process carries an instance tag that is not valid for it: not adopted", "program", program, "pid", d.PID, "err", err)
			continue
		}
		// respawnd starts every program as the leader of its own session
		// and group; a process the program forked and that inherited the
		// tag fails the tag's start-time check or this one.
		if d.PGID != d.PID || d.SID != d.PID {
			s.log.Warn("tagged process does not lead its session: not adopted", "program", program, "pid", d.PID)
			continue
		}
		out = append(out, supervisor.Found{PID: d.PID, StartTime: d.StartTime, Started: s.Started(d.StartTime), Generation: t.Generation, ConfigHash: t.Config})
	}
	return out, nil
}

// taggedOf returns the tagged processes of program, from a pass over /proc
// shared by every program that asks within taggedTTL.
func (s *processSource) taggedOf(program string) ([]watch.Details, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tagged == nil || time.Since(s.taggedAt) > taggedTTL {
		all, err := s.scan.Tagged(watch.Prefix(""))
		if err != nil {
			return nil, err
		}
		s.tagged = map[string][]watch.Details{}
		for _, d := range all {
			if t, err := s.tagger.Verify(d.Tag); err == nil {
				s.tagged[t.Program] = append(s.tagged[t.Program], d)
			}
		}
		s.taggedAt = time.Now()
	}
	return s.tagged[program], nil
}

func (s *processSource) Verify(inst supervisor.Instance, spec *config.Program, cgroupPath string) error {
	if inst.BootID != s.bootID {
		return fmt.Errorf("%w: recorded in boot %s, this is boot %s", supervisor.ErrGone, inst.BootID, s.bootID)
	}
	d, err := s.scan.Inspect(inst.PID)
	if err != nil {
		if errors.Is(err, watch.ErrNotFound) {
			return fmt.Errorf("%w: %w", supervisor.ErrGone, err)
		}
		return err
	}
	if d.StartTime != inst.StartTime {
		return fmt.Errorf("%w: pid %d now belongs to a process started at %d, not %d", supervisor.ErrGone, inst.PID, d.StartTime, inst.StartTime)
	}
	if d.Exiting {
		return fmt.Errorf("%w: pid %d is exiting", supervisor.ErrGone, inst.PID)
	}
	if !inst.Child {
		// A process respawnd adopted: the same executable and user as
		// when it was adopted, and still a match of the program's
		// definition. Without a definition (the program is gone) nothing
		// proves respawnd may touch it.
		if inst.Exe == "" || d.Exe != inst.Exe || d.UID != inst.UID || d.EUID != inst.UID {
			return fmt.Errorf("%w: pid %d runs %q as uid %d/%d, recorded %q as uid %d", watch.ErrNotProven, inst.PID, d.Exe, d.UID, d.EUID, inst.Exe, inst.UID)
		}
		if spec == nil || spec.Match == nil {
			return fmt.Errorf("%w: pid %d was adopted by a match that is no longer configured", watch.ErrNotProven, inst.PID)
		}
		found, err := s.Find(*spec)
		if err != nil {
			return fmt.Errorf("%w: matching pid %d: %w", watch.ErrNotProven, inst.PID, err)
		}
		for _, f := range found {
			if f.PID == inst.PID && f.StartTime == inst.StartTime {
				return nil
			}
		}
		return fmt.Errorf("%w: pid %d no longer matches the program's match", watch.ErrNotProven, inst.PID)
	}
	// A process respawnd started: it leads its own session and group, and
	// carries this daemon's tag for it, or sits in the program's cgroup.
	if d.PGID != d.PID || d.SID != d.PID {
		return fmt.Errorf("%w: pid %d does not lead its session", watch.ErrNotProven, inst.PID)
	}
	if s.tagger != nil {
		t, err := s.tagger.Valid(d.Tag, inst.Program, d.StartTime)
		if err == nil && t.Generation == inst.Generation {
			return nil
		}
	}
	if cgroupPath != "" && s.member != nil {
		if in, err := s.member(inst.PID, cgroupPath); err == nil && in {
			return nil
		}
	}
	return fmt.Errorf("%w: pid %d carries no valid tag of this daemon for %s and is not in its cgroup", watch.ErrNotProven, inst.PID, inst.Program)
}

func (s *processSource) Watch(pid int, startTime uint64, group bool) (supervisor.Process, error) {
	p, err := s.w.Watch(watch.Identity{PID: pid, StartTime: startTime})
	if err != nil {
		return nil, err
	}
	return watchedProc{Proc: p, group: group}, nil
}

func (s *processSource) Identify(pid int) (supervisor.Instance, error) {
	d, err := s.scan.InspectUntagged(pid)
	if err != nil {
		return supervisor.Instance{}, err
	}
	return supervisor.Instance{PID: pid, StartTime: d.StartTime, BootID: s.bootID, Exe: d.Exe, UID: d.EUID}, nil
}

func (s *processSource) Started(ticks uint64) time.Time { return watch.TicksToTime(s.boot, ticks) }

// exiting reports whether pid is being torn down, for the supervisor's
// attribution of cgroup OOM kills.
func (s *processSource) exiting(pid int) bool {
	d, err := s.scan.InspectUntagged(pid)
	return err != nil || d.Exiting
}

// watchedProc is an adopted process as the supervisor sees it.
type watchedProc struct {
	*watch.Proc
	// group is set when the process leads its own process group (respawnd
	// started it in an earlier life, with setsid), so stop signals reach
	// the whole group as they would for a child.
	group bool
}

func (p watchedProc) Exit() restart.ExitStatus {
	e := p.Proc.Exit()
	if !e.Known {
		return restart.ExitStatus{Time: e.Time, Code: -1, Unknown: true}
	}
	return restart.ExitStatus{Time: e.Time, Code: e.Code, Signaled: e.Signaled, Signal: e.Signal, Core: e.Core}
}

func (p watchedProc) Signal(sig syscall.Signal) error {
	// The pidfd signal goes first: it fails once the leader is gone, so the
	// group signal after it cannot reach a reused process group id.
	if err := p.Proc.Signal(sig); err != nil {
		if errors.Is(err, watch.ErrNotFound) {
			return fmt.Errorf("%w: %w", restart.ErrProcessDone, err)
		}
		return err
	}
	if p.group {
		if err := unix.Kill(-p.PID(), sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling process group %d: %w", p.PID(), err)
		}
	}
	return nil
}
