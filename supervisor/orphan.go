package supervisor

import (
	"errors"
	"log/slog"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// Orphans returns the kept instances of programs that are no longer in the
// configuration (see Config.KeepOrphans), sorted by program name. Instances
// that have died since are left out.
func (s *Supervisor) Orphans() []Instance {
	s.mu.Lock()
	out := make([]Instance, 0, len(s.orphans))
	for _, o := range s.orphans {
		out = append(out, o)
	}
	s.mu.Unlock()
	live := out[:0]
	for _, o := range out {
		if src := s.cfg.Processes; src != nil {
			if id, err := src.Identify(o.PID); err != nil || id.StartTime != o.StartTime {
				s.dropOrphan(o)
				continue
			}
		}
		live = append(live, o)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Program < live[j].Program })
	return live
}

// dropOrphan forgets a kept orphan that has died.
func (s *Supervisor) dropOrphan(o Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.orphans[o.Program]; ok && cur.PID == o.PID && cur.StartTime == o.StartTime {
		delete(s.orphans, o.Program)
		s.log.Info("orphaned instance is gone", "program", o.Program, "pid", o.PID)
	}
}

// retire stops the recorded instance of a program that is no longer in the
// configuration, as the program's own stop would have: its stop signal to
// its process group and cgroup, SIGKILL after its stop timeout, then the
// cgroup removed. A process that cannot be proven to be that instance is
// left alone. done is closed at the end.
func (s *Supervisor) retire(inst Instance, done chan struct{}) {
	defer close(done)
	log := s.log.With("program", inst.Program)
	defer func() {
		if r := recover(); r != nil {
			_ = s.panicked(log, "stopping an orphaned instance", r, nil)
		}
	}()
	src := s.cfg.Processes
	if src == nil {
		return
	}
	sig, timeout := inst.StopSignal, inst.StopTimeout
	if sig == 0 {
		sig = config.DefaultStopSignal
	}
	if timeout <= 0 {
		timeout = config.DefaultStopTimeout
	}
	var g Group
	if s.cfg.Cgroups != nil && inst.Child {
		var err error
		if g, err = s.cfg.Cgroups.Create(inst.Program, Limits{}); err != nil {
			log.Warn("opening the cgroup of an orphaned instance", "err", err)
			g = nil
		}
	}
	cg := ""
	if g != nil {
		cg = g.Path()
	}
	switch err := src.Verify(inst, nil, cg); {
	case errors.Is(err, ErrGone):
		log.Info("instance of a program no longer configured is gone", "pid", inst.PID)
	case err != nil:
		log.Warn("recorded instance of a program no longer configured not proven: left alone, never signalled", "pid", inst.PID, "err", err)
	default:
		s.stopOrphan(log, inst, g, sig, timeout)
	}
	if g != nil {
		if err := g.Remove(); err != nil {
			log.Warn("removing the cgroup of an orphaned instance", "err", err)
		}
	}
}

func (s *Supervisor) stopOrphan(log *slog.Logger, inst Instance, g Group, sig syscall.Signal, timeout time.Duration) {
	proc, err := s.cfg.Processes.Watch(inst.PID, inst.StartTime, inst.Child)
	if err != nil {
		log.Info("instance of a program no longer configured is gone", "pid", inst.PID)
		return
	}
	log.Info("stopping the instance of a program no longer configured", "pid", inst.PID, "signal", unix.SignalName(sig), "timeout", timeout.String())
	if err := proc.Signal(sig); err != nil && !errors.Is(err, restart.ErrProcessDone) {
		log.Warn("sending stop signal", "err", err)
	}
	drained := make(chan error, 1)
	if g != nil {
		if err := g.Signal(sig); err != nil {
			log.Warn("sending stop signal to the cgroup", "err", err)
		}
		go func() { drained <- g.Drain(timeout) }()
	} else {
		drained <- nil
	}
	select {
	case <-proc.Done():
	case <-s.clock.After(timeout):
		log.Warn("stop timed out, killing process group", "pid", inst.PID)
		_ = proc.Signal(syscall.SIGKILL)
		select {
		case <-proc.Done():
		case <-s.clock.After(killWait):
			log.Warn("orphaned instance survived SIGKILL", "pid", inst.PID)
		}
	}
	if err := <-drained; err != nil {
		log.Warn("processes left in the orphaned instance's cgroup", "err", err)
	}
	e := Exit{Program: inst.Program, Generation: inst.Generation, PID: inst.PID, Time: s.clock.Now()}
	switch st := proc.Exit(); {
	case st.Unknown:
		e.Reason = ReasonUnknown
	case st.Signaled:
		e.Reason, e.Signal = ReasonSignal, st.Signal
	case st.Code == 0:
		e.Reason = ReasonExitSuccess
	default:
		e.Reason, e.Code = ReasonExitError, st.Code
	}
	e.Settled = e.Time
	s.events.add(exitEvent(e))
	log.Info("stopped the instance of a program no longer configured", "pid", inst.PID, "reason", e.Reason.String())
}

// killWait bounds the wait for a process to die after SIGKILL.
const killWait = 5 * time.Second
