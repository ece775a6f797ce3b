package supervisor

import (
	"time"

	"github.com/respawnd/respawnd/config"
)

// MemoryWatcher watches a program's memory against its recycle and warn
// thresholds (config.Memory.Recycle and WarnAbove). The daemon's is
// memwatch's Watcher, one event loop for every program.
type MemoryWatcher interface {
	// Watch starts watching one instance: its cgroup g or, when g is nil
	// (an instance adopted outside the program's cgroup), the process
	// tree of pid. notify is called, from the watcher's goroutine and
	// without blocking, at each crossing. stop ends the watch.
	Watch(program string, g Group, pid int, spec config.Program, notify func(MemoryEvent)) (stop func(), err error)
}

// Gate holds restarts after a host-wide OOM kill until the host's memory
// has recovered. The daemon's is memwatch's Gate.
type Gate interface {
	// Hold queues program (order is its place in the configuration) until
	// the host has need bytes to spare, or for max at most; release is
	// then called once, from the gate's goroutine, without blocking.
	Hold(program string, order int, need uint64, max time.Duration, release func(timedOut bool))
	// Cancel takes program out of the queue; release is not called.
	Cancel(program string)
}

// MemoryEventKind says what a MemoryEvent reports.
type MemoryEventKind int

// The memory events.
const (
	// MemoryRecycle: the measure stayed above the recycle threshold for
	// the configured time.
	MemoryRecycle MemoryEventKind = iota
	// MemoryWarn: the measure went above warn_above.
	MemoryWarn
	// MemoryWarnCleared: it went back below.
	MemoryWarnCleared
)

func (k MemoryEventKind) String() string {
	switch k {
	case MemoryRecycle:
		return "memory_recycle"
	case MemoryWarn:
		return "memory_warn"
	case MemoryWarnCleared:
		return "memory_warn_cleared"
	}
	return "memory_event"
}

// MemoryEvent is one crossing of a program's memory threshold.
type MemoryEvent struct {
	Kind      MemoryEventKind
	Measure   string
	Value     uint64
	Threshold uint64
}

// The kinds of events other than exits (Event.Kind).
const (
	EventHeld        = "held_for_memory"
	EventReleased    = "released"
	EventOOMLoop     = "oom_loop"
	EventRecycle     = "memory_recycle"
	EventRecycleLoop = "memory_recycle_loop"
)

// maxRecycles is how many recycles within restart.reset_after are taken as
// a memory leak rather than a program that grows: the next one goes through
// the crash backoff.
const maxRecycles = 3

// memoryState is a program's memory watchdog bookkeeping, owned by its loop.
type memoryState struct {
	// recycleC and releaseC carry the watcher's and the gate's news to
	// the loop: buffered, latest wins, never blocking their senders. Each
	// is made when first needed (most programs never set a threshold or
	// have a restart held) and kept.
	recycleC chan memoryNews
	releaseC chan bool
	// stopWatch ends the current instance's watch.
	stopWatch func()
	// recycling says the stop in progress is a recycle; recycles are the
	// times of recent ones, for the loop guard.
	recycling bool
	recycles  []time.Time
	// recycleLoop says recycles came too often (more than maxRecycles
	// within reset_after) and restart with the crash backoff.
	recycleLoop bool
	// hold is the host-wide OOM kill whose restart waits for the gate;
	// holdDelay the backoff delay still due once it is released.
	hold      *pendingHold
	heldSince time.Time
	holdDelay time.Duration
	// ooms are the times of recent OOM kills; inLoop says the last
	// restart.oom_loop of them fell within restart.reset_after.
	ooms   []time.Time
	inLoop bool
}

type memoryNews struct {
	gen uint64
	ev  MemoryEvent
}

type pendingHold struct{ need uint64 }

// offer puts n in c, replacing what the loop has not taken yet.
func offer[T any](c chan T, n T) {
	for {
		select {
		case c <- n:
			return
		default:
		}
		select {
		case <-c:
		default:
		}
	}
}

