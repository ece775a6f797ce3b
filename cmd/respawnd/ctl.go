package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"

	"github.com/respawnd/respawnd/api"
)

// ctlCmds are the subcommands that talk to a running daemon over its
// control socket (--state.dir).
type ctlCmds struct {
	status, start, stop, restart, reload, events *kingpin.CmdClause
	why                                          *whyCmd

	name    string
	output  string
	follow  bool
	program string // events --program
}

func newCtlCmds(app *kingpin.Application) *ctlCmds {
	c := &ctlCmds{}
	c.status = app.Command("status", "Show the programs of the running daemon: state, pid, uptime, restarts, last exit, memory.")
	c.status.Arg("name", "Show only this program.").StringVar(&c.name)
	c.status.Flag("output", "table or json.").Short('o').Default("table").EnumVar(&c.output, "table", "json")
	for _, cmd := range []**kingpin.CmdClause{&c.start, &c.stop, &c.restart} {
		verb := map[**kingpin.CmdClause]string{&c.start: "start", &c.stop: "stop", &c.restart: "restart"}[cmd]
		*cmd = app.Command(verb, "Ask the running daemon to "+verb+" a program.")
		(*cmd).Arg("name", "Program name.").Required().StringVar(&c.name)
	}
	c.reload = app.Command("reload", "Make the running daemon load its configuration file again (as SIGHUP does) and report why it was rejected.")
	c.events = app.Command("events", "Show recent crashes and host OOM kills, oldest first.")
	c.events.Flag("follow", "Keep printing new events until interrupted.").Short('f').BoolVar(&c.follow)
	c.events.Flag("output", "text, or json (one object per line).").Short('o').Default("text").EnumVar(&c.output, "text", "json")
	c.events.Flag("program", "Show only the events of this program.").Short('p').StringVar(&c.program)
	return c
}

func (c *ctlCmds) has(cmd string) bool {
	return slices.Contains([]string{c.status.FullCommand(), c.start.FullCommand(), c.stop.FullCommand(), c.restart.FullCommand(), c.reload.FullCommand(), c.events.FullCommand(), c.why.cmd.FullCommand()}, cmd)
}

// run carries out cmd; errors go to stderr as "respawnd: …" with exit 1.
func (c *ctlCmds) run(cmd string, f *flags, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !(cmd == c.events.FullCommand() && c.follow) {
		// A daemon that accepts but never answers must not hang the CLI.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ctlTimeout)
		defer cancel()
	}
	cl := api.NewClient(api.SocketPath(f.web.stateDir))
	var err error
	switch cmd {
	case c.status.FullCommand():
		err = c.runStatus(ctx, cl, stdout)
	case c.start.FullCommand(), c.stop.FullCommand(), c.restart.FullCommand():
		if err = cl.Control(ctx, c.name, cmd); err == nil {
			fmt.Fprintf(stdout, "%s: %s requested\n", c.name, cmd)
		}
	case c.reload.FullCommand():
		if err = cl.Reload(ctx); err == nil {
			fmt.Fprintln(stdout, "configuration reloaded")
		}
	case c.events.FullCommand():
		err = c.runEvents(ctx, cl, stdout)
	case c.why.cmd.FullCommand():
		err = c.why.run(ctx, cl, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "respawnd: %s\n", ctlError(err, f.web.stateDir))
		return 1
	}
	return 0
}

// ctlTimeout bounds every CLI command but events --follow.
const ctlTimeout = 30 * time.Second

// ctlError is err as a person should read it.
func ctlError(err error, stateDir string) string {
	switch {
	case errors.Is(err, api.ErrNotRunning):
		return fmt.Sprintf("respawnd is not running (no daemon on %s; is --state.dir right?)", api.SocketPath(stateDir))
	case errors.Is(err, api.ErrPermission):
		return fmt.Sprintf("permission denied: the control socket %s is root's; run this as root", api.SocketPath(stateDir))
	case errors.Is(err, api.ErrUnknownProgram):
		return "no such program " + strings.TrimPrefix(err.Error(), api.ErrUnknownProgram.Error()+": ")
	}
	return err.Error()
}

