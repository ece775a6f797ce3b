package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/oom"
)

func runCtl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var f flags
	app := kingpin.New("respawnd", "")
	f.web = addWebFlags(app)
	c := newCtlCmds(app)
	cmd, err := app.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := c.run(cmd, &f, &out, &out)
	return out.String(), code
}

func TestCtlDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"status"}, {"restart", "api"}, {"reload"}, {"events"}} {
		out, code := runCtl(t, append([]string{"--state.dir", dir}, args...)...)
		if code != 1 || !strings.Contains(out, "respawnd is not running") || !strings.Contains(out, dir) {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}

func TestStatusTable(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	started := now.Add(-90 * time.Second)
	rss, limit := uint64(48<<20), uint64(64<<20)
	code := 3
	ps := []api.Program{
		{Name: "api", State: "running", Ready: true, PID: 42, StartTime: &started, Restarts: 2, MemoryRSSBytes: &rss, MemoryLimitBytes: &limit,
			LastExit: &api.Exit{Reason: "oom_kill", Signal: "SIGKILL"}},
		{Name: "flaky", State: "backoff", BackoffSeconds: 1.5, Restarts: 7, LastExit: &api.Exit{Reason: "exit_error", ExitCode: &code}},
		// Not ready yet, and its STATUS= tries to clear root's terminal.
		{Name: "web", State: "running", PID: 43, StartTime: &started, Status: "warming up\x1b[2J"},
	}
	var b bytes.Buffer
	writeStatusTable(&b, ps, []api.Orphan{{Name: "old", PID: 77, Generation: 3}}, now)
	want := `NAME   STATE                                      PID  UPTIME  RESTARTS  LAST EXIT         MEMORY/LIMIT
api    running                                    42   1m30s   2         oom_kill SIGKILL  48MiB/64MiB
flaky  backoff (1.5s)                             -    -       7         exit_error 3      -
web    running (not ready): warming up\x1b[2J     43   1m30s   0         -                 -
old    orphaned (not configured, not supervised)  77   -       -         -                 -
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFormatEvent(t *testing.T) {
	rss := int64(64 << 20)
	name := "hog"
	e := api.Event{Time: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC), Program: &name, PID: 123, Comm: "tail", Reason: "oom_kill", Signal: "SIGKILL", RSSBytes: &rss}
	got := formatEvent(e)
	for _, part := range []string{"hog pid=123 oom_kill SIGKILL", `comm="tail"`, "rss=64MiB"} {
		if !strings.Contains(got, part) {
			t.Errorf("%q lacks %q", got, part)
		}
	}
	e.Program = nil
	if got := formatEvent(e); !strings.Contains(got, "(host) pid=123") {
		t.Errorf("host event: %q", got)
	}
	// A delegated cgroup can be named anything: no escape sequence reaches
	// the terminal.
	e.OOM = &oom.Kill{TaskMemcg: "/user.slice/evil\x1b]0;pwned\x07\n"}
	got = formatEvent(e)
	if strings.ContainsAny(got, "\x1b\x07\n") || !strings.Contains(got, `memcg="/user.slice/evil\x1b]0;pwned\a\n"`) {
		t.Errorf("hostile memcg printed raw: %q", got)
	}
}