// watchMemory starts watching the instance just started (or adopted), when
// the program has thresholds.
func (p *program) watchMemory() {
	p.unwatchMemory()
	w := p.s.cfg.Memory
	if w == nil || p.proc == nil {
		return
	}
	_, recycle := p.spec.RecycleAbove()
	_, warn := p.spec.WarnAbove()
	if !recycle && !warn {
		return
	}
	var g Group
	if p.child {
		g = p.group
	}
	if p.mem.recycleC == nil {
		p.mem.recycleC = make(chan memoryNews, 1)
	}
	gen, c := p.gen, p.mem.recycleC
	stop, err := w.Watch(p.name, g, p.pid, p.spec, func(ev MemoryEvent) { offer(c, memoryNews{gen: gen, ev: ev}) })
	if err != nil {
		p.log.Warn("memory watchdog unavailable for this instance", "err", err)
		return
	}
	p.mem.stopWatch = stop
}

func (p *program) unwatchMemory() {
	if p.mem.stopWatch != nil {
		p.mem.stopWatch()
		p.mem.stopWatch = nil
	}
}

// onMemory takes a crossing reported for instance n.gen.
func (p *program) onMemory(n memoryNews) {
	if n.gen != p.gen || p.proc == nil {
		return // an earlier instance's
	}
	ev := n.ev
	attrs := []any{"measure", ev.Measure, "bytes", ev.Value, "threshold_bytes", ev.Threshold, "generation", p.gen}
	switch ev.Kind {
	case MemoryWarn:
		p.log.Warn("memory above warn_above", attrs...)
		p.memoryEvent(ev.Kind.String(), ev)
	case MemoryWarnCleared:
		p.log.Info("memory back below warn_above", attrs...)
		p.memoryEvent(ev.Kind.String(), ev)
	case MemoryRecycle:
		if p.stopping() {
			return
		}
		now := p.s.clock.Now()
		p.mem.recycles = append(within(p.mem.recycles, now, p.spec.Restart.ResetAfter), now)
		if r := p.spec.Memory; r != nil && r.Recycle != nil {
			attrs = append(attrs, "for", r.Recycle.For.String())
		}
		p.log.Warn("memory stayed above the recycle threshold: recycling", attrs...)
		p.memoryEvent(EventRecycle, ev)
		p.mem.recycling = true
		p.beginStop(recycleAgain)
	}
}

// within drops the times before now-window.
func within(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	keep := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	return keep
}

func (p *program) memoryEvent(kind string, ev MemoryEvent) {
	p.s.events.add(Event{Time: p.s.clock.Now(), Program: p.name, PID: p.pid, Kind: kind, MemoryBytes: int64(ev.Value), ThresholdBytes: int64(ev.Threshold)})
}

// afterRecycle starts the next instance once a recycle's stop is done: at
// once, with a token of the global bucket and without advancing the crash
// backoff; after more than maxRecycles within reset_after, through the
// crash backoff instead.
func (p *program) afterRecycle() {
	if len(p.mem.recycles) > maxRecycles {
		if !p.mem.recycleLoop {
			p.mem.recycleLoop = true
			p.log.Warn("recycled for memory too often: restarts go through the crash backoff", "recycles", len(p.mem.recycles), "within", p.spec.Restart.ResetAfter.String())
			p.s.events.add(Event{Time: p.s.clock.Now(), Program: p.name, Kind: EventRecycleLoop})
			p.s.rec.RecycleLoop(p.name)
		}
		p.restartAfter(p.stop.started, p.stop.died)
		return
	}
	p.mem.recycleLoop = false
	p.schedule(0)
}

