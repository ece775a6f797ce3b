package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Config configures a Supervisor. Zero values mean defaults, except
// Launcher, which is required.
type Config struct {
	Launcher Launcher
	// Cgroups creates memory cgroups for programs with memory limits; nil
	// means programs run without limits (one warning per such program).
	Cgroups Cgroups
	// CgroupsErr, when Cgroups is nil, says why (used in the warning).
	CgroupsErr error
	Recorder   Recorder
	Clock      Clock
	Logger     *slog.Logger
	// Limiter is the global restart token bucket; nil means one built from
	// the first applied configuration's limits.
	Limiter *restart.Limiter
	// Env is the environment every program inherits before its own env.
	Env []string
	// KernelLog says the kernel log OOM source is live, so a SIGKILL that
	// no counter explains waits for the kernel's report (up to
	// AttributionWindow) before it is called a plain signal.
	KernelLog bool
	// HostOOMKills reads the host-wide oom_kill counter (/proc/vmstat);
	// nil means unknown.
	HostOOMKills func() (uint64, error)
	// OwnOOMKills reads the oom_kill counter of the memory cgroup respawnd
	// itself runs in (a sidecar's: its container's), where the programs
	// without a cgroup of their own run; nil means unknown. With it, a
	// SIGKILL of such a program that respawnd started is an OOM kill when
	// the counter rose since the program's start (each rise claimed once),
	// and a plain signal when it did not.
	OwnOOMKills func() (uint64, error)
	// AttributionWindow bounds how long an exit's reason may stay open
	// waiting for kernel evidence; default 2s.
	AttributionWindow time.Duration
	// OnTransition, when set, is called (from the program's loop; it must
	// not block) with the new status after every state change.
	OnTransition func(Status)
	// EventRingSize is how many recent events are kept; default 256.
	EventRingSize int

	// Processes finds and watches processes respawnd did not start; nil
	// means programs with match are started, never adopted, and no state
	// is kept.
	Processes ProcessSource
	// Adopt holds the instances recorded before respawnd last stopped (the
	// state file), by program name. Each is taken over, once proven, by the
	// program of that name in the first configuration applied; those whose
	// program is gone are orphans (see KeepOrphans).
	Adopt map[string]Instance
	// KeepOrphans leaves the recorded instances of programs no longer in the
	// configuration running, listed by Orphans. By default they are
	// stopped with their recorded stop settings, once proven.
	KeepOrphans bool
	// SaveState, when set (with Processes), is called from a goroutine of
	// the supervisor, never on the restart path, with every running
	// instance after changes, and once more after shutdown. It is never
	// called before a configuration was applied.
	SaveState func([]Instance) error
	// Retained returns the OOM kills still in the kernel's ring buffer, to
	// attribute deaths that happened while respawnd was down.
	Retained func() ([]oom.Kill, error)
	// Tag, when set, returns the environment entry (KEY=value) that marks a
	// new instance of program, with its generation and the hash of its
	// definition, as this daemon's; it is called right before each start.
	// After a restart of respawnd, Processes.FindTagged finds the instances
	// by it.
	Tag func(program string, generation uint64, configHash string) (string, error)
	// Exiting, when set, reports whether the process pid is being torn
	// down: an OOM kill that the cgroup counter shows while the main
	// process is dying is the main process's, not a worker's.
	Exiting func(pid int) bool
	// Parallel is how many program loops may handle an event at once
	// (their handlers make blocking system calls); default 4.
	Parallel int
	// Memory watches programs' memory against their recycle and warn
	// thresholds; nil turns memory.recycle and warn_above off.
	Memory MemoryWatcher
	// Gate holds restarts after host-wide OOM kills until the host's
	// memory recovers; nil restarts them as any other (restart.oom_hold
	// has no effect).
	Gate Gate
	// Deaths keeps a post-mortem of every exit; nil keeps none.
	Deaths Deaths
	// Prober runs health checks; nil turns the health section off (with a
	// warning per program that has one).
	Prober Prober
	// Notifier gives programs sd_notify sockets; nil turns the notify
	// section off.
	Notifier Notifier
	// StuckAfter is how long a program's loop may be busy with one event
	// before Alive reports it stuck; default 20s. Handlers block for
	// seconds at most (a start, killing what is left in a cgroup).
	StuckAfter time.Duration
}

