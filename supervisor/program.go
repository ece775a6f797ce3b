package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// pingMsg asks the loop to show it is alive by closing reply.
	pingMsg struct{ reply chan struct{} }
)

type program struct {
	s      *Supervisor
	name   string
	hash   string // owned by the Supervisor's Run goroutine
	ctx    context.Context
	cancel context.CancelFunc
	// msgs is buffered so that the supervisor and operators rarely wait on
	// a loop that is busy starting a process.
	msgs chan any
	// exited is closed when the loop has returned: the next incarnation of
	// the same name waits for it.
	exited chan struct{}
	// initial says the program was in the first configuration applied, so
	// it may take over the instance recorded before respawnd's restart.
	initial bool
	// busy is when the loop began handling its current event (Unix
	// nanoseconds), 0 while it waits for the next: Alive's measure of a
	// stuck loop.
	busy atomic.Int64

	mu      sync.Mutex // guards st, stHash, stChild and stStop, the published status
	st      Status
	stHash  string
	stChild bool
	stStop  config.Stop

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
	latency   time.Duration // death to running, less the wait, for the latest restart
	// waitEnd is when the wait on purpose before the next start ended (a
	// backoff timer, a restart bucket token, a hold released); zero when
	// the start follows the death at once.
	waitEnd time.Time

	group     Group
	ledger    ledger
	watch     groupWatch
	tagWarned bool

	hostBase   uint64
	hostBaseOK bool
	// ownBase is the oom_kill counter of respawnd's own cgroup at the
	// current instance's start, for an instance without a program cgroup.
	ownBase   uint64
	ownBaseOK bool

	timerC <-chan time.Time
	// ticket holds a token of the global restart bucket that is not yet
	// usable (nil when none): the loop waits on timerC for it, or on its
	// Wake for an earlier one.
	ticket    *restart.Ticket
	nextStart time.Time

	stop    stopState
	waitOOM bool // on-oom program waiting for its last exit's reason

	news    news // see wait
	attr    attribution
	last    *Exit
	lastErr string

	mem  memoryState
	live liveness
	// order is the program's place in the configuration (set by the
	// supervisor at each apply): held restarts go in that order.
	order atomic.Int32
}

func newProgram(ctx context.Context, s *Supervisor, spec config.Program, initial bool) *program {
	ctx, cancel := context.WithCancel(ctx)
	p := &program{
		s:       s,
		name:    spec.Name,
		hash:    spec.Hash(),
		ctx:     ctx,
		cancel:  cancel,
		msgs:    make(chan any, 16),
		exited:  make(chan struct{}),
		initial: initial,
		log:     s.log.With("program", spec.Name),
		attr:    attribution{early: map[int]oom.Kill{}},
		live:    newLiveness(),
	}
	p.setSpec(spec)
	p.st = Status{Name: spec.Name, State: StateStarting}
	p.stStop = spec.Stop
	return p
}

// userEnv are the variables that describe the user a program runs as. For
// a program with its own user, respawnd's values are not passed on: the
// launcher sets them from that user's passwd entry, unless the program's
// env sets them.
var userEnv = []string{"HOME=", "USER=", "LOGNAME=", "SHELL="}

func (p *program) setSpec(spec config.Program) {
	p.spec = spec
	p.specHash = spec.Hash()
	p.cmd = buildCommand(spec, p.s.cfg.Env)
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
	p.mu.Lock()
	p.stStop = spec.Stop
	p.mu.Unlock()
}