// noteOOM counts an OOM kill of the main process for the oom_loop state,
// and decides whether its restart waits for the host's memory: a kill
// caused by the host running out (not by the program's own limit) with
// restart.oom_hold on.
func (p *program) noteOOM(e Exit, hostWide bool) {
	now := p.s.clock.Now()
	p.mem.ooms = append(within(p.mem.ooms, now, p.spec.Restart.ResetAfter), now)
	if n := p.spec.Restart.OOMLoop; n > 0 && len(p.mem.ooms) >= n {
		if !p.mem.inLoop {
			p.log.Warn("oom loop: raise the memory limit or fix the leak", "oom_kills", len(p.mem.ooms), "within", p.spec.Restart.ResetAfter.String())
			p.s.events.add(Event{Time: now, Program: p.name, Kind: EventOOMLoop})
		}
		p.mem.inLoop = true
	}
	if lim := p.s.limits(); hostWide && p.s.cfg.Gate != nil && p.spec.OOMHold(lim) && p.spec.OOMHoldMax(lim) > 0 {
		need := uint64(0)
		if e.PeakMemory > 0 {
			need = uint64(e.PeakMemory)
		}
		p.mem.hold = &pendingHold{need: need}
	}
}

// clearOOMLoop ends the oom_loop state once an instance has outlived
// reset_after.
func (p *program) clearOOMLoop(started, died time.Time) {
	if !started.IsZero() && died.Sub(started) >= p.spec.Restart.ResetAfter {
		p.mem.ooms = p.mem.ooms[:0]
		p.mem.inLoop = false
	}
}

// holdRestart queues the restart with the gate, when the last death asked
// for it; delay is the backoff delay due after the hold.
func (p *program) holdRestart(delay time.Duration) bool {
	h := p.mem.hold
	p.mem.hold = nil
	if h == nil || p.s.cfg.Gate == nil {
		return false
	}
	max := p.spec.OOMHoldMax(p.s.limits())
	if p.mem.releaseC == nil {
		p.mem.releaseC = make(chan bool, 1)
	}
	c := p.mem.releaseC
	p.mem.heldSince, p.mem.holdDelay = p.s.clock.Now(), delay
	p.s.cfg.Gate.Hold(p.name, int(p.order.Load()), h.need, max, func(timedOut bool) { offer(c, timedOut) })
	p.log.Warn("restart held until the host's memory recovers", "need_bytes", h.need, "hold_max", max.String())
	p.s.events.add(Event{Time: p.mem.heldSince, Program: p.name, Kind: EventHeld})
	p.setState(StateHeld)
	return true
}

// onReleased takes the gate's release of a held restart.
func (p *program) onReleased(timedOut bool) {
	if p.state != StateHeld {
		return // the hold was cancelled before its release came in
	}
	held := p.s.clock.Now().Sub(p.mem.heldSince)
	p.log.Info("held restart released", "held", held.Round(time.Millisecond).String(), "timed_out", timedOut)
	p.s.events.add(Event{Time: p.s.clock.Now(), Program: p.name, Kind: EventReleased, Error: timeoutNote(timedOut)})
	p.waitEnd = p.s.clock.Now() // a backoff still due moves it on
	p.schedule(max(0, p.mem.holdDelay-held))
}

func timeoutNote(timedOut bool) string {
	if timedOut {
		return "oom_hold_max reached before the host recovered"
	}
	return ""
}

// cancelHold takes a held restart out of the gate's queue (a stop, a start
// or a new definition overrides it).
func (p *program) cancelHold() {
	if p.state != StateHeld {
		return
	}
	if p.s.cfg.Gate != nil {
		p.s.cfg.Gate.Cancel(p.name)
	}
	select {
	case <-p.mem.releaseC:
	default:
	}
}

// waiting reports whether the program waits to start again: backoff, the
// oom_loop state or a held restart.
func (p *program) waiting() bool {
	return p.state == StateBackoff || p.state == StateOOMLoop || p.state == StateHeld
}

// hostWide reports whether the OOM kill of e was the host's doing rather
// than the program's own limit: the kernel's report says so when there is
// one (CONSTRAINT_NONE); without it, a program with no memory.max of its
// own can only have been killed for the host (or a parent cgroup).
func (p *program) hostWide(e Exit) bool {
	if e.OOM != nil && e.OOM.Constraint != "" {
		return e.OOM.Constraint == "CONSTRAINT_NONE"
	}
	return p.spec.Memory == nil || p.spec.Memory.Max == nil
}
