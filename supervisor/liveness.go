package supervisor

import (
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// Prober runs a program's health checks (config.Health). The daemon's is
// the health package's Checker.
type Prober interface {
	// Probe starts probing one instance of program; base is the program's
	// command, whose user, group, directory and environment an exec probe
	// runs with. notify is called without blocking, at most once per
	// ProbeEvent kind. stop ends the probing at once, killing a probe in
	// flight.
	Probe(program string, h config.Health, base restart.Command, notify func(ProbeEvent)) (stop func())
}

// ProbeEvent is news from an instance's health checks.
type ProbeEvent struct {
	// Unhealthy says the check failed Health.Failures times in a row;
	// otherwise the event is the instance's first passing check.
	Unhealthy bool
	Failures  int
	// Reason says what the last failure was.
	Reason string
}

// Notifier gives programs sd_notify sockets. The daemon's is the notify
// package's Server.
type Notifier interface {
	// Open gives program its socket and returns the NOTIFY_SOCKET entry
	// (KEY=value) for its instances. who reports the current instance: its
	// main pid (0 when none) and its cgroup ("" when it has none); a
	// datagram is accepted from that process, a process in that cgroup or
	// one below it in the process tree, and deliver then gets it, without
	// blocking. close removes the socket.
	Open(program string, who func() (pid int, cgroup string), deliver func(NotifyMessage)) (env string, close func(), err error)
}

// NotifyMessage is one accepted sd_notify datagram.
type NotifyMessage struct {
	// PID sent it; Time is when it was received.
	PID             int
	Time            time.Time
	Ready           bool
	Reloading       bool
	Stopping        bool
	Status          string
	HasStatus       bool
	MainPID         int
	Watchdog        bool
	WatchdogTrigger bool
	WatchdogUsec    uint64
	ExtendTimeout   time.Duration
	Errno           int
	HasErrno        bool
}

// The kinds of liveness events (Event.Kind).
const (
	EventReady           = "ready"
	EventUnhealthy       = "health_check_failed"
	EventWatchdogMissed  = "watchdog_missed"
	EventStartTimeout    = "start_timeout"
	EventWatchdogTrigger = "watchdog_trigger"
)

// liveness is a program's health check and sd_notify bookkeeping, owned by
// its loop except where noted.
type liveness struct {
	// probeC carries the prober's news (two events at most per instance,
	// so none is replaced), made with the first probe and kept; wake says
	// inbox has news. Both are fed with offer, never blocking their
	// senders.
	probeC chan probeNews
	wake   chan struct{}
	// inboxMu guards inbox, filled by the notifier's goroutine.
	inboxMu sync.Mutex
	inbox   []NotifyMessage
	// mainPID and cgroup are the current instance as the notifier's
	// membership check sees it (written by the loop, read concurrently).
	mainPID atomic.Int64
	cgroup  atomic.Pointer[string]

	stopProbe func()
	sockEnv   string
	closeSock func()

	ready      bool
	reloading  bool
	stoppingN  bool // the program said STOPPING=1
	status     string
	errno      int
	notifyMain int

	// timer fires at the earlier of the start deadline (waiting for
	// READY=1) and the watchdog deadline.
	timer         <-chan time.Time
	timerAt       time.Time
	readyDeadline time.Time
	watchdog      time.Duration // in force for this instance; 0: none
	lastPing      time.Time

	// reason is why the stop in progress was ordered by a check (health
	// check, watchdog, start timeout), ReasonUnknown when it was not.
	reason Reason
	why    string
}

type probeNews struct {
	gen uint64
	ev  ProbeEvent
}

func newLiveness() liveness {
	return liveness{wake: make(chan struct{}, 1)}
}

// maxInbox bounds the messages kept between two turns of the loop: a
// program flooding its socket loses its oldest messages, nothing else.
const maxInbox = 64

// deliver is the notifier's callback: it never blocks.
func (l *liveness) deliver(m NotifyMessage) {
	l.inboxMu.Lock()
	if len(l.inbox) >= maxInbox {
		l.inbox = l.inbox[1:]
	}
	l.inbox = append(l.inbox, m)
	l.inboxMu.Unlock()
	offer(l.wake, struct{}{})
}

func (l *liveness) who() (int, string) {
	c := ""
	if p := l.cgroup.Load(); p != nil {
		c = *p
	}
	return int(l.mainPID.Load()), c
}

// notifyEnv opens the program's socket when its definition asks for one
// and returns the entries its next instance gets. It runs before a start;
// the socket stays open across instances.
func (p *program) notifyEnv() []string {
	n := p.spec.Notify
	if n == nil || p.s.cfg.Notifier == nil {
		p.closeNotify()
		return nil
	}
	if p.live.closeSock == nil {
		env, closeSock, err := p.s.cfg.Notifier.Open(p.name, p.live.who, p.live.deliver)
		if err != nil {
			p.log.Warn("sd_notify socket unavailable: the program cannot report readiness or watchdog pings", "err", err)
			return nil
		}
		p.live.sockEnv, p.live.closeSock = env, closeSock
	}
	out := []string{p.live.sockEnv}
	if n.Watchdog > 0 {
		out = append(out, "WATCHDOG_USEC="+strconv.FormatInt(n.Watchdog.Microseconds(), 10))
	}
	return out
}

func (p *program) closeNotify() {
	if p.live.closeSock != nil {
		p.live.closeSock()
		p.live.closeSock, p.live.sockEnv = nil, ""
	}
}

// setMember publishes the current instance for the notifier's membership
// check; pid 0 says there is none.
func (p *program) setMember(pid int, cgroup string) {
	p.live.mainPID.Store(int64(pid))
	p.live.cgroup.Store(&cgroup)
}

// launchedState is the state of an instance just started: starting until
// READY=1 for a program that waits for it.
func (p *program) launchedState() State {
	if n := p.spec.Notify; n != nil && n.Ready && p.s.cfg.Notifier != nil && p.live.closeSock != nil {
		return StateStarting
	}
	return StateRunning
}

// watchLiveness begins the checks of the instance just started, or of one
// adopted running (how says how it was found): an adopted instance counts
// as ready, and its watchdog runs only if respawnd started it, in an
// earlier life, with the same NOTIFY_SOCKET; a process found by match may
// never have had one.
func (p *program) watchLiveness(how string) {
	adopted := how != ""
	p.unwatchLiveness()
	l := &p.live
	l.ready, l.reloading, l.stoppingN, l.status, l.errno, l.notifyMain = false, false, false, "", 0, 0
	l.readyDeadline, l.watchdog, l.lastPing = time.Time{}, 0, time.Time{}
	now := p.s.clock.Now()
	// Ready at once, unless something is to tell: READY=1 from a new
	// instance, or a first passing health check.
	l.ready = true
	if n := p.spec.Notify; n != nil && l.closeSock != nil {
		switch {
		case n.Ready && !adopted:
			l.ready = false
			l.readyDeadline = now.Add(n.StartTimeout)
		case how == "match" && n.Watchdog > 0:
			p.log.Warn("adopted by match, without a NOTIFY_SOCKET of respawnd's: its watchdog starts with its next start", "pid", p.pid)
		default:
			l.armWatchdog(n.Watchdog, now)
		}
	}
	if h := p.spec.Health; h != nil && p.s.cfg.Prober != nil {
		l.ready = false
		if l.probeC == nil {
			l.probeC = make(chan probeNews, 2)
		}
		gen, c := p.gen, l.probeC
		l.stopProbe = p.s.cfg.Prober.Probe(p.name, *h, p.cmd, func(ev ProbeEvent) { offer(c, probeNews{gen: gen, ev: ev}) })
	}
	p.armLiveTimer()
}

func (l *liveness) armWatchdog(d time.Duration, now time.Time) {
	l.watchdog = d
	if d > 0 {
		l.lastPing = now
	}
}

// unwatchLiveness ends the current instance's checks.
func (p *program) unwatchLiveness() {
	if p.live.stopProbe != nil {
		p.live.stopProbe()
		p.live.stopProbe = nil
	}
	p.live.timer, p.live.timerAt = nil, time.Time{}
	p.live.readyDeadline, p.live.watchdog = time.Time{}, 0
}

// armLiveTimer sets the timer for the earliest deadline due. A timer that
// fires before it is kept: onLiveTimer arms the next one then, so a
// watchdog ping costs no timer.
func (p *program) armLiveTimer() {
	l := &p.live
	var at time.Time
	if !l.readyDeadline.IsZero() {
		at = l.readyDeadline
	}
	if l.watchdog > 0 {
		if w := l.lastPing.Add(l.watchdog); at.IsZero() || w.Before(at) {
			at = w
		}
	}
	if at.IsZero() {
		l.timer, l.timerAt = nil, time.Time{}
		return
	}
	if l.timer != nil && !l.timerAt.After(at) {
		return
	}
	l.timerAt = at
	l.timer = p.s.clock.After(max(0, at.Sub(p.s.clock.Now())))
}

// onLiveTimer checks the deadlines when the timer fires.
func (p *program) onLiveTimer() {
	l := &p.live
	l.timer, l.timerAt = nil, time.Time{}
	if p.proc == nil || p.stopping() {
		return
	}
	now := p.s.clock.Now()
	switch {
	case !l.readyDeadline.IsZero() && !now.Before(l.readyDeadline):
		n := p.spec.Notify
		p.log.Error("no READY=1 within start_timeout: stopping it as a failed start", "start_timeout", n.StartTimeout.String(), "pid", p.pid)
		p.s.events.add(Event{Time: now, Program: p.name, PID: p.pid, Kind: EventStartTimeout})
		p.failStop(ReasonStartFailure, "no READY=1 within "+n.StartTimeout.String(), 0)
		return
	case l.watchdog > 0 && now.Sub(l.lastPing) >= l.watchdog:
		p.log.Error("watchdog missed: no WATCHDOG=1 in time, aborting it", "watchdog", l.watchdog.String(), "last_ping", l.lastPing, "pid", p.pid)
		p.s.events.add(Event{Time: now, Program: p.name, PID: p.pid, Kind: EventWatchdogMissed})
		p.failStop(ReasonWatchdog, "no WATCHDOG=1 for "+l.watchdog.String(), syscall.SIGABRT)
		return
	}
	p.armLiveTimer()
}

// onProbe takes the prober's news about instance n.gen.
func (p *program) onProbe(n probeNews) {
	if n.gen != p.gen || p.proc == nil || p.stopping() {
		return // an earlier instance's, or one on its way out
	}
	if !n.ev.Unhealthy {
		if !p.live.ready && (p.spec.Notify == nil || !p.spec.Notify.Ready) {
			p.live.ready = true
			p.s.events.add(Event{Time: p.s.clock.Now(), Program: p.name, PID: p.pid, Kind: EventReady})
			p.publish()
			p.log.Info("ready: first health check passed", "pid", p.pid)
		}
		return
	}
	if p.state == StateStarting {
		// Still waiting for READY=1: start_timeout judges it.
		return
	}
	p.log.Error("health check failed: restarting it", "failures", n.ev.Failures, "last_failure", n.ev.Reason, "pid", p.pid)
	p.s.events.add(Event{Time: p.s.clock.Now(), Program: p.name, PID: p.pid, Kind: EventUnhealthy, Error: n.ev.Reason})
	p.failStop(ReasonHealthCheck, n.ev.Reason, 0)
}

// onNotify takes the sd_notify messages received since the last turn.
func (p *program) onNotify() {
	l := &p.live
	l.inboxMu.Lock()
	msgs := l.inbox
	l.inbox = nil
	l.inboxMu.Unlock()
	if p.proc == nil || p.spec.Notify == nil {
		return
	}
	changed := false
	for _, m := range msgs {
		if p.proc == nil || p.stopping() && !m.HasStatus {
			continue
		}
		if m.HasStatus {
			l.status, changed = m.Status, true
		}
		if m.HasErrno {
			l.errno, changed = m.Errno, true
		}
		if m.MainPID > 0 && m.MainPID != l.notifyMain {
			l.notifyMain, changed = m.MainPID, true
			p.log.Info("MAINPID reported", "main_pid", m.MainPID, "pid", p.pid)
		}
		if m.Stopping {
			l.stoppingN, changed = true, true
		}
		if m.Reloading {
			l.reloading, changed = true, true
		}
		if m.WatchdogUsec > 0 {
			l.watchdog = max(time.Duration(m.WatchdogUsec)*time.Microsecond, config.MinWatchdog)
			changed = true
		}
		if m.Ready {
			l.reloading = false
			if !l.ready {
				p.becomeReady(m.Time)
			}
			changed = true
		}
		if m.Watchdog && l.watchdog > 0 && m.Time.After(l.lastPing) {
			l.lastPing = m.Time
			changed = true
		}
		if m.ExtendTimeout > 0 && !l.readyDeadline.IsZero() {
			if d := m.Time.Add(m.ExtendTimeout); d.After(l.readyDeadline) {
				l.readyDeadline = d
			}
		}
		if m.WatchdogTrigger && !p.stopping() {
			p.log.Error("the program triggered its watchdog: aborting it", "pid", p.pid, "sender", m.PID)
			p.s.events.add(Event{Time: m.Time, Program: p.name, PID: p.pid, Kind: EventWatchdogTrigger})
			p.failStop(ReasonWatchdog, "WATCHDOG=trigger", syscall.SIGABRT)
			return
		}
	}
	if changed {
		p.armLiveTimer()
		p.publish()
	}
}

// becomeReady takes READY=1.
func (p *program) becomeReady(at time.Time) {
	l := &p.live
	l.ready = true
	l.readyDeadline = time.Time{}
	if n := p.spec.Notify; n != nil && n.Ready {
		l.armWatchdog(n.Watchdog, at)
	}
	p.s.events.add(Event{Time: at, Program: p.name, PID: p.pid, Kind: EventReady})
	if p.state == StateStarting {
		p.setState(StateRunning)
		return
	}
	p.publish()
	p.log.Info("ready", "pid", p.pid)
}

// failStop stops the instance because a check failed, and restarts it
// under the crash backoff once it is down. sig, when set, replaces the
// stop signal (SIGABRT for the watchdog, as systemd sends, so the program
// can leave a core dump or a stack trace); the stop timeout then SIGKILLs
// what is left.
func (p *program) failStop(r Reason, why string, sig syscall.Signal) {
	p.unwatchLiveness()
	p.live.reason, p.live.why = r, why
	if sig != 0 {
		p.stop.sig = sig
	}
	p.beginStop(failAgain)
}

// checkedExit gives the exit of an instance stopped by a failed check its
// reason, unless the OOM killer beat the stop.
func (p *program) checkedExit(e *Exit) {
	if r := p.live.reason; r != ReasonUnknown && e.Reason != ReasonOOMKill {
		// The reason, and what the check saw: the failed probe's answer,
		// the missed ping, the missing READY=1.
		e.Reason, e.Err = r, p.live.why
	}
}

// afterFailedCheck restarts a program stopped by a failed check, as a
// crash: through the backoff and the burst limit, unless its restart
// policy is never.
func (p *program) afterFailedCheck() {
	p.live.reason, p.live.why = ReasonUnknown, ""
	if p.spec.Restart.Policy == config.PolicyNever {
		p.lastDeath = time.Time{}
		p.setState(StateExited)
		return
	}
	p.restartAfter(p.stop.started, p.stop.died)
}
