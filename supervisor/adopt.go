package supervisor

import (
	"sort"
	"time"

	"github.com/respawnd/respawnd/config"
)

// ProcessSource finds and watches processes respawnd did not start.
type ProcessSource interface {
	// Find returns the running processes that match m, oldest first.
	Find(m config.Match) ([]Found, error)
	// FindTagged returns the running process-group leaders whose initial
	// environment holds entry (KEY=value), oldest first.
	FindTagged(entry string) ([]Found, error)
	// Watch reports the death of the process with this identity (pid and
	// start time in clock ticks since boot, /proc/PID/stat field 22). It
	// fails when no live process has that identity, so a reused pid is
	// never taken for the old process. group says the process leads its
	// own process group, which stop signals then reach as a whole.
	Watch(pid int, startTime uint64, group bool) (Process, error)
	// StartTime reads a live process's start time in clock ticks.
	StartTime(pid int) (uint64, error)
	// Started converts a start time in clock ticks to wall-clock time.
	Started(startTime uint64) time.Time
}

// Found is one running process that matched.
type Found struct {
	PID       int
	StartTime uint64
	Started   time.Time
}

// Instance is one program instance as respawnd records it across its own
// restarts (the state file).
type Instance struct {
	Program    string
	PID        int
	StartTime  uint64
	ConfigHash string
	Generation uint64
	Restarts   uint64
	// Child is true when respawnd started the instance itself.
	Child bool
}

// adopt takes over a running process respawnd did not start (or started in
// an earlier life) as the program's current instance.
func (p *program) adopt(proc Process, started time.Time, gen, restarts uint64, how string) {
	p.proc, p.procDone, p.pid = proc, proc.Done(), proc.PID()
	p.started = started
	if gen > p.gen {
		p.gen = gen
	}
	if restarts > p.restarts {
		p.restarts = restarts
	}
	p.s.ownPID(p.pid, p)
	p.log.Info("adopted running instance", "pid", p.pid, "generation", p.gen, "how", how)
	p.setState(StateRunning)
	p.hostBaseOK = false
	if p.group == nil && p.s.cfg.HostOOMKills != nil {
		if n, err := p.s.cfg.HostOOMKills(); err == nil {
			p.hostBase, p.hostBaseOK = n, true
		}
	}
	p.s.stateChanged()
}

// adoptAtStart looks for an instance to take over instead of starting one:
// first the one recorded in the state file, then, for programs with match,
// one found in /proc. It reports whether the program needs no start now.
func (p *program) adoptAtStart() bool {
	src := p.s.cfg.Processes
	if src == nil {
		return false
	}
	if inst, ok := p.s.cfg.Adopt[p.name]; ok && inst.PID > 0 {
		proc, err := src.Watch(inst.PID, inst.StartTime, inst.Child)
		if err == nil {
			p.child = inst.Child
			p.adopt(proc, src.Started(inst.StartTime), inst.Generation, inst.Restarts, "state file")
			if inst.ConfigHash != p.specHash {
				p.log.Info("definition changed while respawnd was down, restarting onto it")
				p.beginStop(startAgain)
			}
			return true
		}
		p.diedWhileDown(inst)
	}
	// A program this respawnd started carries its tag in its environment:
	// that finds it even when the state file is missing, or did not yet
	// record the instance when respawnd died.
	if tag := p.tag(); tag != "" {
		if found, err := src.FindTagged(tag); err != nil {
			p.log.Warn("looking for a tagged process", "err", err)
		} else if p.adoptFound(found, "environment tag", true) {
			return true
		}
	}
	m := p.spec.Match
	if m == nil {
		return false
	}
	if p.adoptMatch(*m) {
		return true
	}
	if p.spec.OnMissing == config.OnMissingWait {
		p.lastErr = "waiting for a matching process"
		p.setState(StateStopped)
		p.rescanC = p.s.clock.After(rescanInterval)
		return true
	}
	return false
}

// rescanInterval is how often a program with on_missing: wait looks for its
// process to appear.
const rescanInterval = 2 * time.Second

// adoptMatch adopts the oldest running process that matches m.
func (p *program) adoptMatch(m config.Match) bool {
	found, err := p.s.cfg.Processes.Find(m)
	if err != nil {
		p.log.Warn("looking for a matching process", "err", err)
		return false
	}
	return p.adoptFound(found, "match", false)
}

