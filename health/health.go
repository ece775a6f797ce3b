package health

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// Launcher starts exec probes. *restart.Launcher satisfies it.
type Launcher interface {
	Start(cmd restart.Command) (*restart.Process, error)
}

// Config configures a Checker. Zero values mean defaults.
type Config struct {
	// Launcher starts exec probes; required for them. Without it every
	// exec probe fails.
	Launcher Launcher
	// Logger receives the checker's logs; nil discards them.
	Logger *slog.Logger
	// Observe, when set, is called once per probe that ran to its end
	// (not for one cut short by stop or by Run's end), from the watch's
	// goroutine, with the probe's result and duration: for the metrics
	// respawnd_program_health_checks_total{program,result} and
	// respawnd_program_health_check_duration_seconds{program}. It must not
	// block, and it is never called for a watch after its stop returned.
	Observe func(program string, result Result, took time.Duration)
	// Now is the clock of the schedule and of the startup grace; default
	// time.Now.
	Now func() time.Time
	// After returns a channel that receives once d has passed, for the
	// waits between probes; nil means a timer of the time package. A
	// probe's own timeout is always real time: the network stack and the
	// kernel enforce it.
	After func(d time.Duration) <-chan time.Time
}

// Result is the outcome of one probe, as the metrics label it.
type Result string

// The results of a probe.
const (
	// ResultSuccess is a probe that passed.
	ResultSuccess Result = "success"
	// ResultFailure is a probe that failed before its timeout: a status
	// out of range, a refused connection, a non-zero exit status, a
	// command that could not be started.
	ResultFailure Result = "failure"
	// ResultTimeout is a probe that did not finish within the timeout (an
	// exec probe's process group is then killed). It counts as a failure.
	ResultTimeout Result = "timeout"
)

// Results lists every Result, for metrics.
var Results = []Result{ResultSuccess, ResultFailure, ResultTimeout}

// String returns the result as the metrics and logs write it.
func (r Result) String() string { return string(r) }

// EventKind says what an Event reports.
type EventKind int

// The events of a watch.
const (
	// Ready is the first probe that passed for the instance. It comes once
	// per watch.
	Ready EventKind = iota
	// Unhealthy says the instance failed the configured number of
	// consecutive counted probes and should be restarted. It comes once
	// per watch, and the watch ends with it.
	Unhealthy
)

// String returns "ready" or "unhealthy".
func (k EventKind) String() string {
	switch k {
	case Ready:
		return "ready"
	case Unhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// Event is what a watch reports to its notify function.
type Event struct {
	// Kind is Ready or Unhealthy.
	Kind EventKind
	// Failures is the number of consecutive counted failures (Unhealthy);
	// 0 for Ready.
	Failures int
	// Reason is what the last failure was (Unhealthy), such as
	// `GET http://127.0.0.1:8080/healthz: status 500`,
	// "dial tcp 127.0.0.1:9: connect: connection refused", "exit status 1"
	// or "timed out after 1s"; "" for Ready.
	Reason string
}

// maxBody is how much of an HTTP probe's response body is read (and
// discarded) before the connection is closed.
const maxBody = 64 << 10

// killWait bounds how long a watch that ends waits for its exec probe to
// be reaped after killing it: a process stuck in the kernel must not hold
// up Run forever (the launcher still reaps it when it dies).
const killWait = 5 * time.Second

// userAgent is the User-Agent of HTTP probes, unless their headers set one.
const userAgent = "respawnd-health"

// Checker probes program instances. Its methods are safe for concurrent
// use.
//
// Each watch has one goroutine of its own, which lives from Watch until
// the watch's stop, its Unhealthy event or the end of Run.
type Checker struct {
	launcher Launcher
	logger   *slog.Logger
	observe  func(string, Result, time.Duration)
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	// client makes every HTTP probe: no redirects, no keep-alives, no
	// certificate verification, no proxy.
	client *http.Client

	// ctx is the parent of every watch's context; cancel ends them all.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and wg.Add against Run's wg.Wait
	closed bool
	wg     sync.WaitGroup // one per watch goroutine
}

// New returns a Checker with cfg, zero values replaced by defaults.
func New(cfg Config) *Checker {
	c := &Checker{
		launcher: cfg.Launcher,
		logger:   cfg.Logger,
		observe:  cfg.Observe,
		now:      cfg.Now,
		after:    cfg.After,
		client:   newHTTPClient(),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.logger = c.logger.With("component", "health")
	if c.observe == nil {
		c.observe = func(string, Result, time.Duration) {}
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Run blocks until ctx is done, then ends every watch, kills every exec
// probe still running (its whole process group), waits for the watches'
// goroutines and returns nil. Watches work before Run is called; a Watch
// after Run has returned probes nothing and reports nothing. Call Run
// once.
func (c *Checker) Run(ctx context.Context) error {
	<-ctx.Done()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// Watch starts probing one instance of program with h, from now.
//
// base is the program's own command: an exec probe runs with its User,
// Group, Dir and Env (less the variables of sd_notify and socket
// activation, which describe the program's own file descriptors), and
// with Argv replaced by h.Exec.Command, under the name "PROGRAM health".
// It does not join the program's cgroup and does not inherit its extra
// files; its output goes to /dev/null, and the last line of it is quoted
// in the reason of a failure.
//
// notify receives the events of the watch (Ready, then maybe Unhealthy),
// called from the watch's goroutine with a lock of the watch held: it must
// not block and must not call stop. A nil notify drops them.
//
// stop ends the watch at once, without waiting: a probe in flight is
// cancelled, and an exec probe's process group is killed before stop
// returns (or, if the probe is being started at that very moment, as soon
// as its start returns). Once stop has returned, neither notify nor
// Config.Observe is called for this watch again. stop may be called more
// than once and from any goroutine.
//
// h is assumed valid (see config.Health); a zero Period, Timeout or
// Failures is replaced by its default, and a Health with no probe kind
// fails every probe.
func (c *Checker) Watch(program string, h config.Health, base restart.Command, notify func(Event)) (stop func()) {
	if notify == nil {
		notify = func(Event) {}
	}
	h = withDefaults(h)
	ctx, cancel := context.WithCancel(c.ctx)
	w := &watch{
		c:       c,
		program: program,
		h:       h,
		kind:    h.Probe(),
		notify:  notify,
		ctx:     ctx,
		cancel:  cancel,
	}
	w.probe = c.prober(program, &h, base)
	stop = w.stop

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return stop
	}
	c.wg.Add(1)
	c.mu.Unlock()
	start := c.now()
	go func() {
		defer c.wg.Done()
		w.run(start)
	}()
	return stop
}

// withDefaults fills in what an unvalidated Health leaves at zero, so that
// no value can make a watch spin or never report.
func withDefaults(h config.Health) config.Health {
	if h.Period <= 0 {
		h.Period = config.DefaultHealthPeriod
	}
	if h.Timeout <= 0 {
		h.Timeout = min(config.DefaultHealthTimeout, h.Period)
	}
	h.Timeout = min(h.Timeout, h.Period)
	if h.Failures < 1 {
		h.Failures = config.DefaultHealthFailures
	}
	return h
}