func (c *ctlCmds) runStatus(ctx context.Context, cl *api.Client, w io.Writer) error {
	var resp api.ProgramsResponse
	if c.name != "" {
		p, err := cl.Program(ctx, c.name)
		if err != nil {
			return err
		}
		resp.Programs = []api.Program{p}
	} else {
		var err error
		if resp, err = cl.Status(ctx); err != nil {
			return err
		}
	}
	if c.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	writeStatusTable(w, resp.Programs, resp.Orphans, time.Now())
	return nil
}

// writeStatusTable prints one line per program, then one per kept orphan.
func writeStatusTable(w io.Writer, ps []api.Program, orphans []api.Orphan, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST EXIT\tMEMORY/LIMIT")
	for _, p := range ps {
		pid, uptime := "-", "-"
		if p.PID != 0 {
			pid = strconv.Itoa(p.PID)
		}
		if p.StartTime != nil {
			uptime = now.Sub(*p.StartTime).Round(time.Second).String()
		}
		state := p.State
		switch {
		case p.NotifyState != "":
			state += " (" + p.NotifyState + ")"
		case p.State == "running" && !p.Ready:
			state += " (not ready)"
		}
		if p.Status != "" {
			// The program's own words: escaped, and cut to keep the table.
			state += ": " + printable(cutRunes(p.Status, 40))
		}
		if p.BackoffSeconds > 0 {
			state += " (" + (time.Duration(p.BackoffSeconds * float64(time.Second))).Round(time.Millisecond).String() + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, state, pid, uptime, p.Restarts, describeExit(p.LastExit), memory(p))
	}
	for _, o := range orphans {
		fmt.Fprintf(tw, "%s\torphaned (not configured, not supervised)\t%d\t-\t-\t-\t-\n", o.Name, o.PID)
	}
	_ = tw.Flush()
}

// cutRunes cuts s to at most n runes, marking the cut with "…".
func cutRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

func describeExit(e *api.Exit) string {
	if e == nil {
		return "-"
	}
	switch {
	case e.Signal != "":
		return e.Reason + " " + e.Signal
	case e.ExitCode != nil:
		return e.Reason + " " + strconv.Itoa(*e.ExitCode)
	}
	return e.Reason
}

func memory(p api.Program) string {
	used := "-"
	switch {
	case p.MemoryRSSBytes != nil:
		used = units.Base2Bytes(*p.MemoryRSSBytes).Round(1).String()
	case p.MemoryUsageBytes != nil:
		used = units.Base2Bytes(*p.MemoryUsageBytes).Round(1).String()
	}
	if p.MemoryLimitBytes == nil {
		return used
	}
	return used + "/" + units.Base2Bytes(*p.MemoryLimitBytes).Round(1).String()
}

func (c *ctlCmds) runEvents(ctx context.Context, cl *api.Client, w io.Writer) error {
	print := func(e api.Event) error {
		if c.output == "json" {
			return json.NewEncoder(w).Encode(e)
		}
		_, err := fmt.Fprintln(w, formatEvent(e))
		return err
	}
	if c.follow {
		return cl.FollowOf(ctx, c.program, print)
	}
	evs, err := cl.EventsOf(ctx, c.program)
	if err != nil {
		return err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if err := print(evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// formatEvent is one event on one line, e.g.
// "2025-01-02T15:04:05Z hog pid=123 oom_kill SIGKILL comm=tail rss=64MiB".
func formatEvent(e api.Event) string {
	who := "(host)"
	if e.Program != nil {
		who = *e.Program
		if e.Worker {
			who += " (worker)"
		}
	}
	s := fmt.Sprintf("%s %s pid=%d %s", e.Time.Local().Format(time.RFC3339), who, e.PID, e.Reason)
	if e.Signal != "" {
		s += " " + e.Signal
	}
	if e.ExitCode != nil {
		s += " exit_code=" + strconv.Itoa(*e.ExitCode)
	}
	if e.Comm != "" {
		s += " comm=" + strconv.Quote(e.Comm)
	}
	if e.RSSBytes != nil {
		s += " rss=" + units.Base2Bytes(*e.RSSBytes).Round(1).String()
	}
	if e.OOM != nil && e.OOM.TaskMemcg != "" {
		// Quoted: a delegated cgroup can be named anything, escape
		// sequences for root's terminal included.
		s += " memcg=" + strconv.Quote(e.OOM.TaskMemcg)
	}
	if e.Error != "" {
		s += " error=" + strconv.Quote(e.Error)
	}
	return s
}
