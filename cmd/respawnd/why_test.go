package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/postmortem"
)

func TestWriteDeath(t *testing.T) {
	anon := int64(63 << 20)
	some, full := 0.5, 0.25
	avail := 10.0
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r := api.Death{
		ID: "1796198835297755370-4-hog", Program: "hog", PID: 77, Generation: 4,
		Started: t0, Died: t0.Add(3 * time.Second), UptimeSeconds: 3, Reason: "oom_kill", Signal: "SIGKILL",
		OOM: &oom.Kill{PID: 77, Comm: "tail", Constraint: "CONSTRAINT_MEMCG", AnonRSSBytes: &anon,
			MemcgStats: map[string]uint64{"anon": 66 << 20, "file": 1 << 20, "kernel": 300 << 10}},
		Memory: &postmortem.Memory{Cgroup: "/programs/hog", Version: 2, PeakBytes: 64 << 20, PeakSource: "cgroup",
			StatAfterExit: map[string]uint64{"anon": 0, "file": 4096, "shmem": 8 << 20},
			Events:        map[string]uint64{"oom_kill": 1, "max": 120}, EventsSince: t0,
			PressureSomeSeconds: &some, PressureFullSeconds: &full},
		Host:       &postmortem.Host{MemTotalBytes: 8 << 30, MemAvailableBytes: 2 << 30, PressureSomeAvg10: &avail},
		Core:       &postmortem.Core{Dumped: true, Pattern: "|/lib/systemd/systemd-coredump %P"},
		OutputKept: true,
		Output: []postmortem.Line{
			{Time: t0.Add(time.Second), Stream: "stdout", Text: "allocating 64 MiB"},
			{Time: t0.Add(2 * time.Second), Stream: "stderr", Text: "evil \x1b]0;pwned\x07 \x1b[2J done\xff"},
		},
	}
	var b bytes.Buffer
	writeDeath(&b, r)
	out := b.String()
	for _, want := range []string{
		"hog: oom_kill SIGKILL, 3s after its start\n",
		"pid 77, generation 4",
		"oom kill CONSTRAINT_MEMCG comm=\"tail\" anon-rss=63MiB",
		"memory (cgroup \"/programs/hog\", v2)",
		"peak        64MiB (cgroup)",
		"at oom kill anon 66MiB, file 1MiB, kernel 300KiB",
		"after exit  anon 0B, file 4KiB, shmem 8MiB",
		"events      oom_kill +1, max +120",
		"stalled     some 0.50s, full 0.25s",
		"2GiB available of 8GiB, memory pressure some avg10 10.00%",
		"core dump     written (core_pattern |/lib/systemd/systemd-coredump %P)",
		"last output   (2 lines)",
		"stdout | allocating 64 MiB",
		`stderr | evil \x1b]0;pwned\a \x1b[2J done\xff`,
		"record        1796198835297755370-4-hog",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// The reason comes first, the output last.
	if strings.Index(out, "oom_kill") > strings.Index(out, "memory (") || strings.Index(out, "memory (") > strings.Index(out, "last output") {
		t.Errorf("order: reason, memory, output:\n%s", out)
	}
	if strings.ContainsAny(out, "\x1b\x07\xff") {
		t.Errorf("control bytes reached the terminal:\n%q", out)
	}

	b.Reset()
	code := 3
	writeDeath(&b, api.Death{ID: "x", Program: "flaky", Reason: "exit_error", ExitCode: &code, Died: t0})
	if out := b.String(); !strings.HasPrefix(out, "flaky: exit_error (exit code 3)\n") || !strings.Contains(out, "not seen by respawnd") {
		t.Errorf("exit without memory or output:\n%s", out)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\tok": "plain text\tok",
		"日本語":            "日本語",
		"\x1b[31mred":    `\x1b[31mred`,
		"a\\b":           `a\\b`,
		"\u202eevil":     `\u202eevil`,
		"\r\n":           `\r\n`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
