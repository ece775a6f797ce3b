package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/respawnd/respawnd/oom"
)

// scanCmd is `respawnd scan [FILE|-]`: OOM kills found in kernel log text,
// one JSON object per line, or a table.
type scanCmd struct {
	cmd    *kingpin.CmdClause
	file   string
	output string
	// given is set when the file argument was on the command line: kingpin
	// turns a lone "-" into an empty value, so file alone cannot tell
	// "scan -" from "scan".
	given bool
	stdin io.Reader
}

const scanHelp = `Print the OOM kills in kernel log text: a file, - for standard input, or the kernel's ring buffer when no argument is given.
Reads raw /dev/kmsg records; dmesg with or without -t, -x, -r, -T or --time-format=iso, including the [ T123] caller id of CONFIG_PRINTK_CALLER kernels; journalctl -k in the short, short-precise, short-iso, short-monotonic and cat forms; syslog files; month names in the C, de, fr, es, ru, it, pt and pl locales; and any of these quoted with "> " or indented.
Each kill is one JSON object per line. "confirmed" is true when the kernel's "Killed process" line was seen (the kernel printed it after sending SIGKILL), false for a kill known only from its oom-kill: summary line, as in grep output: the kernel prints that line once it has chosen the victim, just before the kill.`

func newScanCmd(app *kingpin.Application) *scanCmd {
	s := &scanCmd{stdin: os.Stdin}
	s.cmd = app.Command("scan", scanHelp)
	s.cmd.Flag("output", "Output format: json (one object per line) or table.").Short('o').Default("json").EnumVar(&s.output, "json", "table")
	s.cmd.Arg("file", "Kernel log text in any of the forms above, or - for standard input.").
		Action(func(*kingpin.ParseContext) error { s.given = true; return nil }).StringVar(&s.file)
	return s
}

func (s *scanCmd) run(f *flags, stdout, stderr io.Writer) int {
	var kills []oom.Kill
	var err error
	switch {
	case s.file == "" && !s.given:
		kills, err = oom.ReadRetained(f.kmsg)
	case s.file == "-" || s.file == "":
		in := s.stdin
		if in == nil {
			in = os.Stdin
		}
		err = oom.Scan(in, func(k oom.Kill) { kills = append(kills, k) })
	default:
		var in *os.File
		in, err = os.Open(s.file)
		if err == nil {
			err = oom.Scan(in, func(k oom.Kill) { kills = append(kills, k) })
			_ = in.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "respawnd scan: %v\n", err)
		return 1
	}
	if s.output == "table" {
		writeKillTable(stdout, kills)
		return 0
	}
	enc := json.NewEncoder(stdout)
	for _, k := range kills {
		if err := enc.Encode(scanKill{Kill: k, Confirmed: k.Confirmed}); err != nil {
			fmt.Fprintf(stderr, "respawnd scan: %v\n", err)
			return 1
		}
	}
	return 0
}

// scanKill is a Kill as scan prints it: "confirmed" is written even when
// false (oom.Kill leaves it out then).
type scanKill struct {
	oom.Kill
	Confirmed bool `json:"confirmed"`
}

func writeKillTable(w io.Writer, kills []oom.Kill) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPID\tCOMM\tCONSTRAINT\tMEMCG\tANON-RSS\tFILE-RSS\tSCORE-ADJ\tCONFIRMED")
	for _, k := range kills {
		t := "-"
		if !k.Time.IsZero() {
			t = k.Time.Format(time.RFC3339)
		} else if k.Boot > 0 {
			t = fmt.Sprintf("+%.3fs", k.Boot.Seconds())
		}
		memcg := k.TaskMemcg
		if memcg == "" {
			memcg = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", t, k.PID, strconv.Quote(k.Comm), dash(k.Constraint), memcg, mib(k.AnonRSSBytes), mib(k.FileRSSBytes), intOrDash(k.OOMScoreAdj), k.Confirmed)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mib(b *int64) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(*b)/(1<<20))
}

func intOrDash(v *int) string {
	if v == nil {
		return "-"
	}
	return strconv.Itoa(*v)
}