// buildCommand turns a program definition into a launcher command once, so
// that nothing is computed on the restart path.
func buildCommand(spec config.Program, base []string) restart.Command {
	env := make([]string, 0, len(base)+len(spec.Env)+1) // +1: the tag added at each start
	for _, kv := range base {
		if spec.User != "" && hasAnyPrefix(kv, userEnv) {
			continue
		}
		env = append(env, kv)
	}
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
		// During a stop, Linger or the cgroup gives the members their time.
		KillGroupOnExit: true,
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// send delivers m to the loop unless the program is gone or ctx is done.
func (p *program) send(ctx context.Context, m any) bool {
	select {
	case p.msgs <- m:
		return true
	case <-p.exited:
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
		st.Ready = p.live.ready && p.state == StateRunning
		st.NotifyStatus, st.NotifyMainPID, st.NotifyErrno = p.live.status, p.live.notifyMain, p.live.errno
		switch {
		case p.live.stoppingN:
			st.NotifyState = "stopping"
		case p.live.reloading:
			st.NotifyState = "reloading"
		}
		if p.live.watchdog > 0 {
			st.WatchdogLastPing = p.live.lastPing
		}
	} else {
		st.PID = 0
	}
	if p.last != nil {
		e := *p.last
		st.LastExit = &e
	}
	if p.group != nil && (p.proc == nil || p.child) {
		// An instance adopted by match runs in a cgroup of its own choosing:
		// the program's cgroup says nothing about it.
		st.Cgroup = p.group.Path()
	}
	p.mu.Lock()
	p.st, p.stHash, p.stChild = st, p.specHash, p.child
	p.mu.Unlock()
	return st
}

func (p *program) setState(s State) {
	if s != StateBackoff && s != StateOOMLoop {
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
		if s == StateBackoff || s == StateOOMLoop {
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
	if p.ctx.Err() != nil {
		// Removed, or respawnd stopping, before this incarnation's turn
		// came: nothing was started, nothing to stop.
		return
	}
	p.safely("starting", p.begin)
	done := p.ctx.Done()
	for {
		p.dispatch(p.wait(done), &done)
		if p.stop.after == quit && p.proc == nil && p.state != StateStopping {
			p.safely("shutting down", p.shutdown)
			return
		}
	}
}

// begin takes over the instance already running (from respawnd's last
// life, or found by match), or starts a first one. A first start takes no
// token of the global restart bucket: the bucket guards against restart
// storms (crash loops, an OOM storm), and first starts are bounded by the
// configuration itself; a host of 1,000 programs should not wait 18 s at
// the default rate to come up.
func (p *program) begin() {
	p.ensureGroup()
	p.setState(StateStarting)
	if !p.adoptAtStart() {
		p.clearLeftovers()
		p.start()
	}
}

// news is what the source that woke a program's loop sent: the field of
// its kind, if any. Only wait writes it, only dispatch reads it.
type news struct {
	timedOut bool // evReleased
	err      error
	msg      any
	counts   oom.CgroupCounts
	mem      memoryNews
	probe    probeNews
}

// eventKind says which of a program loop's sources woke it.
type eventKind uint8

const (
	evDone eventKind = iota
	evExit
	evTimer
	evTurn
	evStopTimer
	evDrained
	evSettle
	evMessage
	evCounts
	evWorkerCheck
	evRescan
	evMemory
	evReleased
	evProbe
	evNotify
	evLiveTimer
)

// wait blocks until one of the loop's sources is ready, keeps what it
// sent in p.news, and says which it was. Waiting and handling are separate
// functions, and the news is kept in the program rather than on the
// stack, so that a loop parked here has little on its stack: the runtime
// then shrinks an idle loop's stack to 4 KiB. With the handlers' frames
// below the select it stayed at 8 KiB, 4 MiB for a thousand programs
// (TestIdleLoopStack).
func (p *program) wait(done <-chan struct{}) eventKind {
	n := &p.news
	select {
	case <-done:
		return evDone
	case <-p.procDone:
		return evExit
	case <-p.timerC:
		return evTimer
	case <-p.ticket.Wake():
		return evTurn
	case <-p.stop.timer:
		return evStopTimer
	case n.err = <-p.stop.drained:
		return evDrained
	case <-p.attr.settle:
		return evSettle
	case n.msg = <-p.msgs:
		return evMessage
	case n.counts = <-p.watch.counts:
		return evCounts
	case <-p.ledger.check:
		return evWorkerCheck
	case <-p.rescanC:
		return evRescan
	case n.mem = <-p.mem.recycleC:
		return evMemory
	case n.timedOut = <-p.mem.releaseC:
		return evReleased
	case n.probe = <-p.live.probeC:
		return evProbe
	case <-p.live.wake:
		return evNotify
	case <-p.live.timer:
		return evLiveTimer
	}
}

// dispatch handles the event wait returned, and clears the news. It is
// never inlined into run: its frame must not stay on an idle loop's stack.
//
//go:noinline
func (p *program) dispatch(kind eventKind, done *<-chan struct{}) {
	n := p.news
	p.news = news{}
	switch kind {
	case evDone:
		// Shutdown or removal: stop once, then keep serving the loop
		// until the instance is down.
		*done = nil
		p.safely("stopping", func() { p.beginStop(quit) })
	case evExit:
		// Deaths are handled in the order of their reaping.
		at := p.s.clock.Now()
		if p.proc != nil {
			if t := p.proc.Exit().Time; !t.IsZero() && t.Before(at) {
				at = t
			}
		}
		p.safelyAt(at, "handling an exit", p.onDeath)
	case evTimer:
		p.timerC = nil
		p.safely("starting after backoff", p.onTimer)
	case evTurn:
		p.safely("starting on an earlier token", p.onTurn)
	case evStopTimer:
		p.stop.timer = nil
		p.safely("escalating a stop", p.stopTimedOut)
	case evDrained:
		p.stop.drained = nil
		p.safely("finishing a stop", func() { p.onDrained(n.err) })
	case evSettle:
		p.attr.settle = nil
		p.safely("settling an exit", p.settleExpired)
	case evMessage:
		if k, ok := n.msg.(killMsg); ok {
			early := false
			p.quickly("noting an oom report", func() { early = p.noteEarly(k.kill) })
			if early {
				return
			}
		}
		p.safely("handling a message", func() { p.handle(n.msg) })
	case evCounts:
		p.quickly("reading oom counters", func() { p.onCounts(n.counts) })
	case evWorkerCheck:
		p.ledger.check = nil
		p.safely("checking worker oom kills", p.checkWorkers)
	case evRescan:
		p.rescanC = nil
		p.safely("looking for a matching process", p.onRescan)
	case evMemory:
		p.safely("handling a memory event", func() { p.onMemory(n.mem) })
	case evReleased:
		p.safely("releasing a held restart", func() { p.onReleased(n.timedOut) })
	case evProbe:
		p.safely("handling a health check", func() { p.onProbe(n.probe) })
	case evNotify:
		p.safely("handling sd_notify messages", p.onNotify)
	case evLiveTimer:
		p.safely("checking liveness deadlines", p.onLiveTimer)
	}
}

// clearLeftovers kills what an earlier instance left in the program's
// cgroup (after respawnd's own restart, say) before a fresh start: only
// respawnd puts processes there, and a fresh instance must be the only one.
func (p *program) clearLeftovers() {
	if p.group == nil {
		return
	}
	if err := p.group.KillAll(); err != nil {
		p.log.Warn("killing what an earlier instance left in the cgroup", "err", err)
	}
}

// safely runs f and turns a panic into a logged, counted error: one
// program's fault never takes down the loop, let alone the daemon.
//
// It also takes one of the supervisor's work slots for the time f runs:
// handlers make blocking system calls (cgroup files, fork and exec), and a
// thousand loops doing so at once would make the Go runtime start a thread
// for each of them, threads it never gives back.
func (p *program) safely(what string, f func()) {
	p.safelyAt(p.s.clock.Now(), what, f)
}

// safelyAt is safely for an event that happened at at: waiters for a work
// slot are served in the order of that moment (see workSlots).
func (p *program) safelyAt(at time.Time, what string, f func()) {
	p.quickly(what, func() {
		p.s.work.take(at)
		defer p.s.work.give()
		f()
	})
}

// quickly is safely for a handler that makes no system call and never
// blocks: it takes no work slot. In an OOM storm the slots are queued for
// seconds; a loop that queued to note its cgroup's OOM counter would
// queue again, at the back, to handle the death that follows, and restarts
// would come out of the order of the deaths.
func (p *program) quickly(what string, f func()) {
	p.busy.Store(time.Now().UnixNano())
	p.s.busyLoops.Add(1)
	defer func() {
		p.s.busyLoops.Add(-1)
		p.busy.Store(0)
	}()
	defer func() {
		if r := recover(); r != nil {
			p.s.panicked(p.log, what, r, debug.Stack())
		}
	}()
	f()
}

func (p *program) shutdown() {
	now := p.s.clock.Now()
	for _, pe := range p.attr.pending {
		pe.deadline = now
	}
	p.settleExpired()
	p.dropGroup()
	p.closeNotify()
}

// start starts a new instance now. It is the restart path: nothing slow
// happens before the launcher returns.
func (p *program) start() {
	cmd := p.cmd
	cgroup := ""
	if p.group != nil {
		cgroup = p.group.Path()
		p.group.ResetPeak()
		cmd.CgroupFD = p.group.FD()
		cmd.CgroupProcs = p.group.Procs()
		cmd.CgroupLeave = p.group.Leave()
	}
	if tag := p.s.cfg.Tag; tag != nil {
		entry, err := tag(p.name, p.gen+1, p.specHash)
		switch {
		case err == nil:
			cmd.Env = append(cmd.Env[:len(cmd.Env):len(cmd.Env)], entry)
		case !p.tagWarned:
			p.tagWarned = true
			p.log.Warn("instance tag unavailable: after a restart of respawnd this instance is found through the state file only", "err", err)
		}
	}
	if env := p.notifyEnv(); env != nil {
		cmd.Env = append(cmd.Env[:len(cmd.Env):len(cmd.Env)], env...)
		// Datagrams from the cgroup count from the first instant.
		p.setMember(0, cgroup)
	}
	// Every baseline is taken before the process can run: an OOM kill right
	// after the start must already count against it.
	// Without a cgroup of its own, the counter of respawnd's cgroup decides
	// a SIGKILL; the host's is read only when that one cannot be.
	p.hostBaseOK, p.ownBaseOK = false, false
	if p.group == nil && p.s.cfg.OwnOOMKills != nil {
		if n, err := p.s.cfg.OwnOOMKills(); err == nil {
			p.ownBase, p.ownBaseOK = n, true
		}
	}
	if p.group == nil && !p.ownBaseOK && p.s.cfg.HostOOMKills != nil {
		if n, err := p.s.cfg.HostOOMKills(); err == nil {
			p.hostBase, p.hostBaseOK = n, true
		}
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
	p.setMember(p.pid, cgroup)
	p.latency = 0
	if !p.lastDeath.IsZero() {
		p.restarts++
		// The latency is respawnd's own: from the death, or from the end
		// of a deliberate wait, to the new process.
		from := p.lastDeath
		if p.waitEnd.After(from) {
			from = p.waitEnd
		}
		p.latency = p.started.Sub(from)
		p.s.rec.Restarted(p.name, p.latency)
		p.s.rec.RestartWaited(p.name, from.Sub(p.lastDeath))
		p.lastDeath = time.Time{}
	}
	p.waitEnd = time.Time{}
	p.watchLiveness("")
	p.setState(p.launchedState())
	p.s.stateChanged()
	p.watchMemory()
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
	p.scheduleAfter(p.s.clock.Now(), delay)
}

// scheduleAfter is schedule for a start that became due at since (the
// death it follows) before delay: with no delay, the bucket's tokens go in
// the order of since (see restart.Ticket).
func (p *program) scheduleAfter(since time.Time, delay time.Duration) {
	now := p.s.clock.Now()
	if delay <= 0 {
		wait, t := p.s.limiter.ReserveTurn(now, since)
		if wait <= 0 {
			p.start()
			return
		}
		delay, p.ticket = wait, t
	}
	p.nextStart = now.Add(delay)
	p.timerC = p.s.clock.After(delay)
	if p.mem.inLoop {
		p.setState(StateOOMLoop)
		return
	}
	p.setState(StateBackoff)
}

// onTimer starts the next instance once its backoff is over and a token
// of the bucket is usable: it reserves one (due now) when it holds none.
func (p *program) onTimer() {
	if p.state != StateBackoff && p.state != StateOOMLoop {
		return
	}
	now := p.s.clock.Now()
	var wait time.Duration
	if p.ticket == nil {
		wait, p.ticket = p.s.limiter.ReserveTurn(now, now)
	} else {
		// Its token is usable, unless a start that became due earlier
		// takes it and leaves this one a later token.
		wait = p.ticket.Turn(now)
	}
	if wait > 0 {
		p.nextStart = now.Add(wait)
		p.timerC = p.s.clock.After(wait)
		p.publish()
		return
	}
	p.ticket = nil
	p.waitEnd = now
	p.setState(StateStarting)
	p.start()
}

// onTurn handles a swap that gave the loop's ticket an earlier token.
func (p *program) onTurn() {
	if p.ticket == nil {
		return
	}
	p.timerC = nil
	p.onTimer()
}

func (p *program) cancelTimer() {
	p.cancelHold()
	p.timerC = nil
	p.ticket.Cancel(p.s.clock.Now())
	p.ticket = nil
	p.nextStart = time.Time{}
}

// restartAfter applies the backoff policy to an exit and starts or
// schedules the next instance; false means the program gave up.
func (p *program) restartAfter(started, died time.Time) bool {
	d := p.policy.Exited(started, died)
	if d.GiveUp {
		p.giveUp()
		return false
	}
	if p.holdRestart(d.Delay) {
		return true
	}
	p.scheduleAfter(died, d.Delay)
	return true
}

func (p *program) handle(m any) {
	switch m := m.(type) {
	case killMsg:
		p.onKill(m.kill)
	case updateMsg:
		p.update(m.spec)
	case ctlMsg:
		m.reply <- p.control(m)
	case pingMsg:
		// A barrier's ping must not overtake what was delivered before it
		// on another channel: when both are ready the select picks either.
		select {
		case <-p.live.wake:
			p.onNotify()
		default:
		}
		close(m.reply)
	default:
		panic(fmt.Sprintf("program %s: unknown message %T", p.name, m))
	}
}
