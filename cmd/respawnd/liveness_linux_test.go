package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// notifyprogPath is the test program that serves /healthz and speaks
// sd_notify (internal/notifyprog): /bin/notifyprog in the test guest, built
// once here otherwise.
var notifyprogPath = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("RESPAWND_NOTIFYPROG"); p != "" {
		return p, nil
	}
	if _, err := os.Stat("/bin/notifyprog"); err == nil {
		return "/bin/notifyprog", nil
	}
	dir, err := os.MkdirTemp("", "notifyprog")
	if err != nil {
		return "", err
	}
	notifyprogDir = dir
	out := filepath.Join(dir, "notifyprog")
	// The module root is two directories up from this package.
	cmd := exec.Command("go", "build", "-o", out, "../../internal/notifyprog")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building notifyprog: %v\n%s", err, b)
	}
	return out, nil
})

func notifyprog(t *testing.T) string {
	t.Helper()
	p, err := notifyprogPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// exitOf waits for the exit of program's generation gen and returns its
// log record.
func exitOf(d *daemonProc, from int, program string, gen int) (map[string]any, int) {
	d.t.Helper()
	return d.waitLog(from, map[string]any{"msg": "exited", "program": program, "generation": float64(gen)})
}

// A program whose HTTP health check stops passing is stopped gracefully and
// started again, its exit's reason health_check: one that hangs (SIGSTOP),
// one that answers 500, one that answers too slowly. The hang is caught
// within failures × period, give or take a period, and the stopped process
// gets SIGCONT after its stop signal: it exits then, long before its stop
// timeout (longer than the wait for the exit here).
func TestHealthCheckRestartsHungProgram(t *testing.T) {
	testenv.RequireRoot(t, "supervising real programs")
	for _, tc := range []struct {
		name  string
		flags []string
		stop  bool // SIGSTOP the program once it is ready
	}{
		{"hang", nil, true},
		{"status 500", []string{"-http-status", "500"}, false},
		{"slow answer", []string{"-http-delay", "2s"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t)
			argv := append([]string{notifyprog(t), "-http", addr}, tc.flags...)
			cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: web
    command: %s
    stop: {timeout: 1m}
    health:
      http: {url: "http://%s/healthz"}
      period: 200ms
      timeout: 150ms
      failures: 3
`, yamlList(argv), addr))
			stateDir := filepath.Join(dir, "state")
			d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
			first, mark := runningPID(d, 0, "web")
			if tc.stop {
				// It is up and passing before it hangs.
				_, mark = d.waitLog(mark, map[string]any{"msg": "ready: first health check passed", "program": "web"})
				if p := programStatus(t, stateDir, "web"); !p.Ready {
					t.Fatalf("status after the first passing check: %+v, want ready", p)
				}
				if err := syscall.Kill(first, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			}
			ex, mark := exitOf(d, mark, "web", 1)
			if ex["reason"] != "health_check" {
				t.Fatalf("exit %v, want reason health_check", ex)
			}
			second, _ := runningPID(d, mark, "web")
			if second == first || second == 0 {
				t.Fatalf("web runs pid %d after its failed checks, want a new instance", second)
			}
			if syscall.Kill(first, 0) == nil {
				t.Errorf("the hung instance %d still exists", first)
			}
			e := programStatus(t, stateDir, "web").LastExit
			if e == nil || e.Reason != "health_check" {
				t.Errorf("last exit %+v, want health_check", e)
			}
			m := scrape(t, d.addr(t))
			if v := m["respawnd_program_exits_total"][`program="web",reason="health_check"`]; v != 1 {
				t.Errorf("exits_total{reason=health_check} = %v, want 1", v)
			}
			failed := m["respawnd_program_health_checks_total"][`program="web",result="failure"`] + m["respawnd_program_health_checks_total"][`program="web",result="timeout"`]
			if failed < 3 {
				t.Errorf("failed checks counted %v, want at least 3", failed)
			}
		})
	}
}

// A slow starter that answers only after 5 s, with a startup grace of
// 10 s, is never restarted; it becomes ready (status, API and metric) once
// it answers.
func TestHealthCheckStartupGrace(t *testing.T) {
	testenv.RequireRoot(t, "supervising real programs")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: slow
    command: %s
    health:
      http: {url: "http://%s/healthz"}
      period: 200ms
      timeout: 100ms
      failures: 2
      startup_grace: 10s
`, yamlList([]string{notifyprog(t), "-http", addr, "-http-after", "5s"}), addr))
	stateDir := filepath.Join(dir, "state")
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	_, mark := runningPID(d, 0, "slow")
	if p := programStatus(t, stateDir, "slow"); p.Ready {
		t.Fatalf("ready before its first passing check: %+v", p)
	}
	if v := scrape(t, d.addr(t))["respawnd_program_up"][`program="slow"`]; v != 0 {
		t.Errorf("up = %v before the first passing check, want 0", v)
	}
	d.waitLog(mark, map[string]any{"msg": "ready: first health check passed", "program": "slow"})
	if n := d.count(map[string]any{"msg": "exited", "program": "slow"}); n != 0 {
		t.Fatalf("the slow starter exited %d times within its grace", n)
	}
	if p := programStatus(t, stateDir, "slow"); !p.Ready || p.Generation != 1 {
		t.Errorf("status %+v, want generation 1, ready", p)
	}
	m := scrape(t, d.addr(t))
	if m["respawnd_program_ready"][`program="slow"`] != 1 || m["respawnd_program_up"][`program="slow"`] != 1 {
		t.Errorf("ready %v up %v, want 1 and 1", m["respawnd_program_ready"], m["respawnd_program_up"])
	}
}

// A program with notify.ready is starting until it sends READY=1 (status,
// API and metric), then running and ready with its STATUS= text; when its
// WATCHDOG=1 pings stop it gets SIGABRT first and is restarted, reason
// watchdog. A MAINPID= naming a process outside its tree is ignored and
// counted.
func TestNotifyReadyAndWatchdog(t *testing.T) {
	testenv.RequireRoot(t, "supervising real programs")
	dir := t.TempDir()
	abort := filepath.Join(dir, "aborted")
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: svc
    command: %s
    stop: {timeout: 5s}
    notify: {ready: true, watchdog: 500ms}
`, yamlList([]string{notifyprog(t), "-ready-after", "1s", "-status", "serving", "-mainpid", "1",
		"-watchdog-every", "100ms", "-watchdog-for", "3s", "-abort-file", abort})))
	stateDir := filepath.Join(dir, "state")
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	if p := launched(t, d, stateDir, "svc"); p.State != "starting" || p.Ready {
		t.Fatalf("before READY=1: %+v, want starting, not ready", p)
	}
	if v := scrape(t, d.addr(t))["respawnd_program_ready"][`program="svc"`]; v != 0 {
		t.Errorf("ready metric %v before READY=1, want 0", v)
	}
	first, mark := runningPID(d, 0, "svc")
	p := programStatus(t, stateDir, "svc")
	if !p.Ready || p.Status != "serving" || p.WatchdogLastPing == nil {
		t.Errorf("after READY=1: %+v, want ready, status serving, a watchdog ping", p)
	}
	if p.NotifyMainPID != 0 {
		t.Errorf("MAINPID=1 was taken: %d", p.NotifyMainPID)
	}

	ex, mark := exitOf(d, mark, "svc", 1)
	if ex["reason"] != "watchdog" {
		t.Fatalf("exit %v, want reason watchdog", ex)
	}
	b, err := os.ReadFile(abort)
	if err != nil || !strings.HasPrefix(string(b), "abort "+strconv.Itoa(first)) {
		t.Errorf("abort file %q (%v): the hung instance did not get SIGABRT", b, err)
	}
	runningPID(d, mark, "svc")
	m := scrape(t, d.addr(t))
	if v := m["respawnd_notify_rejected_total"][`program="svc",reason="foreign_mainpid"`]; v < 1 {
		t.Errorf("foreign MAINPID counted %v times, want at least once", v)
	}
	if v := m["respawnd_program_exits_total"][`program="svc",reason="watchdog"`]; v != 1 {
		t.Errorf("exits_total{reason=watchdog} = %v, want 1", v)
	}
}

// A datagram from a process outside the program (an sd_notify client run
// by the test: the Debian one, systemd-notify, where it is installed, else
// notifyprog) is ignored and counted; the same client run by the program
// itself, from a shell that is its main process, makes it ready.
func TestNotifyForeignSender(t *testing.T) {
	testenv.RequireRoot(t, "supervising real programs")
	t.Run("notifyprog", func(t *testing.T) { testNotifyForeignSender(t, notifyprog(t), "-ready-after", "0", "-status") })
	t.Run("systemd-notify", func(t *testing.T) {
		sdNotify := testenv.RequireProgram(t, "systemd-notify", "systemd")
		testNotifyForeignSender(t, sdNotify, "--ready", "--status")
	})
}

// testNotifyForeignSender runs client with args and a STATUS= text: the
// last argument names the status option, which takes its value after "="
// when it is a long option ("--status=up") and as the next argument
// otherwise ("-status up").
func testNotifyForeignSender(t *testing.T, client string, args ...string) {
	argv := func(status string) []string {
		out := append([]string{client}, args...)
		if last := out[len(out)-1]; strings.HasPrefix(last, "--") {
			out[len(out)-1] = last + "=" + status
		} else {
			out = append(out, status)
		}
		return out
	}
	sdNotify := shellQuote(argv("up"))
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	script := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.1; done; %s & wait $!; exec sleep 1000", gate, sdNotify)
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: sh
    command: ["/bin/sh", "-c", %s]
    notify: {ready: true}
`, strconv.Quote(script)))
	stateDir := filepath.Join(dir, "state")
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	p := launched(t, d, stateDir, "sh")

	// The socket's name is in the program's environment.
	var socket string
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID))
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			socket = v
		}
	}
	if socket == "" {
		t.Fatal("the program has no NOTIFY_SOCKET")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fa := argv("forged")
	foreign := exec.CommandContext(ctx, fa[0], fa[1:]...)
	foreign.Env = []string{"NOTIFY_SOCKET=" + socket}
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	// notifyprog runs on after its READY=1; systemd-notify exits.
	t.Cleanup(func() { _ = foreign.Process.Kill(); _ = foreign.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for scrape(t, d.addr(t))["respawnd_notify_rejected_total"][`program="sh",reason="foreign_sender"`] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the foreign datagram was not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := programStatus(t, stateDir, "sh"); p.Ready || p.State != "starting" || p.Status == "forged" {
		t.Fatalf("a foreign READY=1 was taken: %+v", p)
	}

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	runningPID(d, 0, "sh")
	if p := programStatus(t, stateDir, "sh"); !p.Ready || p.Status != "up" {
		t.Errorf("after the program's own systemd-notify: %+v, want ready, status up", p)
	}
}

// launched waits until program's first instance was launched (it has a
// pid, ready or not) and returns its status.
func launched(t *testing.T, d *daemonProc, stateDir, program string) api.Program {
	t.Helper()
	d.waitLog(0, map[string]any{"msg": "configuration applied"})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p := programStatus(t, stateDir, program); p.PID != 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was never launched", program)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addr is the address the daemon's HTTP listener took.
func (d *daemonProc) addr(t *testing.T) string {
	t.Helper()
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	a, _ := l["address"].(string)
	return a
}

// A daemon written for systemd's Type=notify runs unchanged: Debian's
// dbus-daemon sends READY=1 once its socket listens, and respawnd holds it
// in starting until then.
func TestNotifyRealDaemon(t *testing.T) {
	testenv.RequireRoot(t, "supervising real programs")
	bus := testenv.RequireProgram(t, "dbus-daemon", "dbus-daemon")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: bus
    command: %s
    notify: {ready: true, start_timeout: 30s}
`, yamlList([]string{bus, "--session", "--nofork", "--nopidfile", "--address=unix:path=" + filepath.Join(dir, "bus")})))
	stateDir := filepath.Join(dir, "state")
	d := startRespawnd(t, "--state.dir", stateDir, "--config", cfg)
	pid, _ := runningPID(d, 0, "bus")
	if p := programStatus(t, stateDir, "bus"); !p.Ready || p.PID != pid {
		t.Errorf("dbus-daemon after READY=1: %+v, want ready, pid %d", p, pid)
	}
	if _, err := os.Stat(filepath.Join(dir, "bus")); err != nil {
		t.Errorf("ready before its socket exists: %v", err)
	}
}
