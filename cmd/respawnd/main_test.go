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

func TestMain(m *testing.M) {
	restart.RunShimIfRequested()
	testenv.RunHelperIfRequested()
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// daemonProc is respawnd running as a separate process, logging JSON.
type daemonProc struct {
	t   *testing.T
	cmd *exec.Cmd
	mu  sync.Mutex
	log []map[string]any
	out bytes.Buffer
}

// startRespawnd runs the test binary as respawnd with args.
func startRespawnd(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t}
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
	d.cmd.Stdout = &lockedWriter{mu: &d.mu, w: &d.out}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
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
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.AfterFunc(20*time.Second, func() { _ = d.cmd.Process.Kill() })
		<-done
		_ = d.cmd.Wait()
		timer.Stop()
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
	argv := testenv.HelperArgv(mode, args...)
	q := make([]string, len(argv))
	for i, a := range argv {
		b, _ := json.Marshal(a)
		q[i] = string(b)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
