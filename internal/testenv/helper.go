package testenv

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"
)

// helperArg marks a re-execution of a test binary as a helper process.
const helperArg = "respawnd-test-helper"

// HelperArgv returns the argv that runs the current test binary as the helper
// program mode with args. Modes:
//
//	sleep                  sleep until killed
//	exit CODE              exit with CODE at once
//	exit-after DUR CODE    sleep DUR, then exit with CODE
//	crash                  die of a signal (SIGSEGV, or SIGABRT from the runtime)
//	fork-sleep PIDFILE     fork a grandchild that sleeps (its pid written to PIDFILE), then sleep
//	hog-after DUR          sleep DUR, then hog (only ever inside a limited cgroup)
//	hog                    allocate and touch memory in 1 MiB steps until killed (only ever inside a limited cgroup)
//	ready FIFO             write "PID\n" to FIFO, then sleep until killed
//	ignore-term            ignore SIGTERM and sleep
//	sleep-as NAME          set the process name (comm) to NAME, then sleep
//	orphan PIDFILE         leave an orphan that exits after 200ms (its pid in PIDFILE), then sleep
func HelperArgv(mode string, args ...string) []string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return append([]string{exe, helperArg, mode}, args...)
}

// RunHelperIfRequested runs the helper program and exits when the test
// binary was started by HelperArgv; otherwise it returns at once. Call it
// first thing in TestMain.
func RunHelperIfRequested() {
	if len(os.Args) < 3 || os.Args[1] != helperArg {
		return
	}
	os.Exit(runHelper(os.Args[2], os.Args[3:]))
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func runHelper(mode string, args []string) int {
	switch mode {
	case "sleep":
		sleepForever()
	case "exit":
		code, _ := strconv.Atoi(arg(args, 0))
		return code
	case "exit-after":
		d, _ := time.ParseDuration(arg(args, 0))
		code, _ := strconv.Atoi(arg(args, 1))
		time.Sleep(d)
		return code
	case "crash":
		// Without this the runtime turns the signal into exit status 2.
		debug.SetTraceback("crash")
		_ = syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		sleepForever()
	case "fork-sleep":
		child, err := os.StartProcess(os.Args[0], []string{os.Args[0], helperArg, "sleep"}, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if err := os.WriteFile(arg(args, 0), []byte(strconv.Itoa(child.Pid)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		sleepForever()
	case "hog-after":
		d, _ := time.ParseDuration(arg(args, 0))
		time.Sleep(d)
		fallthrough
	case "hog":
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "ready":
		f, err := os.OpenFile(arg(args, 0), os.O_WRONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		_ = f.Close()
		sleepForever()
	case "orphan":
		// The middle process starts the grandchild and exits at once, so the
		// grandchild is reparented to the nearest subreaper (or PID 1).
		mid, err := os.StartProcess(os.Args[0], []string{os.Args[0], helperArg, "orphan-mid", arg(args, 0)}, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if _, err := mid.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		sleepForever()
	case "orphan-mid":
		gc, err := os.StartProcess(os.Args[0], []string{os.Args[0], helperArg, "exit-after", "200ms", "0"}, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if err := os.WriteFile(arg(args, 0), []byte(strconv.Itoa(gc.Pid)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		return 0
	case "sleep-as":
		// The process name (comm) becomes NAME, so tests can match on it.
		if err := setComm(arg(args, 0)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		sleepForever()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		sleepForever()
	case "grow":
		// grow STEP_MIB INTERVAL MARKER: takes STEP_MIB more memory every
		// INTERVAL; on SIGTERM appends "term PID" to MARKER and exits 0.
		step, _ := strconv.Atoi(arg(args, 0))
		every, _ := time.ParseDuration(arg(args, 1))
		term := termMarker(arg(args, 2))
		var keep [][]byte
		tick := time.NewTicker(every)
		for {
			select {
			case <-term:
				return 0
			case <-tick.C:
				keep = append(keep, touched(step<<20))
			}
		}
	case "spike-on-term":
		// spike-on-term MIB MARKER: takes MIB of memory and waits; on
		// SIGTERM appends "term PID" to MARKER, then takes memory without
		// end, faster than any stop: the OOM killer gets it first.
		n, _ := strconv.Atoi(arg(args, 0))
		term := termMarker(arg(args, 1)) // before the memory: the stop may come at once
		keep := [][]byte{touched(n << 20)}
		<-term
		for {
			keep = append(keep, touched(1<<20))
		}
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// touched returns n bytes of memory, every page written, so that the
// kernel charges them.
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

// termMarker is closed once SIGTERM came and "term PID" was appended to
// the file marker.
func termMarker(marker string) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		<-sig
		if f, err := os.OpenFile(marker, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "term %d\n", os.Getpid())
			_ = f.Close()
		}
		close(done)
	}()
	return done
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}
