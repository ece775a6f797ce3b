package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// Messages to a program's loop.
type (
	ctlMsg struct {
		action Action
		sig    syscall.Signal
		reply  chan error
	}
	updateMsg struct{ spec config.Program }
	killMsg   struct{ kill oom.Kill }
)

// afterStop is what a program does once its instance is down.
type afterStop int

const (
	stayDown afterStop = iota
	startAgain
	quit
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

type program struct {
	s      *Supervisor
	name   string
	hash   string // owned by the Supervisor's Run goroutine
	ctx    context.Context
	cancel context.CancelFunc
	// msgs is buffered so that the supervisor and operators rarely wait on
	// a loop that is busy starting a process.
	msgs chan any

	mu      sync.Mutex // guards st, stHash and stChild, the published status
	st      Status
	stHash  string
	stChild bool

	// Everything below is owned by the loop goroutine.
	log       *slog.Logger
	spec      config.Program
	specHash  string
	child     bool // the current instance was started by this respawnd
	rescanC   <-chan time.Time
	cmd       restart.Command
	policy    *restart.Policy
	state     State
	proc      Process
	procDone  <-chan struct{}
	pid       int
	gen       uint64
	started   time.Time
	restarts  uint64
	lastDeath time.Time
	latency   time.Duration // death to running, for the latest restart

	group        Group
	groupCounts  chan oom.CgroupCounts // from the group's watcher
	stopWatch    context.CancelFunc
	watchDone    chan struct{}
	workerCheck  <-chan time.Time
	oomAccounted uint64
	hostBase     uint64
	hostBaseOK   bool

	timerC    <-chan time.Time
	reserved  bool
	cancelRes func(time.Time)
	nextStart time.Time

	stopC       <-chan time.Time
	stopSig     syscall.Signal // overrides the stop signal once
	after       afterStop
	pendingSpec *config.Program
	waitOOM     bool // on-oom program waiting for its last exit's reason

	pending []*pendingExit
	settleC <-chan time.Time
	early   map[int]oom.Kill
	recent  []int // main pids of the latest exits, to ignore late reports
	last    *Exit
	lastErr string
}

func newProgram(ctx context.Context, s *Supervisor, spec config.Program) *program {
	ctx, cancel := context.WithCancel(ctx)
	p := &program{
		s:      s,
		name:   spec.Name,
		hash:   spec.Hash(),
		ctx:    ctx,
		cancel: cancel,
		msgs:   make(chan any, 16),
		log:    s.log.With("program", spec.Name),
		early:  map[int]oom.Kill{},
	}
	p.setSpec(spec)
	p.st = Status{Name: spec.Name, State: StateStarting}
	return p
}

func (p *program) setSpec(spec config.Program) {
	p.spec = spec
	p.specHash = spec.Hash()
	env := p.s.cfg.Env
	if tag := p.tag(); tag != "" {
		env = append(env[:len(env):len(env)], tag)
	}
	p.cmd = buildCommand(spec, env)
	b := spec.Restart.Backoff
	if b.Jitter == 0 {
		b.Jitter = -1 // restart treats 0 as "default"; the config means none
	}
	p.policy = restart.NewPolicy(restart.PolicyConfig{
		Initial:    b.Initial,
		Max:        b.Max,
		Multiplier: b.Multiplier,
		Jitter:     b.Jitter,
		ResetAfter: spec.Restart.ResetAfter,
		Burst:      spec.Restart.Limit.Burst,
		Interval:   spec.Restart.Limit.Interval,
		GiveUp:     spec.Restart.Limit.Action == config.ActionGiveUp,
	})
}

// buildCommand turns a program definition into a launcher command once, so
// that nothing is computed on the restart path.
func buildCommand(spec config.Program, base []string) restart.Command {
	env := append([]string(nil), base...)
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Env[k])
	}
	return restart.Command{
		Name:       spec.Name,
		Argv:       append([]string(nil), spec.Command...),
		Dir:        spec.Dir,
		Env:        env,
		User:       spec.User,
		Group:      spec.Group,
		OutputFile: spec.Output.File,
		// What is left of the process group goes with the leader, before
		// the next instance starts: no orphans pile up across restarts.
		KillGroupOnExit: true,
	}
}