// Status is a program's state at one moment.
type Status struct {
	Name       string    `json:"name"`
	State      State     `json:"state"`
	PID        int       `json:"pid,omitempty"`
	Generation uint64    `json:"generation"`
	Started    time.Time `json:"start_time,omitzero"`
	Restarts   uint64    `json:"restarts"`
	// LastExit is the most recent exit, nil before the first.
	LastExit *Exit `json:"last_exit,omitempty"`
	// NextStart is when a program in backoff starts again.
	NextStart time.Time `json:"next_start,omitzero"`
	// Cgroup is the program's cgroup path, when it has one and its current
	// instance (if any) runs in it.
	Cgroup string `json:"cgroup,omitempty"`
	// Error says why a program is fatal or failing to start.
	Error string `json:"error,omitempty"`
	// Ready says the instance is ready: it sent READY=1 (notify.ready) or
	// passed its first health check (health). A running program with
	// neither is ready.
	Ready bool `json:"ready"`
	// NotifyStatus is the program's last STATUS= (sd_notify).
	NotifyStatus string `json:"notify_status,omitempty"`
	// NotifyMainPID is the last MAINPID= the program reported, when it
	// named a process in its tree.
	NotifyMainPID int `json:"notify_main_pid,omitempty"`
	// NotifyState is "reloading" after RELOADING=1 until the next READY=1,
	// "stopping" after STOPPING=1, "" otherwise.
	NotifyState string `json:"notify_state,omitempty"`
	// NotifyErrno is the last ERRNO= the program reported, 0 for none.
	NotifyErrno int `json:"notify_errno,omitempty"`
	// WatchdogLastPing is when the program last sent WATCHDOG=1 (or its
	// watchdog started), for one with notify.watchdog.
	WatchdogLastPing time.Time `json:"watchdog_last_ping,omitzero"`
}

// Supervisor runs the configured programs. Its methods are safe for
// concurrent use; Run must be running for Apply and Control to complete.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	clock  Clock
	rec    Recorder
	events *eventRing
	panics atomic.Uint64
	// busyLoops counts the program loops handling an event now: Alive
	// looks for a stuck one only when there is one.
	busyLoops atomic.Int64
	// work holds a slot for each program loop handling an event (see
	// Config.Parallel).
	work *workSlots
	// kernelLog says the kernel log source is live (Config.KernelLog until
	// SetKernelLog says otherwise).
	kernelLog atomic.Bool
	// own is the claimed share of Config.OwnOOMKills (see ownLedger).
	own ownLedger

	applyC chan applyReq
	killC  chan oom.Kill
	stateC chan struct{}
	pingC  chan chan struct{}

	mu sync.Mutex // guards everything below
	// programs holds the current incarnation of every configured program.
	programs map[string]*program
	// retiring holds, by name, what must end before the next incarnation
	// of the name starts: the loop of a removed program still stopping its
	// instance, or the stop of an orphan.
	retiring map[string]<-chan struct{}
	// recorded holds the state file's instances not yet taken over.
	recorded map[string]Instance
	// orphans holds the kept instances of programs no longer configured.
	orphans map[string]Instance
	applied bool
	byPID   map[int]*program
	byMemcg map[string]*program
	limiter *restart.Limiter
	// lim is the configuration's limits section, for the defaults of
	// per-program settings (restart.oom_hold); set at each apply.
	lim atomic.Pointer[config.Limits]
}

type applyReq struct {
	cfg   *config.Config
	reply chan error
}

// stateDebounce is how long the state writer lets changes gather before it
// writes the state file.
const stateDebounce = 20 * time.Millisecond

// stateSaveShare bounds the share of one core the state writer may take:
// the wait before a write is at least this many times the last write's
// cost. A thousand programs make a write cost milliseconds; restarting one
// of them in a loop must not make respawnd spend its time on the file.
const stateSaveShare = 10

// stateDelay is how long the state writer gathers changes before a write,
// given what the last write cost.
func stateDelay(last time.Duration) time.Duration {
	return max(stateDebounce, stateSaveShare*last)
}