// adoptFound adopts the oldest of found that can still be watched.
func (p *program) adoptFound(found []Found, how string, group bool) bool {
	sort.SliceStable(found, func(i, j int) bool { return found[i].StartTime < found[j].StartTime })
	for i, f := range found {
		proc, err := p.s.cfg.Processes.Watch(f.PID, f.StartTime, group)
		if err != nil {
			continue // gone since the scan
		}
		if others := len(found) - i - 1; others > 0 {
			pids := make([]int, 0, others)
			for _, o := range found[i+1:] {
				pids = append(pids, o.PID)
			}
			p.log.Warn("several processes match, adopting the oldest", "pid", f.PID, "others", pids, "how", how)
		}
		p.lastErr = ""
		p.child = group
		p.adopt(proc, f.Started, 0, 0, how)
		return true
	}
	return false
}

func (p *program) onRescan() {
	if p.state != StateStopped || p.proc != nil || p.spec.Match == nil {
		return
	}
	if !p.adoptMatch(*p.spec.Match) {
		p.rescanC = p.s.clock.After(rescanInterval)
	}
}

// diedWhileDown reports an instance from the state file that is gone: its
// exit is unknown unless the kernel's ring buffer still holds an OOM report
// for it.
func (p *program) diedWhileDown(inst Instance) {
	now := p.s.clock.Now()
	e := Exit{Program: p.name, Generation: inst.Generation, PID: inst.PID, Time: now, Reason: ReasonUnknown, Settled: now}
	if p.s.cfg.Retained != nil {
		if kills, err := p.s.cfg.Retained(); err == nil {
			for i := range kills {
				if kills[i].PID == inst.PID {
					k := kills[i]
					e.Reason, e.OOM = ReasonOOMKill, &k
					if !k.Time.IsZero() {
						e.Time = k.Time
					}
				}
			}
		}
	}
	if inst.Generation > p.gen {
		p.gen = inst.Generation
	}
	p.restarts = inst.Restarts + 1 // the start that follows is a restart
	p.log.Warn("instance died while respawnd was down", "pid", inst.PID, "reason", e.Reason.String())
	p.last = &e
	p.finalize(e)
	p.s.events.add(exitEvent(e))
}

// instance is what the state file records for the program now, if it has
// a running instance.
func (p *program) instance() (Instance, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	if st.PID == 0 {
		return Instance{}, false
	}
	return Instance{Program: p.name, PID: st.PID, ConfigHash: p.stHash, Generation: st.Generation, Restarts: st.Restarts, Child: p.stChild}, true
}

// saveState writes the state file from every program's current instance.
// ticks caches start times by pid, so each instance's /proc is read once.
func (s *Supervisor) saveState(ticks map[int]uint64) {
	s.mu.Lock()
	ps := make([]*program, 0, len(s.programs))
	for _, p := range s.programs {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	var out []Instance
	seen := map[int]bool{}
	for _, p := range ps {
		inst, ok := p.instance()
		if !ok {
			continue
		}
		t, ok := ticks[inst.PID]
		if !ok {
			var err error
			if t, err = s.cfg.Processes.StartTime(inst.PID); err != nil {
				continue // gone already; its death is on its way
			}
			ticks[inst.PID] = t
		}
		inst.StartTime = t
		seen[inst.PID] = true
		out = append(out, inst)
	}
	for pid := range ticks {
		if !seen[pid] {
			delete(ticks, pid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Program < out[j].Program })
	if err := s.cfg.SaveState(out); err != nil {
		s.log.Warn("writing state file", "err", err)
	}
}

// stateChanged asks the state writer for a new state file; requests that
// come while one is pending are merged.
func (s *Supervisor) stateChanged() {
	select {
	case s.stateC <- struct{}{}:
	default:
	}
}

// TagKey is the environment variable respawnd sets in every program it
// starts, to know the program again after its own restart.
const TagKey = "RESPAWND_INSTANCE"

// tag is the program's KEY=value environment tag, or "" when tags are off.
func (p *program) tag() string {
	if p.s.cfg.Tag == "" {
		return ""
	}
	return TagKey + "=" + p.s.cfg.Tag + "/" + p.name
}
