package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// mainEnv makes the test binary run respawnd's main instead of the tests.
const mainEnv = "RESPAWND_TEST_RUN_MAIN"

// cgroupEnv names the cgroup directory that a respawnd under test joins
// before anything else (see startRespawnd).
const cgroupEnv = "RESPAWND_TEST_CGROUP"

// notifyprogDir is where the liveness tests built their test program, if
// they did; it goes when the tests end (removeNotifyprog).
var notifyprogDir string

func removeNotifyprog() {
	if notifyprogDir != "" {
		_ = os.RemoveAll(notifyprogDir)
	}
}

func TestMain(m *testing.M) {
	restart.RunShimIfRequested()
	testenv.RunHelperIfRequested()
	if os.Getenv(mainEnv) == "1" {
		if err := joinTestCgroup(); err != nil {
			fmt.Fprintf(os.Stderr, "respawnd under test: %v\n", err)
			os.Exit(3)
		}
		os.Exit(run(os.Args[1:]))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeNotifyprog()
		os.Exit(code)
	}))
}

// joinTestCgroup moves this process into the cgroup named by cgroupEnv,
// if any, so that everything it starts lands in that cgroup's subtree.
// The variable is not passed on to the programs.
func joinTestCgroup() error {
	dir := os.Getenv(cgroupEnv)
	if dir == "" {
		return nil
	}
	_ = os.Unsetenv(cgroupEnv)
	// On cgroup v2 a respawnd that made program cgroups here moved itself
	// into the leaf supervisor and enabled controllers in dir, which then
	// takes no process (EBUSY: "no internal processes"). A later respawnd
	// joins that leaf, as systemd's DelegateSubgroup=supervisor puts it
	// there, and still finds its own cgroup and its programs' (the parent).
	if fi, err := os.Stat(filepath.Join(dir, "supervisor")); err == nil && fi.IsDir() {
		dir = filepath.Join(dir, "supervisor")
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("joining the test's cgroup: %w", err)
	}
	return nil
}

// daemonProc is respawnd running as a separate process, logging JSON.
type daemonProc struct {
	t   *testing.T
	cmd *exec.Cmd
	mu  sync.Mutex
	log []map[string]any
	out bytes.Buffer
	// logDone is closed once respawnd's stderr is read to its end.
	logDone chan struct{}
	// exited is closed once the process has exited and been waited for;
	// waitErr is then Wait's result.
	exited  chan struct{}
	waitErr error
}

// startRespawnd runs the test binary as respawnd with args. respawnd runs
// in a cgroup of the test's own (see testCgroup), shared by every respawnd
// of the test, so that one started after a kill -9 of another finds its
// programs' cgroups; at the end of the test whatever is left in it is
// killed and the cgroup removed.
func startRespawnd(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cg := testCgroup(t)
	d := &daemonProc{t: t, logDone: make(chan struct{}), exited: make(chan struct{})}
	// Each daemon gets its own state directory (control socket, state file)
	// and an ephemeral port, unless the test chose them.
	pre := []string{"--log.format=json"}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--state.dir") }) {
		pre = append(pre, "--state.dir="+t.TempDir())
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--web.listen-address") }) {
		pre = append(pre, "--web.listen-address=127.0.0.1:0")
	}
	d.cmd = exec.Command(exe, append(pre, args...)...)
	d.cmd.Env = append(os.Environ(), mainEnv+"=1")
	if cg != "" {
		d.cmd.Env = append(d.cmd.Env, cgroupEnv+"="+cg)
	}
	d.cmd.Stdout = &lockedWriter{mu: &d.mu, w: &d.out}
	// Wait copies stdout until its end; a stray holder of the pipe must
	// not keep it from reporting the exit.
	d.cmd.WaitDelay = 10 * time.Second
	// A pipe of our own rather than StderrPipe: Wait then neither waits
	// for nor closes it, so the exit is seen even if a stray process holds
	// the pipe open, and no record is lost to an early close.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = w
	err = d.cmd.Start()
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		t.Fatal(err)
	}
	go func() {
		defer close(d.logDone)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
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
	// The only Wait: tests learn of the exit through d.wait.
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		if exited, _ := d.wait(30 * time.Second); !exited {
			t.Errorf("respawnd (pid %d) did not exit within 30s of SIGTERM; killing it", d.cmd.Process.Pid)
			_ = d.cmd.Process.Kill()
			if exited, _ := d.wait(10 * time.Second); !exited {
				t.Errorf("respawnd (pid %d) not reaped after SIGKILL", d.cmd.Process.Pid)
			}
		}
		// Every record respawnd wrote is in once the pipe is at its end.
		select {
		case <-d.logDone:
		case <-time.After(10 * time.Second):
			t.Errorf("respawnd's log pipe still open 10s after its exit")
		}
		_ = r.Close()
		if t.Failed() {
			d.mu.Lock()
			for _, m := range d.log {
				t.Logf("respawnd: %v", m)
			}
			d.mu.Unlock()
		}
	})
	return d
}

// wait waits up to timeout for respawnd to exit; exited is false when it
// still runs, err is Wait's result.
func (d *daemonProc) wait(timeout time.Duration) (exited bool, err error) {
	select {
	case <-d.exited:
		return true, d.waitErr
	case <-time.After(timeout):
		return false, nil
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitLog returns the first log record from index from on that matches
// every key/value in want, and the index after it.
func (d *daemonProc) waitLog(from int, want map[string]any) (map[string]any, int) {
	d.t.Helper()
	return d.waitLogFn(from, fmt.Sprint(want), func(m map[string]any) bool { return matches(m, want) })
}

// waitLogFn is waitLog with a predicate.
func (d *daemonProc) waitLogFn(from int, what string, match func(map[string]any) bool) (map[string]any, int) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
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
			d.t.Fatalf("no log record matching %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count is how many log records match want.
func (d *daemonProc) count(want map[string]any) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, m := range d.log {
		if matches(m, want) {
			n++
		}
	}
	return n
}

func matches(m, want map[string]any) bool {
	for k, v := range want {
		if m[k] != v {
			return false
		}
	}
	return true
}

func pidOf(m map[string]any) int {
	f, _ := m["pid"].(float64)
	return int(f)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// helperCommand is a YAML flow list running the test binary as a helper.
func helperCommand(mode string, args ...string) string {
	return yamlList(testenv.HelperArgv(mode, args...))
}
