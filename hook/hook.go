package hook

import (
	"context"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/respawnd/respawnd/restart"
)

// DefaultTimeout is a Spec's timeout when it sets none.
const DefaultTimeout = 10 * time.Second

// DefaultReasons are the exit reasons a hook runs after when its Spec
// lists none: every reason but exit_success and memory_recycle, as
// config.DefaultHookReasons.
var DefaultReasons = []string{"oom_kill", "signal", "exit_error", "start_failure", "health_check", "watchdog", "unknown"}

// The results of a hook run, as passed to Config.Outcome and logged.
const (
	// ResultSuccess is a hook that exited with status 0.
	ResultSuccess = "success"
	// ResultFailure is a hook that exited with another status, or was
	// killed by a signal it did not get from the Runner.
	ResultFailure = "failure"
	// ResultTimeout is a hook the Runner killed at its timeout.
	ResultTimeout = "timeout"
	// ResultStartFailure is a hook the Launcher could not start.
	ResultStartFailure = "start_failure"
	// ResultSkipped is an exit whose hook never ran: a later exit replaced
	// it while the program's hook was running, or the hook was removed or
	// respawnd stopped before its turn.
	ResultSkipped = "skipped"
)

// Results lists every result, for metrics.
var Results = []string{ResultSuccess, ResultFailure, ResultTimeout, ResultStartFailure, ResultSkipped}

// Spec is one program's hook.
type Spec struct {
	// Argv is the command; Argv[0] without a slash is looked up in
	// respawnd's PATH.
	Argv []string
	// Reasons are the exit reasons the hook runs after; nil means
	// DefaultReasons.
	Reasons []string
	// Timeout is how long the hook may run before its process group is
	// killed; 0 means DefaultTimeout.
	Timeout time.Duration
	// User and Group are the credentials the hook runs with, as in
	// restart.Command; "" keeps respawnd's. Give the program's own user
	// unless the hook names another.
	User, Group string
}

// Exit is one exit of a program, as the hook is told about it.
type Exit struct {
	// Program is the program's name.
	Program string
	// Reason is the exit reason, as supervisor.Reason.String writes it.
	Reason string
	// ExitCode is the exit status when the program exited by itself; nil
	// otherwise.
	ExitCode *int
	// Signal is the name of the signal that ended the program, such as
	// "SIGKILL"; "" when none did.
	Signal string
	// PID is the pid of the instance that exited; 0 when none started.
	PID int
	// Generation is the instance's generation number.
	Generation uint64
	// Record is the JSON exit record. The Runner keeps it until the hook
	// has started; the caller must not modify it after Fire.
	Record []byte
	// RecordPath is where the record is stored (in respawnd's state
	// directory, readable by root only); "" when it is not.
	RecordPath string
}

// Launcher starts a hook's process. *restart.Launcher satisfies it.
type Launcher interface {
	Start(cmd restart.Command) (*restart.Process, error)
}

// Config configures a Runner. Zero values mean defaults.
type Config struct {
	// Launcher starts the hooks; required.
	Launcher Launcher
	// Logger receives one record per hook run; nil discards them.
	Logger *slog.Logger
	// Outcome, when set, is called once per Fire that was accepted, with
	// the program and one of the Result* values, except for a hook killed
	// because Run's context is done (it is logged). It must not block.
	Outcome func(program, result string)
	// Env is the environment every hook starts from, KEY=value (the
	// daemon's minimal environment that programs inherit too); the
	// RESPAWND_* variables are added to it, replacing any of the same
	// name. nil means PATH alone, set to the usual system directories.
	Env []string
	// After returns a channel that receives once a hook's timeout d is
	// up; nil means a timer of the time package.
	After func(d time.Duration) <-chan time.Time
}

// defaultPath is the PATH of hooks when Config.Env is nil.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Runner runs hooks. Its methods are safe for concurrent use; Fire and
// Set never block on a hook.
type Runner struct {
	launcher Launcher
	logger   *slog.Logger
	outcome  func(program, result string)
	env      []string
	after    func(time.Duration) <-chan time.Time

	mu     sync.Mutex // guards slots and closed
	slots  map[string]*slot
	closed bool
	// stop is closed once Run's context is done: running hooks are then
	// killed.
	stop chan struct{}
	// wg counts the goroutines that run hooks, one per program with a
	// hook running.
	wg sync.WaitGroup
}

