package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// localHelperArg marks a re-execution of the test binary as one of this
// package's own helper modes, which the shared helper (testenv) does not
// have.
const localHelperArg = "respawnd-cmd-test-helper"

// init runs a local helper before anything of the test binary (TestMain
// included) when asked to.
func init() {
	if len(os.Args) < 3 || os.Args[1] != localHelperArg {
		return
	}
	os.Exit(runLocalHelper(os.Args[2], os.Args[3:]))
}

// localHelperArgv returns the argv that runs the test binary as a local
// helper. Modes:
//
//	signals FILE   append "ready" to FILE once its handlers are installed, then
//	               the name of every SIGHUP, SIGUSR1, SIGUSR2, SIGINT and
//	               SIGTERM it receives, one a line; SIGINT and SIGTERM then
//	               end it, by that very signal
//	euid UID       keep its real uid, take UID as its effective uid (as a
//	               set-user-id program would), then sleep until killed
//	spew N LEN     print N lines "i xxx…" (LEN x's), then sleep until killed
func localHelperArgv(mode string, args ...string) []string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return append([]string{exe, localHelperArg, mode}, args...)
}

func runLocalHelper(mode string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch mode {
	case "signals":
		// Buffered so that a signal arriving while the last is written down
		// is not dropped.
		c := make(chan os.Signal, 8)
		signal.Notify(c, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGTERM)
		f, err := os.OpenFile(arg(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		fmt.Fprintln(f, "ready")
		for s := range c {
			sig := s.(syscall.Signal)
			fmt.Fprintln(f, unix.SignalName(sig))
			if sig == syscall.SIGINT || sig == syscall.SIGTERM {
				// Die of the signal itself, as a program without a handler
				// would.
				signal.Reset(sig)
				_ = syscall.Kill(os.Getpid(), sig)
				for {
					time.Sleep(time.Hour)
				}
			}
		}
	case "spew":
		n, _ := strconv.Atoi(arg(0))
		size, _ := strconv.Atoi(arg(1))
		pad := strings.Repeat("x", size)
		w := bufio.NewWriter(os.Stdout)
		for i := range n {
			fmt.Fprintf(w, "%d %s\n", i, pad)
		}
		_ = w.Flush()
		for {
			time.Sleep(time.Hour)
		}
	case "euid":
		uid, err := strconv.Atoi(arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if err := syscall.Setreuid(-1, uid); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		for {
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintf(os.Stderr, "unknown local helper mode %q\n", mode)
	return 2
}

// yamlList is argv as a YAML flow list.
// shellQuote quotes argv for sh, as one command line.
func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func yamlList(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		b, _ := json.Marshal(a)
		q[i] = string(b)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
