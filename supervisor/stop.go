package supervisor

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// afterStop is what a program does once its instance is down.
type afterStop int

const (
	stayDown afterStop = iota
	startAgain
	// recycleAgain starts the next instance after a recycle for memory
	// (see afterRecycle).
	recycleAgain
	// failAgain restarts, as after a crash, an instance stopped because a
	// health check, its watchdog or its start timeout failed (see
	// afterFailedCheck).
	failAgain
	// quit ends the loop: respawnd is stopping or the program was removed.
	// No operator command overrides it.
	quit
)

// stopState is a program's stop in progress.
type stopState struct {
	// timer fires at the stop timeout, when what is left is SIGKILLed.
	timer <-chan time.Time
	// sig overrides the configured stop signal once (respawnd stop -s).
	sig syscall.Signal
	// after is what happens once the stop is complete.
	after afterStop
	// pendingSpec is a new definition that takes effect once the instance
	// is down.
	pendingSpec *config.Program
	// drained receives the outcome of waiting for the program's cgroup to
	// empty; nil when no such wait runs.
	drained chan error
	// started and died are the start and death of the instance last taken
	// down, for a restart through the crash backoff once its stop is
	// complete (a recycle loop, a failed check).
	started, died time.Time
}

// setAfter decides what happens after the stop: the latest command wins,
// but nothing undoes quit.
func (p *program) setAfter(a afterStop) {
	if p.stop.after != quit {
		p.stop.after = a
	}
}

// stopping reports whether a stop is in progress.
func (p *program) stopping() bool { return p.state == StateStopping }

func (p *program) control(m ctlMsg) error {
	if p.stop.after == quit {
		return fmt.Errorf("program %s is shutting down", p.name)
	}
	switch m.action {
	case ActionStart:
		if p.stopping() {
			// The stop runs to its end (a half-stopped program is in no
			// state to keep), then the program starts again.
			p.setAfter(startAgain)
			p.resetHistory()
			return nil
		}
		if p.proc != nil || p.state == StateStarting {
			return nil
		}
		p.cancelTimer()
		p.resetHistory()
		p.rescanC = nil
		p.setAfter(stayDown)
		p.setState(StateStarting)
		p.start()
	case ActionStop:
		p.stop.sig = m.sig
		p.beginStop(stayDown)
	case ActionRestart:
		p.resetHistory()
		p.beginStop(startAgain)
	case ActionSignal:
		if p.proc == nil {
			return fmt.Errorf("program %s is not running", p.name)
		}
		if err := p.proc.Signal(m.sig); err != nil && !errors.Is(err, restart.ErrProcessDone) {
			return fmt.Errorf("signalling %s: %w", p.name, err)
		}
	default:
		return fmt.Errorf("unknown action %v", m.action)
	}
	return nil
}

// resetHistory forgets the crash streak and the starts counted by the burst
// limit: an operator's start or restart is a fresh beginning.
func (p *program) resetHistory() {
	p.policy.Reset()
	p.lastDeath = time.Time{}
	if p.state == StateFatal {
		p.lastErr = ""
	}
}

// update takes a changed definition. A running instance restarts onto it;
// one in backoff or given up starts on it now; a program an operator
// stopped, or one that exited for good, keeps its state and uses the new
// definition at its next start.
func (p *program) update(spec config.Program) {
	switch {
	case p.proc != nil:
		p.stop.pendingSpec = &spec
		if !p.stopping() {
			p.log.Info("definition changed, restarting onto it")
			p.beginStop(startAgain)
		}
	case p.stopping():
		// Down already, waiting for its cgroup to empty.
		p.stop.pendingSpec = &spec
	case p.waiting() || p.state == StateFatal || p.state == StateStarting:
		p.log.Info("definition changed, starting on it")
		p.applySpec(spec)
		p.resetHistory()
		p.beginStop(startAgain)
	default:
		p.log.Info("definition changed; the program stays " + p.state.String() + " until started")
		p.applySpec(spec)
		p.publish()
	}
}

// applySpec makes spec the definition in force and brings the program's
// cgroup in line with it.
func (p *program) applySpec(spec config.Program) {
	p.setSpec(spec)
	if p.group != nil {
		if err := p.group.Update(limitsOf(spec)); err != nil {
			p.log.Warn("updating memory limits", "err", err)
		}
	}
	p.ensureGroup()
}

