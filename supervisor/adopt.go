package supervisor

import (
	"errors"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/config"
)

// ProcessSource finds and watches processes respawnd did not start in this
// life. Everything it returns is proven, never guessed from what another
// user could forge (environment, comm, cmdline or pidfile contents alone).
type ProcessSource interface {
	// Find returns the running processes that match spec.Match and run as
	// the program would run: as its user (match.user, else user, else
	// respawnd's own) and its executable (match.exe, else the resolved
	// command[0]). Oldest first.
	Find(spec config.Program) ([]Found, error)
	// FindTagged returns the running process-group leaders that carry a
	// valid instance tag of this daemon for program (see Config.Tag),
	// oldest first.
	FindTagged(program string) ([]Found, error)
	// Verify proves that inst, as the state file recorded it, still names
	// the same process: same boot, pid and start time; for an instance
	// respawnd started (Child), a valid tag of its own or membership of the
	// program's cgroup (cgroup, "" when it has none); for one it adopted,
	// the recorded executable and uid, and a match of spec (nil when the
	// program is gone from the configuration: such an instance is never
	// proven). An error wrapping ErrGone says the process is gone; any
	// other error that it cannot be proven.
	Verify(inst Instance, spec *config.Program, cgroup string) error
	// Watch reports the death of the process with this identity (pid and
	// start time in clock ticks since boot, /proc/PID/stat field 22). It
	// fails when no live process has that identity, so a reused pid is
	// never taken for the old process. group says the process leads its
	// own process group, which stop signals then reach as a whole.
	Watch(pid int, startTime uint64, group bool) (Process, error)
	// Identify reads what the state file records about a live process:
	// PID, StartTime, BootID, Exe and UID.
	Identify(pid int) (Instance, error)
	// Started converts a start time in clock ticks to wall-clock time.
	Started(startTime uint64) time.Time
}

// ErrGone says a recorded process no longer runs.
var ErrGone = errors.New("supervisor: recorded process is gone")

// Found is one running process that matched.
type Found struct {
	PID       int
	StartTime uint64
	Started   time.Time
	// Generation and ConfigHash are what the instance tag of a process
	// respawnd started says; zero for a match.
	Generation uint64
	ConfigHash string
}

// Instance is one program instance as respawnd records it across its own
// restarts (the state file).
type Instance struct {
	Program    string
	PID        int
	StartTime  uint64
	BootID     string
	Exe        string
	UID        int
	ConfigHash string
	Generation uint64
	Restarts   uint64
	// Child is true when respawnd started the instance itself.
	Child bool
	// StopSignal and StopTimeout are how the program was to be stopped,
	// for an instance whose program is gone from the configuration.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
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
	if p.notifyEnv() != nil {
		// The instance kept the socket of respawnd's earlier life: the
		// same name.
		cgroup := ""
		if p.group != nil && p.child {
			cgroup = p.group.Path()
		}
		p.setMember(p.pid, cgroup)
	}
	p.watchLiveness(how)
	p.setState(StateRunning)
	// Logged once the status shows the instance: whoever reads the line
	// and then asks for the status finds it there.
	p.log.Info("adopted running instance", "pid", p.pid, "generation", p.gen, "how", how)
	p.hostBaseOK = false
	// Without a cgroup of its own to decide (see gather), the host's
	// counter can still rule out an OOM kill.
	if (p.group == nil || !p.child) && p.s.cfg.HostOOMKills != nil {
		if n, err := p.s.cfg.HostOOMKills(); err == nil {
			p.hostBase, p.hostBaseOK = n, true
		}
	}
	p.s.stateChanged()
	p.watchMemory()
}