// New returns a Supervisor; call Run, then Apply a configuration.
func New(cfg Config) *Supervisor {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if cfg.Deaths == nil {
		cfg.Deaths = nopDeaths{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.AttributionWindow <= 0 {
		cfg.AttributionWindow = 2 * time.Second
	}
	if cfg.EventRingSize <= 0 {
		cfg.EventRingSize = 256
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.StuckAfter <= 0 {
		cfg.StuckAfter = 20 * time.Second
	}
	s := &Supervisor{
		cfg:    cfg,
		log:    cfg.Logger,
		clock:  cfg.Clock,
		rec:    cfg.Recorder,
		events: newEventRing(cfg.EventRingSize),
		applyC: make(chan applyReq),
		// Buffered so that a burst of kernel reports (an OOM storm) does not
		// stall the kernel log reader while programs are being routed.
		killC:    make(chan oom.Kill, 1024),
		stateC:   make(chan struct{}, 1), // one pending request stands for any number
		pingC:    make(chan chan struct{}),
		programs: map[string]*program{},
		retiring: map[string]<-chan struct{}{},
		recorded: map[string]Instance{},
		orphans:  map[string]Instance{},
		byPID:    map[int]*program{},
		byMemcg:  map[string]*program{},
		limiter:  cfg.Limiter,
		work:     newWorkSlots(cfg.Parallel),
	}
	for name, inst := range cfg.Adopt {
		s.recorded[name] = inst
	}
	s.kernelLog.Store(cfg.KernelLog)
	return s
}

// Run supervises until ctx is done, then stops every program in parallel
// (each with its own stop timeout), waits for all of them and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	saving := s.cfg.SaveState != nil && s.cfg.Processes != nil
	ids := map[int]Instance{}
	var lastSave time.Duration
	if saving {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.stateC:
					// One write for the changes of a burst (a thousand
					// starts at boot): the file is at most this late, and
					// the instance tags cover that moment.
					t := time.NewTimer(stateDelay(lastSave))
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
					t0 := time.Now()
					s.saveState(ids)
					lastSave = time.Since(t0)
				}
			}
		}()
	}
	defer func() {
		wg.Wait()
		if saving {
			// Every program is down now: nothing is left to adopt but kept
			// orphans. A supervisor that applied nothing writes nothing: the
			// state file still describes the instances it never took over.
			s.saveState(ids)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-s.applyC:
			req.reply <- s.apply(ctx, &wg, req.cfg)
		case k := <-s.killC:
			s.route(ctx, k)
		case reply := <-s.pingC:
			close(reply)
		}
	}
}

// Apply makes cfg the configuration in force: new programs start, removed
// ones stop, changed ones restart onto their new definition, and unchanged
// ones keep running untouched. The caller validates cfg first.
func (s *Supervisor) Apply(ctx context.Context, cfg *config.Config) error {
	req := applyReq{cfg: cfg, reply: make(chan error, 1)}
	select {
	case s.applyC <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) apply(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(s.log, "applying a configuration", r, debug.Stack())
		}
	}()
	if s.limiter == nil {
		s.limiter = restart.NewLimiter(cfg.Limits.RestartsPerSecond, cfg.Limits.RestartBurst)
	}
	lim := cfg.Limits
	s.lim.Store(&lim)
	plan := s.plan(ctx, cfg)
	for _, st := range plan.start {
		wg.Add(1)
		go s.runProgram(st.p, st.after, wg)
	}
	for _, o := range plan.retire {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.retire(o.inst, o.done)
		}()
	}
	// Sent outside the lock: a program loop may be waiting for it.
	for _, u := range plan.updates {
		u.p.send(ctx, updateMsg{spec: u.spec})
	}
	s.log.Info("configuration applied", "programs", len(cfg.Programs), "new", len(plan.start), "changed", len(plan.updates), "unchanged", plan.kept)
	return nil
}

// applyPlan is what one configuration changes.
type applyPlan struct {
	start []struct {
		p     *program
		after <-chan struct{}
	}
	retire []struct {
		inst Instance
		done chan struct{}
	}
	updates []struct {
		p    *program
		spec config.Program
	}
	kept int
}

// plan works out, under the lock, which programs start, stop, change or
// stay, and registers new incarnations.
func (s *Supervisor) plan(ctx context.Context, cfg *config.Config) applyPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var plan applyPlan
	initial := !s.applied
	s.applied = true
	want := map[string]bool{}
	for _, p := range cfg.Programs {
		want[p.Name] = true
	}
	for name, p := range s.programs {
		if !want[name] {
			// The next incarnation of the name waits until this loop has
			// stopped its instance and removed its cgroup.
			p.remove()
			s.retiring[name] = p.exited
			delete(s.programs, name)
		}
	}
	if initial {
		// Recorded instances of programs that are gone from the
		// configuration: stopped, or kept and listed.
		for name, inst := range s.recorded {
			if want[name] {
				continue
			}
			delete(s.recorded, name)
			if s.cfg.KeepOrphans {
				s.orphans[name] = inst
				s.log.Warn("instance of a program no longer configured left running", "program", name, "pid", inst.PID)
				continue
			}
			done := make(chan struct{})
			s.retiring[name] = done
			plan.retire = append(plan.retire, struct {
				inst Instance
				done chan struct{}
			}{inst, done})
		}
	}
	for i, spec := range cfg.Programs {
		if p, ok := s.programs[spec.Name]; ok {
			p.order.Store(int32(i))
			if h := spec.Hash(); p.hash == h {
				plan.kept++
			} else {
				p.hash = h
				plan.updates = append(plan.updates, struct {
					p    *program
					spec config.Program
				}{p, spec})
			}
			continue
		}
		if inst, ok := s.orphans[spec.Name]; ok {
			// A kept orphan's program is back: it takes the instance over.
			delete(s.orphans, spec.Name)
			s.recorded[spec.Name] = inst
		}
		p := newProgram(ctx, s, spec, initial)
		p.order.Store(int32(i))
		s.programs[spec.Name] = p
		plan.start = append(plan.start, struct {
			p     *program
			after <-chan struct{}
		}{p, s.retiring[spec.Name]})
	}
	return plan
}

