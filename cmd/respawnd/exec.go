package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/supervisor"
)

// execCmd is `respawnd exec [flags] -- CMD [ARGS...]`: one program given on
// the command line, with the same restart semantics as a configured one.
// It is the container-entrypoint use.
type execCmd struct {
	cmd         *kingpin.CmdClause
	argv        []string
	name        string
	policy      string
	initial     time.Duration
	max         time.Duration
	resetAfter  time.Duration
	burst       int
	interval    time.Duration
	action      string
	stopSignal  string
	stopTimeout time.Duration
	memMax      units.Base2Bytes
	memHigh     units.Base2Bytes
	swapMax     units.Base2Bytes
	swapSet     bool
	dir         string
	user        string
	output      string
}

func newExecCmd(app *kingpin.Application) *execCmd {
	e := &execCmd{}
	c := app.Command("exec", "Supervise one program given after --; as PID 1 also reap orphans and forward signals.")
	e.cmd = c
	c.Flag("name", "Program name (default: the command's base name).").StringVar(&e.name)
	c.Flag("restart.policy", "always, on-failure, on-oom or never.").Default(string(config.DefaultPolicy)).StringVar(&e.policy)
	c.Flag("restart.backoff-initial", "First non-zero restart delay.").Default(config.DefaultBackoffInitial.String()).DurationVar(&e.initial)
	c.Flag("restart.backoff-max", "Largest restart delay.").Default(config.DefaultBackoffMax.String()).DurationVar(&e.max)
	c.Flag("restart.reset-after", "Running this long resets the backoff.").Default(config.DefaultResetAfter.String()).DurationVar(&e.resetAfter)
	c.Flag("restart.limit-burst", "More than this many starts within --restart.limit-interval trip the limit.").Default(fmt.Sprint(config.DefaultLimitBurst)).IntVar(&e.burst)
	c.Flag("restart.limit-interval", "Window of the start-rate limit.").Default(config.DefaultLimitInterval.String()).DurationVar(&e.interval)
	c.Flag("restart.limit-action", "backoff or give-up.").Default(string(config.DefaultLimitAction)).StringVar(&e.action)
	c.Flag("stop.signal", "Signal that stops the program.").Default("SIGTERM").StringVar(&e.stopSignal)
	c.Flag("stop.timeout", "Time between the stop signal and SIGKILL of the process group.").Default(config.DefaultStopTimeout.String()).DurationVar(&e.stopTimeout)
	c.Flag("memory.max", "Memory limit (e.g. 256MiB); puts the program in its own memory cgroup.").BytesVar(&e.memMax)
	c.Flag("memory.high", "Memory throttling threshold (cgroup v2).").BytesVar(&e.memHigh)
	c.Flag("memory.swap-max", "Swap limit (0 for none).").IsSetByUser(&e.swapSet).BytesVar(&e.swapMax)
	c.Flag("dir", "Working directory.").StringVar(&e.dir)
	c.Flag("user", "Run as this user.").StringVar(&e.user)
	c.Flag("output", "Append the program's stdout and stderr to this file instead of respawnd's.").StringVar(&e.output)
	c.Arg("command", "The program and its arguments.").Required().StringsVar(&e.argv)
	return e
}

// program builds and validates the program definition from the flags.
func (e *execCmd) program() (config.Program, error) {
	p := config.DefaultProgram()
	p.Name = e.name
	if p.Name == "" {
		p.Name = sanitizeName(filepath.Base(e.argv[0]))
	}
	p.Command = e.argv
	p.Dir, p.User, p.Output.File = e.dir, e.user, e.output
	p.Restart.Policy = config.Policy(e.policy)
	p.Restart.Backoff.Initial, p.Restart.Backoff.Max = e.initial, e.max
	p.Restart.ResetAfter = e.resetAfter
	p.Restart.Limit = config.Limit{Burst: e.burst, Interval: e.interval, Action: config.LimitAction(e.action)}
	p.Stop.Timeout = e.stopTimeout
	sig := unix.SignalNum(strings.ToUpper(e.stopSignal))
	if sig == 0 {
		sig = unix.SignalNum("SIG" + strings.ToUpper(e.stopSignal))
	}
	if sig == 0 {
		return p, fmt.Errorf("--stop.signal: unknown signal %q", e.stopSignal)
	}
	p.Stop.Signal = sig
	if e.memMax > 0 || e.memHigh > 0 || e.swapSet {
		m := &config.Memory{}
		if e.memMax > 0 {
			v := int64(e.memMax)
			m.Max = &v
		}
		if e.memHigh > 0 {
			v := int64(e.memHigh)
			m.High = &v
		}
		if e.swapSet {
			v := int64(e.swapMax)
			m.SwapMax = &v
		}
		p.Memory = m
	}
	return p, p.Validate()
}

// sanitizeName turns a command's base name into a valid program name.
func sanitizeName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return "program"
	}
	return string(b)
}

// forwarded are the signals passed on to the program as they are.
var forwarded = []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}

func (e *execCmd) run(f *flags, logger *slog.Logger) int {
	prog, err := e.program()
	if err != nil {
		printConfigErrors(os.Stderr, err)
		return 2
	}
	logStart(logger, "exec")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// exitCode is set by the program's loop when it reaches a state it
	// will not leave by itself; the buffer keeps the loop from blocking.
	final := make(chan int, 1)
	onTransition := func(st supervisor.Status) {
		switch st.State {
		case supervisor.StateExited, supervisor.StateFatal, supervisor.StateStopped:
			select {
			case final <- exitCode(st):
			default:
			}
		}
	}
	// Metrics and the API only when asked for (--web.listen-address), the
	// control socket only with --state.dir: containers rarely want either.
	d, err := newDaemon(f, logger, daemonOpts{
		env:          os.Environ(),
		onTransition: onTransition,
		serveHTTP:    f.web.listenSet,
		serveSocket:  f.web.stateDirSet,
	})
	if err != nil {
		logger.Error("respawnd failed to start", "err", err)
		return 1
	}
	cfg := &config.Config{Limits: config.DefaultLimits(), Programs: []config.Program{prog}}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGTERM, syscall.SIGINT}, forwarded...)...)
	defer signal.Stop(sigs)

	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx, cfg, nil)
	}()
	code := 0
	for {
		select {
		case s := <-sigs:
			sig := s.(syscall.Signal)
			action := supervisor.ActionSignal
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				// Stop with the very signal received; no restart follows.
				action = supervisor.ActionStop
			}
			if err := d.sup.Control(ctx, prog.Name, action, sig); err != nil {
				logger.Warn("forwarding signal", "signal", unix.SignalName(sig), "err", err)
			}
		case code = <-final:
			cancel()
		case <-done:
			return code
		}
	}
}

// exitCode maps a program's last exit to respawnd exec's exit status, the
// way a shell does.
func exitCode(st supervisor.Status) int {
	e := st.LastExit
	switch {
	case e == nil:
		return 0
	case e.Reason == supervisor.ReasonStartFailure:
		return 127
	case e.Signal != 0:
		return 128 + int(e.Signal)
	}
	return e.Code
}
