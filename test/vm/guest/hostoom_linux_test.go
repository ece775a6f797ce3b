//go:build linux && vmguest

package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
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

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/api"
)

// Where test/vm/run puts the real programs in the machine's initramfs.
const (
	respawndBin = "/bin/respawnd"
	allocBin    = "/bin/alloc"
)

// respawndOOMScoreAdj is what the systemd unit in deploy/ gives respawnd
// (OOMScoreAdjust=-900).
const respawndOOMScoreAdj = -900

// requireTestMachine skips unless the test runs as a child of the test
// machine's init, on a machine without swap and with little memory: the
// only place where exhausting memory harms nothing.
func requireTestMachine(t *testing.T) {
	t.Helper()
	if os.Getenv("RESPAWND_VM_GUEST") != "1" {
		t.Skip("runs only inside the test machine of test/vm/run")
	}
	cmdline, err := os.ReadFile("/proc/1/cmdline")
	if err != nil || string(cmdline) != "/init\x00" {
		t.Skipf("PID 1 is %q, not the test machine's /init", cmdline)
	}
	total, swap := meminfo(t, "MemTotal"), meminfo(t, "SwapTotal")
	if total > 4<<30 || swap != 0 {
		t.Skipf("MemTotal %d bytes, SwapTotal %d bytes: not the small swapless test machine", total, swap)
	}
}

// meminfo returns a /proc/meminfo field in bytes.
func meminfo(t *testing.T, key string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("parsing %s: %v", line, err)
		}
		return n << 10 // kB
	}
	t.Fatalf("no %s in /proc/meminfo", key)
	return 0
}

// daemon is the real respawnd binary, logging JSON on stderr.
type daemon struct {
	t   *testing.T
	cmd *exec.Cmd
	mu  sync.Mutex
	log []map[string]any
	eof chan struct{}
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, eof: make(chan struct{})}
	d.cmd = exec.Command(respawndBin, append([]string{"--log.format=json", "--web.listen-address=127.0.0.1:0"}, args...)...)
	d.cmd.Stdout = os.Stdout // the programs' prefixed output
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"raw": sc.Text()}
			}
			d.mu.Lock()
			d.log = append(d.log, m)
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill() // a no-op when the test stopped it
		<-d.eof
		_ = d.cmd.Wait()
		if t.Failed() {
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, m := range d.log {
				t.Logf("respawnd: %v", m)
			}
		}
	})
	return d
}

