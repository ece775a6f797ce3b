package restart_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfRequested()
	restart.RunShimIfRequested()
	runLocalHelperIfRequested()
	os.Exit(m.Run())
}

// localHelperArg marks a re-execution of the test binary as one of this
// package's own helper modes, which the shared helper does not have.
const localHelperArg = "respawnd-restart-test-helper"

// localHelperArgv returns the argv that runs the test binary as a local
// helper. Modes:
//
//	cgroup              print /proc/self/cgroup, then exit 0
//	env                 print the environment, one variable a line, then exit 0
//	args                print the arguments after the mode, one a line
//	ids                 print "uid gid groups cwd", then exit 0
//	lines ID N LEN      print N lines "ID i xxx…" (LEN x's) alternately to stdout and stderr
//	long LEN            print one line of LEN x's without a newline
//	orphan CODE         start a grandchild that exits after 20ms, print its pid, exit CODE
//	symlink TARGET LINK print a line, replace LINK with a symbolic link to TARGET (ln -sf), exit 1
//	exchange A B        swap the names A and B atomically (renameat2 RENAME_EXCHANGE) until killed
//	fd3                 copy what fd 3 holds to stdout, then exit 0
//	seq N LEN           print N lines "i xxx…" (LEN x's) to stdout, buffered, then exit 0
//	flood DIR N LEN M   print N lines "flood i xxx…" to stdout, create DIR/flooded, wait for
//	                    DIR/go, print M lines "after i", then exit 0
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
	os.Exit(runLocalHelper(os.Args[2], os.Args[3:]))
}

func runLocalHelper(mode string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch mode {
	case "cgroup":
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		os.Stdout.Write(b)
		return 0
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		return 0
	case "args":
		for _, a := range args {
			fmt.Println(a)
		}
		return 0
	case "ids":
		groups, _ := os.Getgroups()
		gs := make([]string, len(groups))
		for i, g := range groups {
			gs[i] = strconv.Itoa(g)
		}
		wd, _ := os.Getwd()
		fmt.Printf("%d %d %s %s\n", os.Getuid(), os.Getgid(), strings.Join(gs, ","), wd)
		return 0
	case "lines":
		n, _ := strconv.Atoi(arg(1))
		size, _ := strconv.Atoi(arg(2))
		pad := strings.Repeat("x", size)
		for i := range n {
			line := []byte(fmt.Sprintf("%s %d %s\n", arg(0), i, pad))
			w := os.Stdout
			if i%2 == 1 {
				w = os.Stderr
			}
			// Write in two pieces so the launcher must join them into one
			// line.
			half := len(line) / 2
			w.Write(line[:half])
			w.Write(line[half:])
		}
		return 0
	case "long":
		size, _ := strconv.Atoi(arg(0))
		os.Stdout.Write([]byte(strings.Repeat("x", size)))
		return 0
	case "symlink":
		fmt.Println("written by the program")
		_ = os.Remove(arg(1))
		if err := os.Symlink(arg(0), arg(1)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		return 1
	case "exchange":
		for {
			if err := unix.Renameat2(unix.AT_FDCWD, arg(0), unix.AT_FDCWD, arg(1), unix.RENAME_EXCHANGE); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
		}
	case "fd3":
		if _, err := io.Copy(os.Stdout, os.NewFile(3, "fd3")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		return 0
	case "seq":
		n, _ := strconv.Atoi(arg(0))
		size, _ := strconv.Atoi(arg(1))
		w := bufio.NewWriterSize(os.Stdout, 64<<10)
		pad := strings.Repeat("x", size)
		for i := range n {
			fmt.Fprintf(w, "%d %s\n", i, pad)
		}
		if err := w.Flush(); err != nil {
			return 3
		}
		return 0
	case "flood":
		dir := arg(0)
		n, _ := strconv.Atoi(arg(1))
		size, _ := strconv.Atoi(arg(2))
		m, _ := strconv.Atoi(arg(3))
		pad := strings.Repeat("x", size)
		w := bufio.NewWriterSize(os.Stdout, 16<<10)
		for i := range n {
			fmt.Fprintf(w, "flood %d %s\n", i, pad)
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if err := os.WriteFile(dir+"/flooded", nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		for range 6000 {
			if _, err := os.Stat(dir + "/go"); err == nil {
				for i := range m {
					fmt.Printf("after %d\n", i)
				}
				return 0
			}
			time.Sleep(10 * time.Millisecond)
		}
		return 4
	case "orphan":
		argv := testenv.HelperArgv("exit-after", "20ms", "0")
		p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, nil, os.Stderr}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		fmt.Println(p.Pid)
		code, _ := strconv.Atoi(arg(0))
		return code
	}
	fmt.Fprintf(os.Stderr, "unknown local helper mode %q\n", mode)
	return 2
}

// verifyNoLeaks checks for leaked goroutines after every other cleanup of
// the test (cleanups run last in, first out) has killed and waited for its
// processes.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}
