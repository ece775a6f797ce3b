package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
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
	// state file), by program name; they are taken over, not started again.
	Adopt map[string]Instance
	// SaveState, when set (with Processes), is called from a goroutine of
	// the supervisor, never on the restart path, with every running
	// instance after changes, and once more after shutdown.
	SaveState func([]Instance) error
	// Retained returns the OOM kills still in the kernel's ring buffer, to
	// attribute deaths that happened while respawnd was down.
	Retained func() ([]oom.Kill, error)
	// Tag, when set, names this respawnd among others on the host (its
	// state directory, say): every program gets TagKey=Tag/NAME in its
	// environment, and after a restart respawnd adopts the process group
	// leaders that carry its programs' tags.
	Tag string
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
	// Cgroup is the program's memory cgroup path, when it has one.
	Cgroup string `json:"cgroup,omitempty"`
	// Error says why a program is fatal or failing to start.
	Error string `json:"error,omitempty"`
}

// Supervisor runs the configured programs. Its methods are safe for
// concurrent use; Run must be running for Apply and Control to complete.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	clock  Clock
	rec    Recorder
	events *eventRing

	applyC chan applyReq
	killC  chan oom.Kill
	stateC chan struct{}

	mu       sync.Mutex // guards programs and the owner maps
	programs map[string]*program
	byPID    map[int]*program
	byMemcg  map[string]*program
	limiter  *restart.Limiter
}

type applyReq struct {
	cfg   *config.Config
	reply chan error
}

// New returns a Supervisor; call Run, then Apply a configuration.
func New(cfg Config) *Supervisor {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
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
	return &Supervisor{
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
		programs: map[string]*program{},
		byPID:    map[int]*program{},
		byMemcg:  map[string]*program{},
		limiter:  cfg.Limiter,
	}
}

// Run supervises until ctx is done, then stops every program in parallel
// (each with its own stop timeout), waits for all of them and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	saving := s.cfg.SaveState != nil && s.cfg.Processes != nil
	ticks := map[int]uint64{}
	if saving {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.stateC:
					s.saveState(ticks)
				}
			}
		}()
	}
	defer func() {
		wg.Wait()
		if saving {
			// Every program is down now: nothing is left to adopt.
			s.saveState(ticks)
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

func (s *Supervisor) apply(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config) error {
	if s.limiter == nil {
		s.limiter = restart.NewLimiter(cfg.Limits.RestartsPerSecond, cfg.Limits.RestartBurst)
	}
	want := map[string]config.Program{}
	for _, p := range cfg.Programs {
		want[p.Name] = p
	}
	type update struct {
		p    *program
		spec config.Program
	}
	var updates []update
	var started, kept int
	s.mu.Lock()
	for name, p := range s.programs {
		if _, ok := want[name]; !ok {
			p.remove()
			delete(s.programs, name)
		}
	}
	for _, spec := range cfg.Programs {
		if p, ok := s.programs[spec.Name]; ok {
			if p.hash == spec.Hash() {
				kept++
			} else {
				p.hash = spec.Hash()
				updates = append(updates, update{p, spec})
			}
			continue
		}
		started++
		p := newProgram(ctx, s, spec)
		s.programs[spec.Name] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run()
		}()
	}
	s.mu.Unlock()
	// Sent outside the lock: a program loop may be waiting for it.
	for _, u := range updates {
		u.p.send(ctx, updateMsg{spec: u.spec})
	}
	changed := len(updates)
	s.log.Info("configuration applied", "programs", len(cfg.Programs), "new", started, "changed", changed, "unchanged", kept)
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
