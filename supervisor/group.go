package supervisor

import (
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/oom"
)

// groupWatch is the registration of a program's cgroup with the OOM
// counter watcher.
type groupWatch struct {
	counts chan oom.CgroupCounts // from the watcher; nil without one
	stop   func()
}

// ledger owns the deltas of the program cgroup's oom_kill counter: each
// increment is claimed exactly once, by the main process's death, by a
// kernel report that names a worker, or, when neither comes within the
// attribution window, as a worker kill without a name.
type ledger struct {
	// accounted is the counter value already turned into records.
	accounted uint64
	// check fires when an unexplained rise is to be claimed for workers.
	check <-chan time.Time
}

func limitsOf(spec config.Program) Limits {
	m := spec.Memory
	if m == nil {
		return Limits{}
	}
	return Limits{Max: m.Max, High: m.High, SwapMax: m.SwapMax}
}

// ensureGroup creates the program's cgroup: with its memory limits, or a
// plain one that holds its processes together for stops.
func (p *program) ensureGroup() {
	if p.group != nil {
		return
	}
	if p.s.cfg.Cgroups == nil {
		if p.spec.Memory != nil {
			p.log.Warn("memory limits not applied: running without a cgroup", "err", p.s.cfg.CgroupsErr)
		}
		return
	}
	g, err := p.s.cfg.Cgroups.Create(p.name, limitsOf(p.spec))
	if err != nil {
		p.log.Warn("running without a cgroup: memory limits not applied, a stop waits for the process group only", "err", err)
		return
	}
	p.group = g
	if n, err := g.OOMKills(); err == nil {
		p.ledger.accounted = n
	}
	p.s.ownMemcg(g.Path(), p)
	// The watcher sees OOM kills of workers (the main process survives)
	// where the kernel log is not readable.
	counts := make(chan oom.CgroupCounts, 1) // latest counts only
	if stop, err := g.Watch(counts); err != nil {
		p.log.Warn("watching cgroup oom counters", "err", err)
	} else {
		p.watch = groupWatch{counts: counts, stop: stop}
	}
}

// dropGroup stops watching the program's cgroup and removes it.
func (p *program) dropGroup() {
	if p.group == nil {
		return
	}
	if p.watch.stop != nil {
		p.watch.stop()
	}
	p.watch = groupWatch{}
	p.ledger.check = nil
	if err := p.group.Remove(); err != nil {
		p.log.Warn("removing cgroup", "err", err)
	}
	p.s.ownMemcg("", p)
	p.group = nil
}

// onCounts takes new counters of the program's cgroup. A rise that the
// main process's death or the kernel log does not explain within the
// attribution window is an OOM kill of a worker.
func (p *program) onCounts(c oom.CgroupCounts) {
	if c.OOMKill > p.ledger.accounted && p.ledger.check == nil {
		p.ledger.check = p.s.clock.After(p.s.cfg.AttributionWindow)
	}
}

// mainDying reports whether the main process is on its way out: its exit
// status is in but not yet handled, the kernel named it in an OOM report,
// or it is being torn down. Its OOM kill is then the main process's, not a
// worker's.
func (p *program) mainDying() bool {
	if p.proc == nil {
		return false
	}
	select {
	case <-p.procDone:
		return true
	default:
	}
	if _, ok := p.attr.early[p.pid]; ok {
		return true
	}
	return p.s.cfg.Exiting != nil && p.s.cfg.Exiting(p.pid)
}

// checkWorkers claims the counter's unexplained rise as worker kills once
// the attribution window is over, unless the main process is dying (its
// death claims one of them).
func (p *program) checkWorkers() {
	if p.group == nil {
		return
	}
	n, err := p.group.OOMKills()
	if err != nil || n <= p.ledger.accounted {
		return
	}
	if p.mainDying() {
		p.ledger.check = p.s.clock.After(p.s.cfg.AttributionWindow)
		return
	}
	p.claimWorkers(n - p.ledger.accounted)
}

// claimWorkers records n OOM kills of workers that no kernel report named.
func (p *program) claimWorkers(n uint64) {
	if n == 0 {
		return
	}
	path := p.group.Path()
	now := p.s.clock.Now()
	for range n {
		p.ledger.accounted++
		k := oom.Kill{TaskMemcg: path}
		p.s.rec.OOMKill(p.name, k)
		p.s.events.add(Event{Time: now, Program: p.name, Reason: ReasonOOMKill, Signal: "SIGKILL", Worker: true, OOM: &k})
	}
	p.log.Warn("worker oom-killed", "memcg", path, "count", n)
}

// claimReportedWorker takes the kernel's report of an OOM kill of a worker
// in the program's cgroup. It is recorded only if the counter has a rise
// left to explain; otherwise the kill was already claimed.
func (p *program) claimReportedWorker(k oom.Kill) {
	n, err := p.group.OOMKills()
	if err == nil && n <= p.ledger.accounted {
		p.log.Debug("kernel oom report for a worker kill already counted", "pid", k.PID)
		return
	}
	p.ledger.accounted++
	p.s.rec.OOMKill(p.name, k)
	p.s.events.add(Event{Time: killTime(k, p.s.clock.Now()), Program: p.name, PID: k.PID, Comm: k.Comm, Reason: ReasonOOMKill, Signal: "SIGKILL", Worker: true, OOM: &k, RSSBytes: killRSS(k)})
	p.log.Warn("worker oom-killed", "pid", k.PID, "comm", k.Comm, "memcg", k.TaskMemcg)
}
