package health

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

// localHelperArg marks a re-execution of the test binary as one of this
// package's helper modes.
const localHelperArg = "respawnd-health-test-helper"

// localHelperArgv returns the argv that runs the test binary as a probe
// helper. Modes:
//
//	say CODE LINE   write LINE to stderr, then exit with CODE
//	tree DIR        start a grandchild that sleeps, write "PID GCPID" to
//	                DIR/tree-PID, then sleep until killed
//	lock DIR HOLD   append "PID" to DIR/starts; take an exclusive flock of
//	                DIR/lock without waiting (create DIR/overlap-PID if
//	                another probe holds it); hold it for HOLD, exit 0
//	whoami UID GID DIR KEY=VALUE
//	                exit 0 if the process runs as UID and GID in DIR with
//	                KEY=VALUE and without NOTIFY_SOCKET in its environment;
//	                otherwise say what differs and exit 1
//	serve DIR       serve HTTP on 127.0.0.1 (200 "ok" to every request),
//	                its address written to DIR/addr, until killed
func localHelperArgv(mode string, args ...string) []string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return append([]string{exe, localHelperArg, mode}, args...)
}

func runLocalHelperIfRequested() {
	if len(os.Args) < 3 || os.Args[1] != localHelperArg {
		return
	}
	if err := runLocalHelper(os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runLocalHelper(mode string, args []string) error {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	pid := strconv.Itoa(os.Getpid())
	switch mode {
	case "say":
		code, _ := strconv.Atoi(arg(0))
		fmt.Fprintln(os.Stderr, arg(1))
		os.Exit(code)
	case "tree":
		argv := testenv.HelperArgv("sleep")
		gc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			return err
		}
		tmp := filepath.Join(arg(0), ".tmp-"+pid)
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d", os.Getpid(), gc.Pid), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(arg(0), "tree-"+pid)); err != nil {
			return err
		}
		for {
			time.Sleep(time.Hour)
		}
	case "lock":
		hold, err := time.ParseDuration(arg(1))
		if err != nil {
			return err
		}
		starts, err := os.OpenFile(filepath.Join(arg(0), "starts"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if _, err := starts.WriteString(pid + "\n"); err != nil {
			return err
		}
		_ = starts.Close()
		// No child inherits this descriptor: the lock goes with this
		// process.
		f, err := os.OpenFile(filepath.Join(arg(0), "lock"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				return err
			}
			if err := os.WriteFile(filepath.Join(arg(0), "overlap-"+pid), nil, 0o644); err != nil {
				return err
			}
		}
		time.Sleep(hold)
	case "whoami":
		wd, _ := os.Getwd()
		got := fmt.Sprintf("%d %d %s %v %v", os.Getuid(), os.Getgid(), wd,
			slices.Contains(os.Environ(), arg(3)), os.Getenv("NOTIFY_SOCKET") != "")
		if want := fmt.Sprintf("%s %s %s true false", arg(0), arg(1), arg(2)); got != want {
			fmt.Fprintf(os.Stderr, "got %s, want %s\n", got, want)
			os.Exit(1)
		}
	case "serve":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		tmp := filepath.Join(arg(0), ".tmp-addr")
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(arg(0), "addr")); err != nil {
			return err
		}
		return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok\n"))
		}))
	default:
		return errors.New("unknown mode " + mode)
	}
	return nil
}
