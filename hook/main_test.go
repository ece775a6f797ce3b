package hook_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfRequested()
	restart.RunShimIfRequested()
	runLocalHelperIfRequested()
	os.Exit(m.Run())
}

// localHelperArg marks a re-execution of the test binary as a hook helper.
const localHelperArg = "respawnd-hook-test-helper"

// localHelperArgv returns the argv that runs exe (the test binary when "")
// as a hook helper. Modes:
//
//	report DIR PROTECTED  write DIR/report-GENERATION: a JSON report of the
//	                      hook's uid, gid, environment, what it read from
//	                      RESPAWND_RECORD, and the errors of reading
//	                      PROTECTED and of writing to fd 3
//	gate DIR              write "PID" to DIR/started-GENERATION, wait for
//	                      DIR/release-GENERATION to exist, exit 0
//	tree DIR [exit]       start a grandchild that sleeps, write "PID GCPID"
//	                      to DIR/tree-GENERATION, sleep until killed (or,
//	                      with exit, exit 0 at once)
func localHelperArgv(exe, mode string, args ...string) []string {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			exe = os.Args[0]
		}
	}
	return append([]string{exe, localHelperArg, mode}, args...)
}

func runLocalHelperIfRequested() {
	if len(os.Args) < 4 || os.Args[1] != localHelperArg {
		return
	}
	os.Exit(runLocalHelper(os.Args[2], os.Args[3], os.Args[4:]))
}

// report is what the report helper writes.
type report struct {
	UID, GID     int
	Env          []string
	Record       string
	RecordErr    string
	ProtectedErr string
	WriteFD3Err  string
}

// writeFile writes data to DIR/NAME-GENERATION atomically.
func writeFile(dir, name string, data []byte) error {
	base := name + "-" + os.Getenv("RESPAWND_GENERATION")
	tmp := filepath.Join(dir, ".tmp-"+base) // matched by no test's glob
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, base))
}

func runLocalHelper(mode, dir string, args []string) int {
	var err error
	switch mode {
	case "report":
		r := report{UID: os.Getuid(), GID: os.Getgid(), Env: os.Environ()}
		if b, err := os.ReadFile(os.Getenv("RESPAWND_RECORD")); err != nil {
			r.RecordErr = err.Error()
		} else {
			r.Record = string(b)
		}
		if len(args) > 0 {
			if _, err := os.ReadFile(args[0]); err != nil {
				r.ProtectedErr = err.Error()
			}
		}
		if _, err := os.NewFile(3, "fd3").Write([]byte("changed")); err != nil {
			r.WriteFD3Err = err.Error()
		}
		b, _ := json.Marshal(r)
		err = writeFile(dir, "report", b)
	case "gate":
		if err = writeFile(dir, "started", []byte(strconv.Itoa(os.Getpid()))); err != nil {
			break
		}
		release := filepath.Join(dir, "release-"+os.Getenv("RESPAWND_GENERATION"))
		for {
			if _, err := os.Stat(release); err == nil {
				return 0
			}
			time.Sleep(5 * time.Millisecond)
		}
	case "tree":
		argv := testenv.HelperArgv("sleep")
		var gc *os.Process
		if gc, err = os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}}); err != nil {
			break
		}
		if err = writeFile(dir, "tree", fmt.Appendf(nil, "%d %d", os.Getpid(), gc.Pid)); err != nil {
			break
		}
		for len(args) == 0 {
			time.Sleep(time.Hour)
		}
	default:
		err = errors.New("unknown mode " + mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// outcomes collects the results a Runner reports.
type outcomes struct {
	mu   sync.Mutex
	list []string // "program result"
}

func (o *outcomes) add(program, result string) {
	o.mu.Lock()
	o.list = append(o.list, program+" "+result)
	o.mu.Unlock()
}

func (o *outcomes) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.list)
}

// count returns how many times program had result.
func (o *outcomes) count(program, result string) int {
	n := 0
	for _, s := range o.get() {
		if s == program+" "+result {
			n++
		}
	}
	return n
}

const waitTimeout = 20 * time.Second

// verifyNoLeaks checks for leaked goroutines after every other cleanup.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// startRunner starts r.Run and stops it when the test ends; the returned
// function stops it earlier and waits for Run to return.
func startRunner(t *testing.T, r *hook.Runner) (stop func()) {
	t.Helper()
	return testenv.Run(t, r.Run)
}
