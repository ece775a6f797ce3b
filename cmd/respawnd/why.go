package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"

	"github.com/respawnd/respawnd/api"
)

// whyCmd is `respawnd why NAME [-n N]`: the last deaths of a program, as a
// person reads them: the reason first, then memory, then the last output.
type whyCmd struct {
	cmd    *kingpin.CmdClause
	name   string
	n      int
	output string
}

func newWhyCmd(app *kingpin.Application) *whyCmd {
	c := &whyCmd{}
	c.cmd = app.Command("why", "Show why a program last died: the reason, its memory at death, and its last output lines.")
	c.cmd.Arg("name", "Program name.").Required().StringVar(&c.name)
	c.cmd.Flag("number", "How many of the latest deaths to show, newest first.").Short('n').Default("1").IntVar(&c.n)
	c.cmd.Flag("output", "text, or json (the records).").Short('o').Default("text").EnumVar(&c.output, "text", "json")
	return c
}

func (c *whyCmd) run(ctx context.Context, cl *api.Client, w io.Writer) error {
	if c.n < 1 || c.n > api.MaxDeathLimit {
		return fmt.Errorf("--number: want 1 to %d, not %d", api.MaxDeathLimit, c.n)
	}
	recs, err := cl.Deaths(ctx, c.name, c.n)
	if err != nil {
		return err
	}
	if c.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	}
	if len(recs) == 0 {
		_, err := fmt.Fprintf(w, "%s has not died since its records began.\n", c.name)
		return err
	}
	for i, r := range recs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeDeath(w, r)
	}
	return nil
}

// writeDeath prints one record. Everything a program or the kernel wrote
// is escaped: a program's output must not drive root's terminal.
func writeDeath(w io.Writer, r api.Death) {
	head := r.Program + ": " + r.Reason
	if r.Signal != "" {
		head += " " + r.Signal
	}
	if r.ExitCode != nil {
		head += " (exit code " + strconv.Itoa(*r.ExitCode) + ")"
	}
	if r.Recycle {
		head += ", during a memory recycle"
	}
	if r.UptimeSeconds > 0 {
		head += ", " + roundAge(time.Duration(r.UptimeSeconds*float64(time.Second))) + " after its start"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintf(w, "  died        %s  pid %d, generation %d\n", r.Died.Local().Format(time.RFC3339), r.PID, r.Generation)
	if r.Error != "" {
		fmt.Fprintf(w, "  error       %s\n", printable(r.Error))
	}
	if k := r.OOM; k != nil {
		s := "  kernel      oom kill"
		if k.Constraint != "" {
			s += " " + printable(k.Constraint)
		}
		if k.Comm != "" {
			s += " comm=" + strconv.Quote(k.Comm)
		}
		for _, f := range []struct {
			name string
			v    *int64
		}{{"anon-rss", k.AnonRSSBytes}, {"file-rss", k.FileRSSBytes}, {"shmem-rss", k.ShmemRSSBytes}} {
			if f.v != nil {
				s += " " + f.name + "=" + bytesOf(*f.v)
			}
		}
		if k.OOMMemcg != "" {
			s += " oom_memcg=" + strconv.Quote(k.OOMMemcg)
		}
		fmt.Fprintln(w, s)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "memory (cgroup %s, v%d)\n", strconv.Quote(m.Cgroup), m.Version)
		if m.PeakBytes > 0 {
			fmt.Fprintf(w, "  peak        %s (%s)\n", bytesOf(m.PeakBytes), m.PeakSource)
		}
		if r.OOM != nil {
			if s := statLine(r.OOM.MemcgStats, m.Version); s != "" {
				fmt.Fprintf(w, "  at oom kill %s\n", s)
			}
		}
		if s := statLine(m.StatAfterExit, m.Version); s != "" {
			fmt.Fprintf(w, "  after exit  %s\n", s)
		}
		if s := eventsLine(m.Events); s != "" {
			fmt.Fprintf(w, "  events      %s (since %s)\n", s, m.EventsSince.Local().Format(time.TimeOnly))
		}
		if m.PressureSomeSeconds != nil && m.PressureFullSeconds != nil {
			fmt.Fprintf(w, "  stalled     some %.2fs, full %.2fs\n", *m.PressureSomeSeconds, *m.PressureFullSeconds)
		}
	}
	if h := r.Host; h != nil {
		s := fmt.Sprintf("host          %s available of %s", bytesOf(int64(h.MemAvailableBytes)), bytesOf(int64(h.MemTotalBytes)))
		if h.PressureSomeAvg10 != nil {
			s += fmt.Sprintf(", memory pressure some avg10 %.2f%%", *h.PressureSomeAvg10)
		}
		fmt.Fprintln(w, s)
	}
	if c := r.Core; c != nil && c.Dumped {
		fmt.Fprintf(w, "core dump     written (core_pattern %s)\n", printable(c.Pattern))
	}
	switch {
	case !r.OutputKept:
		fmt.Fprintln(w, "last output   not seen by respawnd (an adopted instance)")
	case len(r.Output) == 0:
		fmt.Fprintln(w, "last output   none")
	default:
		fmt.Fprintf(w, "last output   (%d lines)\n", len(r.Output))
		for _, l := range r.Output {
			fmt.Fprintf(w, "  %s %s | %s\n", l.Time.Local().Format("15:04:05.000"), l.Stream, printable(l.Text))
		}
	}
	fmt.Fprintf(w, "record        %s\n", r.ID)
}

// statKeys are the memory.stat entries shown, per cgroup version: the
// breakdown a person asks for first.
var statKeys = map[int][]string{
	2: {"anon", "file", "kernel", "shmem", "sock", "slab"},
	1: {"total_rss", "total_cache", "total_shmem", "total_mapped_file", "total_swap"},
}

func statLine(stat map[string]uint64, version int) string {
	var parts []string
	for _, k := range statKeys[version] {
		if v, ok := stat[k]; ok {
			parts = append(parts, strings.TrimPrefix(k, "total_")+" "+bytesOf(int64(v)))
		}
	}
	return strings.Join(parts, ", ")
}

// eventsOrder is the order memory events are shown in.
var eventsOrder = []string{"oom_kill", "oom_group_kill", "oom", "max", "high", "low", "failcnt"}

func eventsLine(ev map[string]uint64) string {
	var parts []string
	for _, k := range eventsOrder {
		if v, ok := ev[k]; ok {
			parts = append(parts, k+" +"+strconv.FormatUint(v, 10))
		}
	}
	return strings.Join(parts, ", ")
}

func bytesOf(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	return units.Base2Bytes(n).Round(1).String()
}

// roundAge is d rounded for reading: 350ms, 4.2s, 3m10s, 5h2m.
func roundAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// printable escapes what a terminal would act on: control characters,
// invalid UTF-8 and the other non-printable runes, as Go escapes them.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t' || r == ' ' || r != '\\' && unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