// slot is one program's hook and its runs. Its fields are guarded by the
// Runner's mu. A slot stays in the map while its hook runs, even after
// Set(nil), so that a hook set again meanwhile waits for it.
type slot struct {
	spec    *Spec // nil once removed
	running bool
	pending *Exit // the next exit to run the hook for
}

// New returns a Runner with cfg.
func New(cfg Config) *Runner {
	r := &Runner{
		launcher: cfg.Launcher,
		logger:   cfg.Logger,
		outcome:  cfg.Outcome,
		env:      slices.Clone(cfg.Env),
		after:    cfg.After,
		slots:    map[string]*slot{},
		stop:     make(chan struct{}),
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	r.logger = r.logger.With("component", "hook")
	if r.outcome == nil {
		r.outcome = func(string, string) {}
	}
	if cfg.Env == nil {
		r.env = []string{defaultPath}
	}
	return r
}

// Set makes spec the hook of program; nil removes it. Call it for every
// program at start and on every reload (or use SetAll). A hook already
// running goes on; an exit waiting for it runs with the new spec, if that
// still wants its reason. spec is copied.
func (r *Runner) Set(program string, spec *Spec) {
	var dropped *Exit
	r.mu.Lock()
	dropped = r.setLocked(program, spec)
	r.mu.Unlock()
	if dropped != nil {
		r.skip(*dropped, "the hook was removed")
	}
}

// SetAll makes specs the hooks of every program: each program named gets
// its spec (nil: none), and the hooks of programs not named are removed.
func (r *Runner) SetAll(specs map[string]*Spec) {
	var dropped []Exit
	r.mu.Lock()
	for name := range r.slots {
		if _, ok := specs[name]; !ok {
			if e := r.setLocked(name, nil); e != nil {
				dropped = append(dropped, *e)
			}
		}
	}
	for name, spec := range specs {
		if e := r.setLocked(name, spec); e != nil {
			dropped = append(dropped, *e)
		}
	}
	r.mu.Unlock()
	for _, e := range dropped {
		r.skip(e, "the hook was removed")
	}
}

// setLocked is Set with mu held. It returns an exit that was waiting and
// will not run, if any.
func (r *Runner) setLocked(program string, spec *Spec) *Exit {
	s := r.slots[program]
	if spec == nil {
		if s == nil {
			return nil
		}
		s.spec = nil
		if !s.running {
			delete(r.slots, program)
		}
		dropped := s.pending
		s.pending = nil
		return dropped
	}
	if s == nil {
		s = &slot{}
		r.slots[program] = s
	}
	c := *spec
	c.Argv = slices.Clone(spec.Argv)
	c.Reasons = slices.Clone(spec.Reasons)
	s.spec = &c
	return nil
}

// Fire reports an exit. When the program's hook wants its reason, the
// hook starts at once on a goroutine of its own, or, while the program's
// hook is running, after it: the exit replaces any exit already waiting,
// which counts as skipped. Fire never blocks; it is ignored when the
// program has no hook, the reason is not wanted, or Run has returned.
func (r *Runner) Fire(e Exit) {
	r.mu.Lock()
	s := r.slots[e.Program]
	if r.closed || s == nil || s.spec == nil || !wants(s.spec, e.Reason) {
		r.mu.Unlock()
		return
	}
	if s.running {
		replaced := s.pending
		pe := e // only this copy escapes, not every Fire's argument
		s.pending = &pe
		r.mu.Unlock()
		if replaced != nil {
			r.skip(*replaced, "a later exit replaced it")
		}
		return
	}
	s.running = true
	spec := *s.spec
	r.wg.Add(1)
	r.mu.Unlock()
	go r.run(e, spec)
}

// Run blocks until ctx is done; then it kills the process groups of the
// hooks still running, waits for them and returns nil. Exits still waiting
// count as skipped. Hooks may run before Run is called; Fire is ignored
// once Run has returned.
func (r *Runner) Run(ctx context.Context) error {
	<-ctx.Done()
	var dropped []Exit
	r.mu.Lock()
	r.closed = true
	for _, s := range r.slots {
		if s.pending != nil {
			dropped = append(dropped, *s.pending)
			s.pending = nil
		}
	}
	close(r.stop)
	r.mu.Unlock()
	for _, e := range dropped {
		r.skip(e, "respawnd is stopping")
	}
	r.wg.Wait()
	return nil
}

// wants reports whether spec's hook runs after an exit with reason.
func wants(spec *Spec, reason string) bool {
	if spec.Reasons == nil {
		return slices.Contains(DefaultReasons, reason)
	}
	return slices.Contains(spec.Reasons, reason)
}

// skip reports an exit whose hook will not run.
func (r *Runner) skip(e Exit, why string) {
	r.logger.Debug("hook skipped", "program", e.Program, "reason", e.Reason, "generation", e.Generation, "why", why)
	r.outcome(e.Program, ResultSkipped)
}

// run runs the program's hook for e, then for each exit that came
// meanwhile, until none waits.
func (r *Runner) run(e Exit, spec Spec) {
	defer r.wg.Done()
	for {
		r.runOnce(e, spec)

		r.mu.Lock()
		s := r.slots[e.Program]
		next := s.pending
		s.pending = nil
		if next == nil || s.spec == nil || !wants(s.spec, next.Reason) {
			s.running = false
			if s.spec == nil {
				delete(r.slots, e.Program)
			}
			r.mu.Unlock()
			if next != nil {
				r.skip(*next, "the hook no longer wants its reason")
			}
			return
		}
		e, spec = *next, *s.spec
		r.mu.Unlock()
	}
}

// runOnce runs the hook once for e and reports the result.
func (r *Runner) runOnce(e Exit, spec Spec) {
	log := r.logger.With("program", e.Program, "reason", e.Reason, "generation", e.Generation)
	select {
	case <-r.stop:
		r.skip(e, "respawnd is stopping")
		return
	default:
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cmd := restart.Command{
		Name:  e.Program + " on_exit",
		Argv:  spec.Argv,
		User:  spec.User,
		Group: spec.Group,
		// Nothing the hook leaves behind outlives it.
		KillGroupOnExit: true,
	}
	recordEnv := ""
	switch {
	case e.RecordPath != "" && runsAsRoot(spec.User):
		recordEnv = e.RecordPath
	case len(e.Record) > 0:
		f, err := sealedRecord(e.Record)
		if err != nil {
			// The hook still runs, without the record.
			log.Warn("passing the exit record to the hook failed", "err", err)
			break
		}
		cmd.ExtraFiles = []*os.File{f}
		recordEnv = recordFD
	}
	cmd.Env = environ(r.env, e, recordEnv)

	start := time.Now()
	p, err := r.launcher.Start(cmd)
	if len(cmd.ExtraFiles) > 0 {
		_ = cmd.ExtraFiles[0].Close() // the hook has its own copy
	}
	if err != nil {
		log.Warn("hook failed to start", "result", ResultStartFailure, "err", err)
		r.outcome(e.Program, ResultStartFailure)
		return
	}
	expired := (<-chan time.Time)(nil)
	if r.after != nil {
		expired = r.after(timeout)
	} else {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	result := ""
	select {
	case <-p.Done():
	case <-expired:
		result = ResultTimeout
		_ = p.Kill() // the whole group; ErrProcessDone if it just exited
		<-p.Done()
	case <-r.stop:
		_ = p.Kill()
		<-p.Done()
		log.Warn("hook killed: respawnd is stopping", "pid", p.PID(), "duration", time.Since(start))
		return
	}
	st := p.Exit()
	attrs := []any{"pid", p.PID(), "duration", time.Since(start)}
	switch {
	case st.Signaled:
		attrs = append(attrs, "signal", signalName(st.Signal))
	default:
		attrs = append(attrs, "exit_code", st.Code)
	}
	switch {
	case result == ResultTimeout:
		log.Warn("hook timed out and was killed", append(attrs, "result", result, "timeout", timeout)...)
	case !st.Signaled && st.Code == 0:
		result = ResultSuccess
		log.Info("hook finished", append(attrs, "result", result)...)
	default:
		result = ResultFailure
		log.Warn("hook failed", append(attrs, "result", result)...)
	}
	r.outcome(e.Program, result)
}

// runsAsRoot reports whether a hook run as name ("" for respawnd's own
// user) runs as root. A name that cannot be looked up counts as not root:
// the hook then gets the record as a file descriptor, which any user can
// read.
func runsAsRoot(name string) bool {
	if name == "" {
		return os.Geteuid() == 0
	}
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return id == 0
	}
	u, err := user.Lookup(name)
	return err == nil && u.Uid == "0"
}
