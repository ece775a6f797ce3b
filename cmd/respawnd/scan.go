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
}

func newScanCmd(app *kingpin.Application) *scanCmd {
	s := &scanCmd{}
	s.cmd = app.Command("scan", "Print the OOM kills in kernel log text (a file, - for stdin, or the kernel's ring buffer when no argument is given).")
	s.cmd.Flag("output", "Output format: json (one object per line) or table.").Short('o').Default("json").EnumVar(&s.output, "json", "table")
	s.cmd.Arg("file", "Kernel log file (raw /dev/kmsg records, dmesg, dmesg -T, journalctl -k or syslog), or - for stdin.").StringVar(&s.file)
	return s
}

func (s *scanCmd) run(f *flags, stdout, stderr io.Writer) int {
	var kills []oom.Kill
	var err error
	switch s.file {
	case "":
		kills, err = oom.ReadRetained(f.kmsg)
	case "-":
		err = oom.Scan(os.Stdin, func(k oom.Kill) { kills = append(kills, k) })
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
		if err := enc.Encode(k); err != nil {
			fmt.Fprintf(stderr, "respawnd scan: %v\n", err)
			return 1
		}
	}
	return 0
}

func writeKillTable(w io.Writer, kills []oom.Kill) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPID\tCOMM\tCONSTRAINT\tMEMCG\tANON-RSS\tFILE-RSS\tSCORE-ADJ")
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
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t, k.PID, strconv.Quote(k.Comm), dash(k.Constraint), memcg, mib(k.AnonRSSBytes), mib(k.FileRSSBytes), intOrDash(k.OOMScoreAdj))
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