// beginStop sends the stop signal to the instance's process group and to
// every process in its cgroup, and arms the SIGKILL escalation; what
// happens once everything is down is after.
func (p *program) beginStop(after afterStop) {
	p.setAfter(after)
	p.cancelTimer()
	p.rescanC = nil
	p.waitOOM = false
	p.unwatchLiveness()
	if p.stopping() {
		return
	}
	if p.proc == nil {
		p.finishStop()
		return
	}
	p.setState(StateStopping)
	sig := p.spec.Stop.Signal
	if p.stop.sig != 0 {
		sig, p.stop.sig = p.stop.sig, 0
	}
	timeout := p.spec.Stop.Timeout
	if l, ok := p.proc.(lingerer); ok {
		// Members of the process group get the stop timeout too, not a
		// SIGKILL the moment the leader exits. Asked before the signal:
		// the leader may exit of it before the next line runs.
		l.Linger(timeout)
	}
	if err := p.proc.Signal(sig); err != nil && !errors.Is(err, restart.ErrProcessDone) {
		p.log.Warn("sending stop signal", "err", err)
	}
	// A stopped process (SIGSTOP, a debugger's) acts on its stop signal
	// only once it runs again: SIGCONT follows, as systemd sends it, so a
	// hung program stopped that way exits now rather than at the timeout.
	cont := sig != syscall.SIGKILL && sig != syscall.SIGCONT
	if cont {
		_ = p.proc.Signal(syscall.SIGCONT)
	}
	p.stop.timer = p.s.clock.After(timeout)
	if p.group != nil {
		// Processes that left the process group (setsid) are still in the
		// cgroup: they get the signal too, and the stop is complete only
		// once the cgroup is empty.
		if err := p.group.Signal(sig); err != nil {
			p.log.Warn("sending stop signal to the cgroup", "err", err)
		}
		if cont {
			_ = p.group.Signal(syscall.SIGCONT)
		}
		// Buffered: the drain never waits on the loop, which stays in
		// stopping (and so receives) until the drain is in.
		g, drained := p.group, make(chan error, 1)
		p.stop.drained = drained
		go func() { drained <- g.Drain(timeout) }()
	}
}

// stopTimedOut SIGKILLs what is left of the instance at the stop timeout.
func (p *program) stopTimedOut() {
	if p.proc == nil {
		return
	}
	p.log.Warn("stop timed out, killing process group", "pid", p.pid, "timeout", p.spec.Stop.Timeout.String())
	_ = p.proc.Signal(syscall.SIGKILL)
	// The cgroup's Drain kills the rest of the cgroup at the same moment.
}

// onDrained takes the end of the wait for the program's cgroup to empty.
func (p *program) onDrained(err error) {
	if err != nil {
		p.log.Error("processes left in the program's cgroup after its stop", "err", err)
	}
	if p.proc == nil && p.stopping() {
		p.finishStop()
	}
}

// stopDone is called when the main process of a stopping program is gone;
// the stop is complete once its cgroup is empty too.
func (p *program) stopDone() {
	if p.stop.drained != nil {
		return // onDrained finishes the stop
	}
	p.finishStop()
}

// finishStop runs once the instance and everything in its cgroup is down.
func (p *program) finishStop() {
	p.stop.timer = nil
	after := p.stop.after
	if after != quit {
		p.stop.after = stayDown
	}
	if spec := p.stop.pendingSpec; spec != nil {
		p.stop.pendingSpec = nil
		p.applySpec(*spec)
	}
	recycled := p.mem.recycling
	p.mem.recycling = false
	if recycled && after != recycleAgain {
		p.lastDeath = time.Time{} // an operator's stop overrode the recycle
	}
	if p.live.reason != ReasonUnknown && after != failAgain {
		p.live.reason, p.live.why = ReasonUnknown, ""
		p.lastDeath = time.Time{} // an operator's command overrode the restart
	}
	switch after {
	case quit:
		p.setState(StateStopped)
	case recycleAgain:
		if recycled {
			p.afterRecycle()
		} else {
			p.schedule(0) // the instance was gone before the recycle's stop began
		}
	case failAgain:
		if p.live.reason != ReasonUnknown {
			p.afterFailedCheck()
		} else {
			p.schedule(0) // the instance was gone before the check's stop began
		}
	case startAgain:
		p.resetHistory()
		p.setState(StateStarting)
		p.start()
	default:
		p.setState(StateStopped)
	}
}