// runProgram runs p's loop once the previous incarnation of its name (if
// any) is gone, so that two loops never own one name's processes or cgroup,
// and marks wg done when the loop has returned. It is the loop goroutine's
// first function: what it and run keep on the stack is there for the
// loop's life (see program.wait).
func (s *Supervisor) runProgram(p *program, after <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	defer func() {
		s.mu.Lock()
		if s.retiring[p.name] == p.exited {
			delete(s.retiring, p.name)
		}
		s.mu.Unlock()
		close(p.exited)
	}()
	if after != nil {
		<-after
	}
	p.run()
}

// takeRecorded returns, once, the state file's instance for name.
func (s *Supervisor) takeRecorded(name string) *Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.recorded[name]
	if !ok || inst.PID <= 0 {
		return nil
	}
	delete(s.recorded, name)
	return &inst
}

// panicked logs a recovered panic with its stack, counts it, and returns it
// as an error.
func (s *Supervisor) panicked(log *slog.Logger, what string, r any, stack []byte) error {
	s.panics.Add(1)
	log.Error("internal error recovered", "while", what, "panic", fmt.Sprint(r), "stack", string(stack))
	return fmt.Errorf("internal error while %s: %v", what, r)
}

// SetKernelLog says whether the kernel log source is live: when it fails,
// exits no longer wait for kernel reports that cannot come.
func (s *Supervisor) SetKernelLog(live bool) { s.kernelLog.Store(live) }

// Panics returns how many panics the supervisor recovered from.
func (s *Supervisor) Panics() uint64 { return s.panics.Load() }

// Alive checks that the supervisor's loop answers within ctx and that no
// program's loop has been busy with one event for longer than
// Config.StuckAfter. It wakes no program loop: a loop that is waiting for
// its next event is fine by definition, so while no loop is busy the check
// reads one counter, and otherwise one atomic per program. The error names
// the stuck loops.
func (s *Supervisor) Alive(ctx context.Context) error {
	if err := s.pingRun(ctx); err != nil {
		return err
	}
	if s.busyLoops.Load() == 0 {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	var stuck []string
	for _, p := range s.programs {
		if b := p.busy.Load(); b != 0 && now.Sub(time.Unix(0, b)) > s.cfg.StuckAfter {
			stuck = append(stuck, p.name)
		}
	}
	s.mu.Unlock()
	if len(stuck) > 0 {
		sort.Strings(stuck)
		return fmt.Errorf("program loops busy with one event for over %s: %s", s.cfg.StuckAfter, strings.Join(stuck, ", "))
	}
	return nil
}

// pingRun checks that the supervisor's own loop answers within ctx.
func (s *Supervisor) pingRun(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case s.pingC <- reply:
	case <-ctx.Done():
		return fmt.Errorf("supervisor loop does not answer: %w", ctx.Err())
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("supervisor loop does not answer: %w", ctx.Err())
	}
}