// send delivers m to the loop unless the program is gone or ctx is done.
func (p *program) send(ctx context.Context, m any) bool {
	select {
	case p.msgs <- m:
		return true
	case <-p.ctx.Done():
		return false
	case <-ctx.Done():
		return false
	}
}

// remove stops the program for good (it was dropped from the configuration).
func (p *program) remove() { p.cancel() }

func (p *program) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// publish copies the loop's state into the published status.
func (p *program) publish() Status {
	st := Status{
		Name:       p.name,
		State:      p.state,
		PID:        p.pid,
		Generation: p.gen,
		Restarts:   p.restarts,
		NextStart:  p.nextStart,
		Error:      p.lastErr,
	}
	if p.proc != nil {
		st.Started = p.started
	} else {
		st.PID = 0
	}
	if p.last != nil {
		e := *p.last
		st.LastExit = &e
	}
	if p.group != nil {
		st.Cgroup = p.group.Path()
	}
	p.mu.Lock()
	p.st, p.stHash, p.stChild = st, p.specHash, p.child
	p.mu.Unlock()
	return st
}

func (p *program) setState(s State) {
	if s != StateBackoff {
		p.nextStart = time.Time{}
	}
	from := p.state
	p.state = s
	st := p.publish()
	if from != s || s == StateRunning {
		attrs := []any{"state", s.String(), "from", from.String(), "generation", p.gen}
		if s == StateRunning {
			attrs = append(attrs, "pid", p.pid)
			if p.latency > 0 {
				attrs = append(attrs, "restart_latency", p.latency.String())
			}
		}
		if s == StateBackoff {
			attrs = append(attrs, "delay", p.nextStart.Sub(p.s.clock.Now()).Round(time.Millisecond).String())
		}
		p.log.Info("state changed", attrs...)
	}
	if f := p.s.cfg.OnTransition; f != nil {
		f(st)
	}
}

// run is the program's loop: the only goroutine that touches its state.
func (p *program) run() {
	defer p.cancel()
	p.ensureGroup()
	p.setState(StateStarting)
	// An instance already running (from respawnd's last life, or found by
	// match) is adopted. First starts take a token too: 500 programs at boot
	// are no less a fork bomb than 500 restarts.
	if !p.adoptAtStart() {
		p.schedule(0)
	}
	done := p.ctx.Done()
	for {
		select {
		case <-done:
			// Shutdown or removal: stop once, then keep serving the loop
			// until the instance is down.
			done = nil
			p.beginStop(quit)
		case <-p.procDone:
			p.onDeath()
		case <-p.timerC:
			p.timerC = nil
			p.onTimer()
		case <-p.stopC:
			p.stopC = nil
			if p.proc != nil {
				p.log.Warn("stop timed out, killing process group", "pid", p.pid, "timeout", p.spec.Stop.Timeout.String())
				_ = p.proc.Signal(syscall.SIGKILL)
				if p.group != nil {
					_ = p.group.KillAll()
				}
			}
		case <-p.settleC:
			p.settleC = nil
			p.settleExpired()
		case m := <-p.msgs:
			p.handle(m)
		case c := <-p.groupCounts:
			p.onCounts(c)
		case <-p.workerCheck:
			p.workerCheck = nil
			p.checkWorkers()
		case <-p.rescanC:
			p.rescanC = nil
			p.onRescan()
		}
		if p.after == quit && p.proc == nil && p.state != StateStopping {
			p.shutdown()
			return
		}
	}
}