// adoptAtStart looks for an instance to take over instead of starting one:
// the one recorded in the state file, then (in the first configuration
// after respawnd's start) one carrying this daemon's tag, then, for
// programs with match, one found in /proc. It reports whether the program
// needs no start now.
func (p *program) adoptAtStart() bool {
	src := p.s.cfg.Processes
	if src == nil {
		return false
	}
	var minGen uint64
	if inst := p.s.takeRecorded(p.name); inst != nil {
		if p.adoptRecorded(*inst) {
			return true
		}
		// The recorded instance is gone: only a newer one, started after
		// the state file was last written, may be taken over by its tag;
		// never a process that the recorded instance left behind.
		minGen = inst.Generation + 1
	}
	// A program this respawnd started carries its tag in its environment:
	// that finds it even when the state file is missing, or did not yet
	// record the instance when respawnd died. Only right after respawnd's
	// own start: a program added later has nothing to find.
	if p.initial && p.s.cfg.Tag != nil {
		found, err := src.FindTagged(p.name)
		if err != nil {
			p.log.Warn("looking for a tagged process", "err", err)
		}
		newer := found[:0]
		for _, f := range found {
			if f.Generation >= minGen {
				newer = append(newer, f)
			} else {
				p.log.Warn("tagged process is older than the recorded instance: left alone", "pid", f.PID, "generation", f.Generation)
			}
		}
		if p.adoptFound(newer, "instance tag", true) {
			return true
		}
	}
	m := p.spec.Match
	if m == nil {
		return false
	}
	if p.adoptMatch() {
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

// adoptRecorded takes over the instance the state file recorded, once its
// identity is proven.
func (p *program) adoptRecorded(inst Instance) bool {
	src := p.s.cfg.Processes
	cg := ""
	if p.group != nil {
		cg = p.group.Path()
	}
	err := src.Verify(inst, &p.spec, cg)
	if errors.Is(err, ErrGone) {
		p.diedWhileDown(inst)
		return false
	}
	if err != nil {
		p.log.Warn("recorded instance not proven to be this program's: left alone, never signalled", "pid", inst.PID, "err", err)
		return false
	}
	proc, err := src.Watch(inst.PID, inst.StartTime, inst.Child)
	if err != nil {
		p.diedWhileDown(inst)
		return false
	}
	p.child = inst.Child
	p.adopt(proc, src.Started(inst.StartTime), inst.Generation, inst.Restarts, "state file")
	if inst.ConfigHash != p.specHash {
		p.log.Info("definition changed while respawnd was down, restarting onto it")
		p.beginStop(startAgain)
	}
	return true
}

// rescanInterval is how often a program with on_missing: wait looks for its
// process to appear.
const rescanInterval = 2 * time.Second

// adoptMatch adopts the oldest running process that matches the program.
func (p *program) adoptMatch() bool {
	found, err := p.s.cfg.Processes.Find(p.spec)
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
		p.adopt(proc, f.Started, f.Generation, 0, how)
		if f.ConfigHash != "" && !strings.HasPrefix(p.specHash, f.ConfigHash) {
			p.log.Info("definition changed while respawnd was down, restarting onto it")
			p.beginStop(startAgain)
		}
		return true
	}
	return false
}

func (p *program) onRescan() {
	if p.state != StateStopped || p.proc != nil || p.spec.Match == nil || p.stop.after != stayDown {
		return
	}
	if !p.adoptMatch() {
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
		} else {
			p.log.Debug("reading the kernel's retained log", "err", err)
		}
	}
	if inst.Generation > p.gen {
		p.gen = inst.Generation
	}
	p.restarts = inst.Restarts + 1 // the start that follows is a restart
	p.last = &e
	p.finalize(e)
	p.fileExit(e)
	p.publish()
	p.log.Warn("instance died while respawnd was down", "pid", inst.PID, "reason", e.Reason.String())
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
	return Instance{Program: p.name, PID: st.PID, ConfigHash: p.stHash, Generation: st.Generation, Restarts: st.Restarts, Child: p.stChild,
		StopSignal: p.stStop.Signal, StopTimeout: p.stStop.Timeout}, true
}