// barrier returns once the supervisor's loop and every program's loop have
// handled everything sent to them before the call (a ping queues behind
// it), or ctx is done; the error names the loops that did not answer.
func (s *Supervisor) barrier(ctx context.Context) error {
	if err := s.pingRun(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	ps := make([]*program, 0, len(s.programs))
	for _, p := range s.programs {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	replies := make([]chan struct{}, len(ps))
	for i, p := range ps {
		replies[i] = make(chan struct{})
		ping := pingMsg{reply: replies[i]}
		select {
		case p.msgs <- ping:
			continue
		case <-p.exited:
			close(replies[i])
			continue
		default:
		}
		// A full mailbox: wait for room, but not past ctx (then the loop
		// counts as stuck).
		select {
		case p.msgs <- ping:
		case <-p.exited:
			close(replies[i])
		case <-ctx.Done():
		}
	}
	var stuck []string
	for i, p := range ps {
		select {
		case <-replies[i]:
			continue
		case <-p.exited:
			continue
		default:
		}
		select {
		case <-replies[i]:
		case <-p.exited:
		case <-ctx.Done():
			stuck = append(stuck, p.name)
		}
	}
	if len(stuck) > 0 {
		sort.Strings(stuck)
		return fmt.Errorf("program loops do not answer: %s", strings.Join(stuck, ", "))
	}
	return nil
}

// route hands a kernel OOM report to the program whose process it names
// (by pid, then by memory cgroup), or records it as a host OOM kill.
func (s *Supervisor) route(ctx context.Context, k oom.Kill) {
	s.mu.Lock()
	p := s.byPID[k.PID]
	if p == nil && k.TaskMemcg != "" {
		p = s.byMemcg[k.TaskMemcg]
	}
	s.mu.Unlock()
	if p != nil {
		p.send(ctx, killMsg{kill: k})
		return
	}
	s.rec.OOMKill("", k)
	s.events.add(Event{Time: killTime(k, s.clock.Now()), PID: k.PID, Comm: k.Comm, Reason: ReasonOOMKill, Signal: "SIGKILL", OOM: &k, RSSBytes: killRSS(k)})
	s.log.Warn("host oom kill", "pid", k.PID, "comm", k.Comm, "memcg", k.TaskMemcg)
}

func killTime(k oom.Kill, now time.Time) time.Time {
	if !k.Time.IsZero() {
		return k.Time
	}
	return now
}

// OOMKill hands the supervisor a kernel OOM report. It never blocks for
// long: reports beyond the buffer wait for ctx.
func (s *Supervisor) OOMKill(ctx context.Context, k oom.Kill) {
	select {
	case s.killC <- k:
	case <-ctx.Done():
	}
}

// Action is an operator's command for one program.
type Action int

// The operator actions.
const (
	ActionStart Action = iota
	ActionStop
	ActionRestart
	ActionSignal
)

func (a Action) String() string {
	switch a {
	case ActionStart:
		return "start"
	case ActionStop:
		return "stop"
	case ActionRestart:
		return "restart"
	case ActionSignal:
		return "signal"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// ErrUnknownProgram is returned for a program name that is not configured.
var ErrUnknownProgram = errors.New("supervisor: unknown program")

// Control performs an operator action on the named program and returns once
// the program's loop has taken it (not once the program is up or down).
// sig is the signal for ActionSignal; for ActionStop a non-zero sig
// replaces the configured stop signal once.
func (s *Supervisor) Control(ctx context.Context, name string, a Action, sig syscall.Signal) error {
	s.mu.Lock()
	p := s.programs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w %q", ErrUnknownProgram, name)
	}
	reply := make(chan error, 1)
	if !p.send(ctx, ctlMsg{action: a, sig: sig, reply: reply}) {
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot returns every program's status, sorted by name.
func (s *Supervisor) Snapshot() []Status {
	s.mu.Lock()
	ps := make([]*program, 0, len(s.programs))
	for _, p := range s.programs {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Events returns the recent events, newest first.
func (s *Supervisor) Events() []Event { return s.events.list() }

// Subscribe returns a channel of new events and a func that ends the
// subscription. A follower that falls more than 64 events behind loses
// events rather than stalling programs.
func (s *Supervisor) Subscribe() (<-chan Event, func()) { return s.events.subscribe() }

func (s *Supervisor) ownPID(pid int, p *program) {
	s.mu.Lock()
	s.byPID[pid] = p
	s.mu.Unlock()
}

func (s *Supervisor) disownPID(pid int, p *program) {
	s.mu.Lock()
	if s.byPID[pid] == p {
		delete(s.byPID, pid)
	}
	s.mu.Unlock()
}

func (s *Supervisor) ownMemcg(path string, p *program) {
	s.mu.Lock()
	if path == "" {
		for k, v := range s.byMemcg {
			if v == p {
				delete(s.byMemcg, k)
			}
		}
	} else {
		s.byMemcg[path] = p
	}
	s.mu.Unlock()
}

// limits returns the limits section of the configuration in force.
func (s *Supervisor) limits() config.Limits {
	if l := s.lim.Load(); l != nil {
		return *l
	}
	return config.DefaultLimits()
}
