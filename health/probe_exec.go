package health

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// outputWait bounds the wait, after a failed exec probe exited, for its
// last output lines to be read: they name the failure in its reason.
const outputWait = 100 * time.Millisecond

// execProbe runs one command, built once per watch.
type execProbe struct {
	launcher Launcher
	cmd      restart.Command
}

func newExecProbe(l Launcher, program string, p *config.ExecProbe, base restart.Command) *execProbe {
	return &execProbe{
		launcher: l,
		cmd: restart.Command{
			Name:  program + " health",
			Argv:  slices.Clone(p.Command),
			Dir:   base.Dir,
			Env:   probeEnv(base.Env),
			User:  base.User,
			Group: base.Group,
			// A probe every few seconds would flood respawnd's log; the
			// launcher still keeps the last lines (Process.Tail) for the
			// reason of a failure.
			OutputFile: os.DevNull,
			// Nothing the probe leaves behind outlives it.
			KillGroupOnExit: true,
		},
	}
}

// notForProbes are variables of the program's environment that describe
// its own file descriptors and sockets (sd_notify, the watchdog, socket
// activation): a probe that saw them could speak for the program.
var notForProbes = []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES="}

// probeEnv returns env without the variables of notForProbes.
func probeEnv(env []string) []string {
	if env == nil {
		return nil // an empty environment, as restart.Command has it
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !slices.ContainsFunc(notForProbes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			out = append(out, kv)
		}
	}
	return out
}

// run starts the command and waits for it within timeout; at the timeout,
// or when ctx is done, the command's process group is killed.
func (ep *execProbe) run(ctx context.Context, timeout time.Duration, w *watch) (Result, string, bool) {
	if ep.launcher == nil {
		return ResultFailure, "exec probes need a launcher", ctx.Err() == nil
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := ep.launcher.Start(ep.cmd)
	if err != nil {
		return ResultFailure, err.Error(), ctx.Err() == nil
	}
	if !w.track(p) {
		waitKilled(p)
		return "", "", false
	}
	defer w.track(nil)
	select {
	case <-p.Done():
	case <-pctx.Done():
		select {
		case <-p.Done(): // it ended at the deadline: judge its exit
		default:
			_ = p.Kill() // the whole group; ErrProcessDone if it just ended
			waitKilled(p)
			if ctx.Err() != nil {
				return "", "", false
			}
			return ResultTimeout, timedOut(timeout), true
		}
	}
	if ctx.Err() != nil {
		return "", "", false
	}
	st := p.Exit()
	if !st.Signaled && !st.Unknown && st.Code == 0 {
		return ResultSuccess, "", true
	}
	return ResultFailure, exitReason(st) + lastOutput(p), true
}

// waitKilled waits, for killWait at most, until p was reaped after a kill.
func waitKilled(p *restart.Process) {
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
	}
}

// exitReason describes how a failed exec probe ended, as os/exec does.
func exitReason(st restart.ExitStatus) string {
	switch {
	case st.Unknown || (!st.Signaled && st.Code < 0):
		return "exit status unknown"
	case st.Signaled:
		return "signal: " + st.Signal.String()
	}
	return "exit status " + strconv.Itoa(st.Code)
}

// lastOutput returns "; last output: "LINE"" with the last line p wrote,
// or "" when it wrote none. It waits outputWait at most for the output to
// be read to its end.
func lastOutput(p *restart.Process) string {
	t := time.NewTimer(outputWait)
	select {
	case <-p.OutputDone():
	case <-t.C:
	}
	t.Stop()
	tail := p.Tail()
	for i := len(tail) - 1; i >= 0; i-- {
		if text := strings.TrimSpace(tail[i].Text); text != "" {
			return "; last output: " + strconv.Quote(truncate(text, maxReasonText))
		}
	}
	return ""
}