func (p *program) shutdown() {
	now := p.s.clock.Now()
	for _, pe := range p.pending {
		pe.deadline = now
	}
	p.settleExpired()
	p.dropGroup()
}

// dropGroup stops watching the program's cgroup and removes it.
func (p *program) dropGroup() {
	if p.group == nil {
		return
	}
	p.stopWatch()
	<-p.watchDone
	p.groupCounts, p.workerCheck = nil, nil
	if err := p.group.Remove(); err != nil {
		p.log.Warn("removing cgroup", "err", err)
	}
	p.s.ownMemcg("", p)
	p.group = nil
}

// ensureGroup creates the program's memory cgroup when it asks for limits.
func (p *program) ensureGroup() {
	m := p.spec.Memory
	if m == nil || p.group != nil {
		return
	}
	if p.s.cfg.Cgroups == nil {
		p.log.Warn("memory limits not applied: running without a cgroup", "err", p.s.cfg.CgroupsErr)
		return
	}
	g, err := p.s.cfg.Cgroups.Create(p.name, Limits{Max: m.Max, High: m.High, SwapMax: m.SwapMax})
	if err != nil {
		p.log.Warn("memory limits not applied: running without a cgroup", "err", err)
		return
	}
	p.group = g
	if n, err := g.OOMKills(); err == nil {
		p.oomAccounted = n
	}
	p.s.ownMemcg(g.Path(), p)
	// The watcher sees OOM kills of workers (the main process survives)
	// where the kernel log is not readable.
	ctx, cancel := context.WithCancel(context.Background())
	p.groupCounts = make(chan oom.CgroupCounts, 1) // latest counts; the watcher waits on ctx otherwise
	p.stopWatch, p.watchDone = cancel, make(chan struct{})
	go func(out chan<- oom.CgroupCounts, done chan<- struct{}) {
		defer close(done)
		if err := g.Watch(ctx, out); err != nil {
			p.log.Warn("watching cgroup oom counters", "err", err)
		}
	}(p.groupCounts, p.watchDone)
}

// onCounts takes new counters of the program's cgroup. A rise that the
// main process's death or the kernel log does not explain within the
// attribution window is an OOM kill of a worker.
func (p *program) onCounts(c oom.CgroupCounts) {
	if c.OOMKill > p.oomAccounted && p.workerCheck == nil {
		p.workerCheck = p.s.clock.After(p.s.cfg.AttributionWindow)
	}
}

func (p *program) checkWorkers() {
	if p.group == nil {
		return
	}
	n, err := p.group.OOMKills()
	if err != nil || n <= p.oomAccounted {
		return
	}
	path := p.group.Path()
	now := p.s.clock.Now()
	for ; p.oomAccounted < n; p.oomAccounted++ {
		k := oom.Kill{TaskMemcg: path}
		p.s.rec.OOMKill(p.name, k)
		p.s.events.add(Event{Time: now, Program: p.name, Reason: ReasonOOMKill, Signal: "SIGKILL", Worker: true, OOM: &k})
	}
	p.log.Warn("worker oom-killed", "memcg", path, "count", n)
}

// start starts a new instance now. It is the restart path: nothing slow
// happens before the launcher returns.
func (p *program) start() {
	cmd := p.cmd
	if p.group != nil {
		cmd.CgroupFD = p.group.FD()
		cmd.CgroupProcs = p.group.Procs()
		cmd.CgroupLeave = p.group.Leave()
	}
	now := p.s.clock.Now()
	p.policy.Started(now)
	proc, err := p.s.cfg.Launcher.Start(cmd)
	if err != nil {
		p.startFailed(err)
		return
	}
	p.started = p.s.clock.Now()
	p.proc, p.procDone, p.pid = proc, proc.Done(), proc.PID()
	p.gen++
	p.lastErr = ""
	p.child = true
	p.s.ownPID(p.pid, p)
	p.latency = 0
	if !p.lastDeath.IsZero() {
		p.restarts++
		p.latency = p.started.Sub(p.lastDeath)
		p.s.rec.Restarted(p.name, p.latency)
		p.lastDeath = time.Time{}
	}
	p.setState(StateRunning)
	p.hostBaseOK = false
	if p.group == nil && p.s.cfg.HostOOMKills != nil {
		if n, err := p.s.cfg.HostOOMKills(); err == nil {
			p.hostBase, p.hostBaseOK = n, true
		}
	}
	p.s.stateChanged()
}