// waitLog returns the first record from index from on for which match
// holds, and the index after it.
func (d *daemon) waitLog(from int, what string, timeout time.Duration, match func(map[string]any) bool) (map[string]any, int) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d.mu.Lock()
		for i := from; i < len(d.log); i++ {
			if match(d.log[i]) {
				m := d.log[i]
				d.mu.Unlock()
				return m, i + 1
			}
		}
		d.mu.Unlock()
		if time.Now().After(deadline) {
			d.t.Fatalf("no log record: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemon) records() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]map[string]any(nil), d.log...)
}

func pidOf(m map[string]any) int {
	f, _ := m["pid"].(float64)
	return int(f)
}

func isHog(m map[string]any) bool {
	p, _ := m["program"].(string)
	return strings.HasPrefix(p, "hog-")
}

// TestHostOOMKill runs the machine out of memory with programs that have no
// memory limit of their own, so that the kernel's global OOM killer
// (constraint=CONSTRAINT_NONE) picks one. respawnd, protected by a negative
// oom_score_adj as its systemd unit sets it, must survive and report the
// victim's exit as oom_kill; a small bystander is untouched. The victim's
// restart is held while the host is still short of memory (the other hog
// holds it) and happens once memory is back (the other hog is stopped).
func TestHostOOMKill(t *testing.T) {
	requireTestMachine(t)
	// respawnd inherits this, as from systemd's OOMScoreAdjust=, and gives
	// its programs 0. It protects this test process as well.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(respawndOOMScoreAdj)), 0); err != nil {
		t.Fatal(err)
	}
	// Two hogs of 70% of what is available each: both cannot fit, so the
	// second to grow runs the machine out of memory.
	each := meminfo(t, "MemAvailable") * 7 / 10 >> 20
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "respawnd.yaml")
	yaml := fmt.Sprintf(`programs:
  - {name: hog-a, command: [%[1]q, "%[2]d"], restart: {backoff: {initial: 200ms, max: 1s}, limit: {burst: 100}}}
  - {name: hog-b, command: [%[1]q, "%[2]d"], restart: {backoff: {initial: 200ms, max: 1s}, limit: {burst: 100}}}
  - {name: bystander, command: [%[1]q, "1"]}
`, allocBin, each)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("two hogs of %d MiB each, MemTotal %d MiB", each, meminfo(t, "MemTotal")>>20)
	d := startDaemon(t, "--state.dir="+stateDir, "--config", cfg)

	// The first exit of a hog is the global OOM kill.
	exit, _ := d.waitLog(0, "a hog exited", 3*time.Minute, func(m map[string]any) bool {
		return m["msg"] == "exited" && isHog(m)
	})
	victim, _ := exit["program"].(string)
	if exit["reason"] != "oom_kill" || exit["signal"] != "SIGKILL" {
		t.Fatalf("%s exited with %v, want reason oom_kill, signal SIGKILL", victim, exit)
	}
	// Its restart is held: the host is still short of memory. (The exit
	// is logged once the kernel's report is in, maybe after the hold.)
	_, held := d.waitLog(0, victim+"'s restart held", time.Minute, func(m map[string]any) bool {
		return m["msg"] == "restart held until the host's memory recovers" && m["program"] == victim
	})
	survivor := "hog-a"
	if victim == survivor {
		survivor = "hog-b"
	}
	time.Sleep(3 * time.Second)
	for _, m := range d.records()[held:] {
		if m["msg"] == "state changed" && m["program"] == victim && m["state"] == "running" {
			t.Fatalf("%s restarted while the host was short of memory: %v", victim, m)
		}
	}
	// Memory comes back once the other hog goes (unless the OOM killer
	// took it too; then it is held as well, and released after the victim).
	if out, err := exec.Command(respawndBin, "stop", survivor, "--state.dir="+stateDir).CombinedOutput(); err != nil {
		t.Logf("respawnd stop %s: %v: %s", survivor, err, out)
	}
	rel, _ := d.waitLog(held, victim+"'s restart released", time.Minute, func(m map[string]any) bool {
		return m["msg"] == "held restart released" && m["program"] == victim
	})
	if rel["timed_out"] != false {
		t.Errorf("release %v, want one because memory recovered, not oom_hold_max", rel)
	}
	d.waitLog(held, victim+" running again", time.Minute, func(m map[string]any) bool {
		return m["msg"] == "state changed" && m["program"] == victim && m["state"] == "running" && pidOf(m) != pidOf(exit)
	})

	// respawnd lived through it, with its protection; its programs run
	// without it.
	pid := d.cmd.Process.Pid
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("respawnd (pid %d) is gone: %v", pid, err)
	}
	if adj := readAdj(t, pid); adj != respawndOOMScoreAdj {
		t.Errorf("respawnd oom_score_adj = %d, want %d", adj, respawndOOMScoreAdj)
	}

	// The kernel's report, as respawnd kept it, says the OOM was global.
	evs := events(t, stateDir)
	found := false
	for _, e := range evs {
		if e.PID != pidOf(exit) {
			continue
		}
		found = true
		if e.Reason != "oom_kill" || e.Program == nil || *e.Program != victim {
			t.Errorf("event %+v, want oom_kill of %s", e, victim)
		}
		if e.OOM == nil {
			t.Errorf("event of pid %d has no kernel report", e.PID)
		} else if e.OOM.Constraint != "" && e.OOM.Constraint != "CONSTRAINT_NONE" {
			t.Errorf("constraint %q, want CONSTRAINT_NONE (a host-wide OOM)", e.OOM.Constraint)
		} else if e.OOM.Constraint == "" {
			t.Logf("the kernel rate-limited the oom-kill: line; no constraint in the report")
		}
	}
	if !found {
		t.Errorf("no event for the killed pid %d among %d events", pidOf(exit), len(evs))
	}

	// Stop: respawnd exits 0 (the OOM kills that go on meanwhile do not
	// matter). Exits before the stop were OOM kills of hogs only.
	stopAt := len(d.records())
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-d.eof
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("respawnd ended with %v, want exit 0", err)
	}
	oomKills := 0
	for _, m := range d.records()[:stopAt] {
		switch {
		case m["msg"] == "host oom kill":
			t.Errorf("an OOM kill outside the programs: %v", m)
		case m["msg"] != "exited":
		case !isHog(m):
			t.Errorf("bystander exited: %v", m)
		case m["program"] == survivor && m["reason"] == "signal" && m["signal"] == "SIGTERM":
			// The stop that gave the memory back.
		case m["reason"] != "oom_kill":
			t.Errorf("hog exit that is no OOM kill: %v", m)
		default:
			oomKills++
		}
	}
	t.Logf("%d OOM kills of hogs before the stop; first victim %s", oomKills, victim)
}

func readAdj(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// events asks the running respawnd for its recent events over the control
// socket, as an operator would: respawnd events -o json.
func events(t *testing.T, stateDir string) []api.Event {
	t.Helper()
	out, err := exec.Command(respawndBin, "events", "-o", "json", "--state.dir="+stateDir).Output()
	if err != nil {
		t.Fatalf("respawnd events: %v", err)
	}
	var evs []api.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("decoding event %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}
