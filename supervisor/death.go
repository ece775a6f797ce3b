package supervisor

import (
	"slices"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// pendingExit is an exit whose event (and maybe reason) waits for the
// kernel's report of the death.
type pendingExit struct {
	exit     Exit
	final    bool
	deadline time.Time
	// decideRestart is set for on-oom programs whose restart depends on the
	// reason.
	decideRestart bool
}

// attribution is a program's bookkeeping of exits whose reason or details
// wait for the kernel's report, and of reports that came before the exit.
type attribution struct {
	pending []*pendingExit
	settle  <-chan time.Time
	// early holds reports that beat the exit status, by pid.
	early map[int]oom.Kill
	// recent holds the main pids of the latest exits, to ignore late
	// reports.
	recent []int
}

// onDeath handles the exit of the instance: restart first (when the policy
// does not depend on the reason), attribute after.
func (p *program) onDeath() {
	proc, pid, started, gen, child := p.proc, p.pid, p.started, p.gen, p.child
	st := proc.Exit()
	p.proc, p.procDone, p.child = nil, nil, false
	p.lastDeath = st.Time
	if p.lastDeath.IsZero() {
		p.lastDeath = p.s.clock.Now()
	}
	p.stop.started, p.stop.died = started, p.lastDeath

	// The counters are up to date at wait time and cost a file read or two,
	// so the reason is settled (for programs with a cgroup, or when the host
	// saw no OOM kill) before the next instance starts.
	ev := p.gather(st, pid, p.hostBase, p.hostBaseOK, child)
	reason, final := judge(ev)
	e := Exit{Program: p.name, Generation: gen, PID: pid, Started: started, Time: st.Time, Reason: reason, Signal: st.Signal, Code: st.Code, OOM: ev.kill}
	if p.group != nil && child {
		// Measured from this instance's start; an adopted instance started
		// before respawnd did, so its cgroup's figure is not its own.
		if peak, ok := p.group.Peak(); ok {
			e.PeakMemory, e.PeakMemorySource = int64(peak), PeakFromCgroup
		}
	}
	if !st.Signaled {
		e.Signal = 0
	}
	if final {
		e.Settled = p.s.clock.Now()
	}
	e.fillPeakFromReport()
	if p.mem.recycling {
		// The instance respawnd stopped for its memory: memory_recycle,
		// unless the OOM killer beat the stop (then oom_kill, flagged).
		if reason == ReasonOOMKill {
			e.Recycle = true
		} else {
			e.Reason = ReasonMemoryRecycle
		}
	}
	p.checkedExit(&e)
	p.clearOOMLoop(started, st.Time)
	if reason == ReasonOOMKill && final {
		p.noteOOM(e, p.hostWide(e))
	}
	if ev.cgroupOOMs > 0 {
		// One rise of the counter is the main process's own OOM kill; any
		// other rise since the last claim is a worker's.
		var own uint64
		if reason == ReasonOOMKill {
			own = 1
		}
		p.ledger.accounted += own
		p.claimWorkers(ev.cgroupOOMs - own)
	}

	// The post-mortem reads the cgroup before anything is killed or started
	// in it.
	if child {
		p.s.cfg.Deaths.Died(p.name, gen, proc, p.group)
	} else {
		p.s.cfg.Deaths.Died(p.name, gen, proc, nil)
	}

	stopping := p.stopping()
	e.Stopped = stopping && !p.mem.recycling && p.live.reason == ReasonUnknown
	if p.group != nil && !stopping {
		// Leftovers in the cgroup go before a new instance joins it. (A stop
		// gives them the stop timeout instead: see beginStop.)
		if err := p.group.KillAll(); err != nil {
			p.log.Warn("killing what is left in the cgroup", "err", err)
		}
	}

	restarted, decideLater := false, false
	switch policy := p.spec.Restart.Policy; {
	case stopping && (p.mem.recycling || p.live.reason != ReasonUnknown):
	case stopping:
		p.lastDeath = time.Time{}
	case policy == config.PolicyAlways,
		policy == config.PolicyOnFailure && (st.Signaled || st.Code != 0),
		policy == config.PolicyOnOOM && final && reason == ReasonOOMKill:
		restarted = p.restartAfter(started, st.Time)
	case policy == config.PolicyOnOOM && !final:
		decideLater = true
	}

	if p.proc == nil {
		// No new instance: the dead one's memory watch goes. A restart
		// replaces it after the fork instead (see watchMemory), so this
		// costs the restart path nothing; until then onMemory ignores
		// crossings of a dead instance.
		p.unwatchMemory()
		p.unwatchLiveness()
		p.setMember(0, "")
	}

	p.attr.recent = append(p.attr.recent, pid)
	if len(p.attr.recent) > 16 {
		p.attr.recent = p.attr.recent[1:]
	}
	p.record(e, final, decideLater)
	p.s.stateChanged()

	if stopping {
		p.stopDone()
		return
	}
	if !restarted && p.state != StateFatal {
		p.lastDeath = time.Time{}
		p.waitOOM = decideLater
		p.setState(StateExited)
	}
}

// gather collects the side evidence for a death at wait time. It reads the
// program cgroup's counter but claims nothing: onDeath decides whose kills
// they are. The counter of respawnd's own cgroup, which programs without a
// cgroup share, is claimed here (see ownLedger).
//
// The cgroup's counter speaks only for an instance that respawnd started in
// the cgroup (inGroup): one adopted from elsewhere (another memory cgroup, a
// container's) can be OOM-killed without the counter moving.
func (p *program) gather(st restart.ExitStatus, pid int, hostBase uint64, hostBaseOK, inGroup bool) evidence {
	ev := evidence{status: st, kernelLog: p.s.kernelLog.Load()}
	if k, ok := p.attr.early[pid]; ok {
		delete(p.attr.early, pid)
		ev.kill = &k
	}
	if p.group != nil && inGroup {
		if n, err := p.group.OOMKills(); err == nil {
			ev.ownCgroup = true
			if n > p.ledger.accounted {
				ev.cgroupOOMs = n - p.ledger.accounted
			}
		} else {
			p.log.Warn("reading cgroup oom counter", "err", err)
		}
	}
	if !st.Unknown && (!st.Signaled || st.Signal != syscall.SIGKILL) {
		return ev
	}
	if p.ownBaseOK && p.group == nil && inGroup && p.s.cfg.OwnOOMKills != nil {
		// The counter of respawnd's own cgroup alone decides a SIGKILL
		// (see judge), so its rise is claimed here, at once: another
		// program's death judged a moment later must not take it too.
		if n, err := p.s.cfg.OwnOOMKills(); err == nil {
			ev.ownKnown = true
			ev.ownOOMs = p.s.own.claim(n, p.ownBase)
		} else {
			p.log.Warn("reading the oom counter of respawnd's own cgroup", "err", err)
		}
	}
	if hostBaseOK && !ev.ownKnown && p.s.cfg.HostOOMKills != nil {
		if n, err := p.s.cfg.HostOOMKills(); err == nil {
			ev.hostKnown = true
			if n > hostBase {
				ev.hostOOMs = n - hostBase
			}
		}
	}
	return ev
}

// record files an exit: at once when its reason is final, and its event
// once the kernel's report is in (or cannot come).
func (p *program) record(e Exit, final, decideRestart bool) {
	p.last = &e
	wantKernel := p.s.kernelLog.Load() && e.OOM == nil && (e.Reason == ReasonOOMKill || !final)
	if final {
		p.finalize(e)
	}
	if !wantKernel {
		if e.PID != 0 {
			p.s.disownPID(e.PID, p)
		}
		if final {
			p.announce(e)
			return
		}
		p.fileExit(e)
		p.publish()
		return
	}
	pe := &pendingExit{exit: e, final: final, deadline: p.s.clock.Now().Add(p.s.cfg.AttributionWindow), decideRestart: decideRestart}
	p.attr.pending = append(p.attr.pending, pe)
	if p.attr.settle == nil {
		p.attr.settle = p.s.clock.After(p.s.cfg.AttributionWindow)
	}
	p.publish()
}

// fileExit publishes a final exit, complete with the kernel's report when
// one was awaited: its event, and its death record.
func (p *program) fileExit(e Exit) {
	p.s.events.add(exitEvent(e))
	p.s.cfg.Deaths.Settled(e)
}

// announce files a final exit and logs it. The status shows the exit
// before the line is logged: whoever reads the line and then asks for the
// status finds the exit there.
func (p *program) announce(e Exit) {
	p.fileExit(e)
	p.publish()
	p.logExit(e)
}

// finalize is called once per exit when its reason is final.
func (p *program) finalize(e Exit) {
	p.s.rec.Exited(e)
	if e.Reason == ReasonOOMKill {
		k := oom.Kill{PID: e.PID}
		if e.OOM != nil {
			k = *e.OOM
		} else if p.group != nil {
			k.TaskMemcg = p.group.Path()
		}
		p.s.rec.OOMKill(p.name, k)
	}
}

func (p *program) logExit(e Exit) {
	attrs := []any{"pid", e.PID, "generation", e.Generation, "reason", e.Reason.String()}
	switch e.Reason {
	case ReasonSignal, ReasonOOMKill:
		attrs = append(attrs, "signal", e.SignalName())
	case ReasonExitError, ReasonExitSuccess:
		attrs = append(attrs, "exit_code", e.Code)
	case ReasonMemoryRecycle, ReasonHealthCheck, ReasonWatchdog:
		if e.Signal != 0 {
			attrs = append(attrs, "signal", e.SignalName())
		} else {
			attrs = append(attrs, "exit_code", e.Code)
		}
		if e.Err != "" {
			attrs = append(attrs, "check", e.Err)
		}
	}
	if e.Recycle {
		attrs = append(attrs, "recycle", true)
	}
	if e.OOM != nil {
		attrs = append(attrs, "memcg", e.OOM.TaskMemcg, "rss_bytes", killRSS(*e.OOM))
	}
	if !e.Settled.IsZero() && !e.Time.IsZero() {
		attrs = append(attrs, "attribution_delay", e.Settled.Sub(e.Time).String())
	}
	if e.Reason == ReasonOOMKill {
		p.log.Warn("exited", attrs...)
		return
	}
	p.log.Info("exited", attrs...)
}

// onKill takes a kernel OOM report that names one of this program's
// processes, or a process in its cgroup, unless noteEarly took it (the
// loop asks noteEarly first, without a work slot).
func (p *program) onKill(k oom.Kill) {
	for i, pe := range p.attr.pending {
		if pe.exit.PID != k.PID {
			continue
		}
		p.attr.pending = append(p.attr.pending[:i], p.attr.pending[i+1:]...)
		p.s.disownPID(k.PID, p)
		e := pe.exit
		e.OOM = &k
		e.fillPeakFromReport()
		if e.Reason == ReasonMemoryRecycle {
			e.Recycle = true // the OOM killer beat the recycle's stop
		}
		wasFinal := pe.final
		e.Reason = ReasonOOMKill
		if !wasFinal {
			e.Settled = p.s.clock.Now()
		}
		p.last = &e
		if !wasFinal {
			p.finalize(e)
		}
		p.announce(e)
		if pe.decideRestart {
			p.decideOnOOM(e) // a restart publishes its state change
		}
		return
	}
	for _, pid := range p.attr.recent {
		if pid == k.PID {
			p.log.Debug("late kernel oom report", "pid", k.PID)
			return
		}
	}
	if p.group != nil && k.TaskMemcg == p.group.Path() {
		p.claimReportedWorker(k)
		return
	}
	p.log.Debug("kernel oom report for no current process", "pid", k.PID)
}

// noteEarly keeps a kernel report that beat the exit status of the
// current instance (onDeath picks it up) and says whether k was one. It
// makes no system call: in an OOM storm most reports come before the
// deaths, and a loop that queued for a work slot to note its report would
// queue again, at the back, for the death (see quickly).
func (p *program) noteEarly(k oom.Kill) bool {
	if k.PID != p.pid || p.proc == nil || slices.ContainsFunc(p.attr.pending, func(pe *pendingExit) bool { return pe.exit.PID == k.PID }) {
		return false
	}
	p.attr.early[k.PID] = k
	return true
}

// settleExpired finalises the exits whose attribution window has closed.
func (p *program) settleExpired() {
	now := p.s.clock.Now()
	keep := p.attr.pending[:0]
	var next time.Time
	for _, pe := range p.attr.pending {
		if now.Before(pe.deadline) {
			keep = append(keep, pe)
			if next.IsZero() || pe.deadline.Before(next) {
				next = pe.deadline
			}
			continue
		}
		e := pe.exit
		p.s.disownPID(e.PID, p)
		if !pe.final {
			e.Settled = now
			p.finalize(e)
		}
		p.announce(e)
		if pe.decideRestart {
			p.decideOnOOM(e)
		}
	}
	p.attr.pending = keep
	if !next.IsZero() {
		p.attr.settle = p.s.clock.After(next.Sub(now))
	}
}

func (p *program) decideOnOOM(e Exit) {
	if !p.waitOOM || p.proc != nil || p.state != StateExited {
		return
	}
	p.waitOOM = false
	if e.Reason == ReasonOOMKill {
		p.restartAfter(e.Started, e.Time)
		return
	}
	p.lastDeath = time.Time{}
}