func (p *program) startFailed(err error) {
	now := p.s.clock.Now()
	p.lastErr = err.Error()
	e := Exit{Program: p.name, Generation: p.gen, Time: now, Reason: ReasonStartFailure, Err: err.Error()}
	p.record(e, true, false)
	p.log.Error("start failed", "err", err)
	d := p.policy.Exited(now, now)
	if d.GiveUp {
		p.giveUp()
		return
	}
	p.schedule(d.Delay)
}

func (p *program) giveUp() {
	p.log.Error("restart limit reached, giving up", "burst", p.spec.Restart.Limit.Burst, "interval", p.spec.Restart.Limit.Interval.String())
	if p.lastErr == "" {
		p.lastErr = "restart limit reached"
	}
	p.setState(StateFatal)
}

// schedule starts the next instance after delay, also waiting for a token
// of the global restart bucket. A zero delay with a token at hand starts at
// once.
func (p *program) schedule(delay time.Duration) {
	now := p.s.clock.Now()
	if delay <= 0 {
		wait, cancel := p.s.limiter.Reserve(now)
		if wait <= 0 {
			p.start()
			return
		}
		delay, p.reserved, p.cancelRes = wait, true, cancel
	}
	p.nextStart = now.Add(delay)
	p.timerC = p.s.clock.After(delay)
	p.setState(StateBackoff)
}

func (p *program) onTimer() {
	if p.state != StateBackoff {
		return
	}
	if !p.reserved {
		now := p.s.clock.Now()
		wait, cancel := p.s.limiter.Reserve(now)
		if wait > 0 {
			p.reserved, p.cancelRes = true, cancel
			p.nextStart = now.Add(wait)
			p.timerC = p.s.clock.After(wait)
			p.publish()
			return
		}
	}
	p.reserved, p.cancelRes = false, nil
	p.setState(StateStarting)
	p.start()
}

func (p *program) cancelTimer() {
	p.timerC = nil
	if p.reserved && p.cancelRes != nil {
		p.cancelRes(p.s.clock.Now())
	}
	p.reserved, p.cancelRes = false, nil
	p.nextStart = time.Time{}
}

// onDeath handles the exit of the instance: restart first (when the policy
// does not depend on the reason), attribute after.
func (p *program) onDeath() {
	proc, pid, started, gen := p.proc, p.pid, p.started, p.gen
	st := proc.Exit()
	p.proc, p.procDone, p.child = nil, nil, false
	p.lastDeath = st.Time
	if p.lastDeath.IsZero() {
		p.lastDeath = p.s.clock.Now()
	}

	// The counters are up to date at wait time and cost a file read or two,
	// so the reason is settled (for programs with a cgroup, or when the host
	// saw no OOM kill) before the next instance starts.
	ev := p.gather(st, pid, p.hostBase, p.hostBaseOK)
	reason, final := judge(ev)
	e := Exit{Program: p.name, Generation: gen, PID: pid, Started: started, Time: st.Time, Reason: reason, Signal: st.Signal, Code: st.Code, MaxRSS: st.MaxRSS, OOM: ev.kill}
	if !st.Signaled {
		e.Signal = 0
	}
	if final {
		e.Settled = p.s.clock.Now()
	}
	if p.group != nil {
		// Leftovers in the cgroup go before a new instance joins it.
		_ = p.group.KillAll()
	}

	stopping := p.state == StateStopping
	restarted, decideLater := false, false
	switch policy := p.spec.Restart.Policy; {
	case stopping:
		p.lastDeath = time.Time{}
	case policy == config.PolicyAlways,
		policy == config.PolicyOnFailure && (st.Signaled || st.Code != 0),
		policy == config.PolicyOnOOM && final && reason == ReasonOOMKill:
		restarted = p.restartAfter(started, st.Time)
	case policy == config.PolicyOnOOM && !final:
		decideLater = true
	}

	p.recent = append(p.recent, pid)
	if len(p.recent) > 16 {
		p.recent = p.recent[1:]
	}
	p.record(e, final, decideLater)
	p.s.stateChanged()

	if stopping {
		p.finishStop()
		return
	}
	if !restarted && p.state != StateFatal {
		p.lastDeath = time.Time{}
		p.waitOOM = decideLater
		p.setState(StateExited)
	}
}

// restartAfter applies the backoff policy to an exit and starts or
// schedules the next instance; false means the program gave up.
func (p *program) restartAfter(started, died time.Time) bool {
	d := p.policy.Exited(started, died)
	if d.GiveUp {
		p.giveUp()
		return false
	}
	p.schedule(d.Delay)
	return true
}

// gather collects the side evidence for a death at wait time.
func (p *program) gather(st restart.ExitStatus, pid int, hostBase uint64, hostBaseOK bool) evidence {
	ev := evidence{status: st, kernelLog: p.s.cfg.KernelLog}
	if !st.Unknown && (!st.Signaled || st.Signal != syscall.SIGKILL) {
		return ev
	}
	if k, ok := p.early[pid]; ok {
		delete(p.early, pid)
		ev.kill = &k
	}
	if p.group != nil {
		if n, err := p.group.OOMKills(); err == nil {
			ev.ownCgroup = true
			if n > p.oomAccounted {
				ev.cgroupOOMs = n - p.oomAccounted
			}
			p.oomAccounted = n
		} else {
			p.log.Warn("reading cgroup oom counter", "err", err)
		}
	}
	if hostBaseOK && p.s.cfg.HostOOMKills != nil {
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
	defer p.publish()
	wantKernel := p.s.cfg.KernelLog && e.OOM == nil && (e.Reason == ReasonOOMKill || !final)
	if final {
		p.finalize(e)
	}
	if !wantKernel {
		if e.PID != 0 {
			p.s.disownPID(e.PID, p)
		}
		p.s.events.add(exitEvent(e))
		if final {
			p.logExit(e)
		}
		return
	}
	pe := &pendingExit{exit: e, final: final, deadline: p.s.clock.Now().Add(p.s.cfg.AttributionWindow), decideRestart: decideRestart}
	p.pending = append(p.pending, pe)
	if p.settleC == nil {
		p.settleC = p.s.clock.After(p.s.cfg.AttributionWindow)
	}
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
// processes, or a process in its cgroup.
func (p *program) onKill(k oom.Kill) {
	for i, pe := range p.pending {
		if pe.exit.PID != k.PID {
			continue
		}
		p.pending = append(p.pending[:i], p.pending[i+1:]...)
		p.s.disownPID(k.PID, p)
		e := pe.exit
		e.OOM = &k
		wasFinal := pe.final
		e.Reason = ReasonOOMKill
		if !wasFinal {
			e.Settled = p.s.clock.Now()
		}
		p.last = &e
		if !wasFinal {
			p.finalize(e)
		}
		p.s.events.add(exitEvent(e))
		p.logExit(e)
		if pe.decideRestart {
			p.decideOnOOM(e)
		}
		p.publish()
		return
	}
	if k.PID == p.pid && p.proc != nil {
		// The report beat the exit status; onDeath picks it up.
		p.early[k.PID] = k
		return
	}
	for _, pid := range p.recent {
		if pid == k.PID {
			p.log.Debug("late kernel oom report", "pid", k.PID)
			return
		}
	}
	if p.group != nil && k.TaskMemcg == p.group.Path() {
		p.oomAccounted++
		p.s.rec.OOMKill(p.name, k)
		p.s.events.add(Event{Time: killTime(k, p.s.clock.Now()), Program: p.name, PID: k.PID, Comm: k.Comm, Reason: ReasonOOMKill, Signal: "SIGKILL", Worker: true, OOM: &k, RSSBytes: killRSS(k)})
		p.log.Warn("worker oom-killed", "pid", k.PID, "comm", k.Comm, "memcg", k.TaskMemcg)
		return
	}
	p.log.Debug("kernel oom report for no current process", "pid", k.PID)
}

// settleExpired finalises the exits whose attribution window has closed.
func (p *program) settleExpired() {
	now := p.s.clock.Now()
	keep := p.pending[:0]
	var next time.Time
	for _, pe := range p.pending {
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
		p.s.events.add(exitEvent(e))
		p.logExit(e)
		if pe.decideRestart {
			p.decideOnOOM(e)
		}
	}
	p.pending = keep
	if !next.IsZero() {
		p.settleC = p.s.clock.After(next.Sub(now))
	}
	p.publish() // the last exit may have settled without a state change
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

func (p *program) handle(m any) {
	switch m := m.(type) {
	case killMsg:
		p.onKill(m.kill)
	case updateMsg:
		p.log.Info("definition changed, restarting onto it")
		spec := m.spec
		p.pendingSpec = &spec
		p.beginStop(startAgain)
	case ctlMsg:
		m.reply <- p.control(m)
	}
}

func (p *program) control(m ctlMsg) error {
	if p.after == quit {
		return fmt.Errorf("program %s is shutting down", p.name)
	}
	switch m.action {
	case ActionStart:
		if p.proc != nil || p.state == StateStarting {
			return nil
		}
		p.cancelTimer()
		p.policy.Reset()
		p.lastDeath = time.Time{}
		p.after = stayDown
		p.setState(StateStarting)
		p.start()
	case ActionStop:
		p.stopSig = m.sig
		p.beginStop(stayDown)
	case ActionRestart:
		p.policy.Reset()
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

// beginStop sends the stop signal to the instance's group and arms the
// SIGKILL escalation; what happens once it is down is after.
func (p *program) beginStop(after afterStop) {
	if after > p.after {
		p.after = after
	}
	p.cancelTimer()
	p.waitOOM = false
	if p.proc == nil {
		p.finishStop()
		return
	}
	if p.state == StateStopping {
		return
	}
	p.setState(StateStopping)
	sig := p.spec.Stop.Signal
	if p.stopSig != 0 {
		sig, p.stopSig = p.stopSig, 0
	}
	if err := p.proc.Signal(sig); err != nil && !errors.Is(err, restart.ErrProcessDone) {
		p.log.Warn("sending stop signal", "err", err)
	}
	p.stopC = p.s.clock.After(p.spec.Stop.Timeout)
}

// finishStop runs once the instance is down after a stop.
func (p *program) finishStop() {
	p.stopC = nil
	after := p.after
	p.after = stayDown
	if p.pendingSpec != nil {
		p.setSpec(*p.pendingSpec)
		p.pendingSpec = nil
		if m := p.spec.Memory; m == nil {
			p.dropGroup()
		} else if p.group != nil {
			if err := p.group.Update(Limits{Max: m.Max, High: m.High, SwapMax: m.SwapMax}); err != nil {
				p.log.Warn("updating memory limits", "err", err)
			}
		}
		p.ensureGroup()
	}
	switch after {
	case quit:
		p.after = quit
		p.setState(StateStopped)
	case startAgain:
		p.policy.Reset()
		p.setState(StateStarting)
		p.start()
	default:
		p.setState(StateStopped)
	}
}
