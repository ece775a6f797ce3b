// Command notifyprog is a program that speaks sd_notify, for tests of
// respawnd's notify and health checks. It sends its notifications with
// go-systemd's daemon.SdNotify to the NOTIFY_SOCKET it was given, then
// runs until SIGTERM or SIGINT, when it sends STOPPING=1 and exits 0.
//
//	-ready-after D     send READY=1 D after start (default 0: at once; negative: never)
//	-status S          send STATUS=S with READY=1
//	-from-child        have READY=1 sent by a child process (notifyprog run again),
//	                   which first writes "notifyprog: ready child PID" to stderr,
//	                   then exits; the parent waits for it
//	-mainpid N         send MAINPID=N after READY=1
//	-watchdog-every D  send WATCHDOG=1 every D (default 0: never)
//	-watchdog-for D    stop the WATCHDOG=1 pings D after start (default 0: never stop)
//	-trigger-after D   send WATCHDOG=trigger D after start
//	-abort-file PATH   on SIGABRT, write PATH ("abort PID\n"), then die of SIGABRT
//	-http ADDR         serve GET /healthz on ADDR (host:port)
//	-http-status N     answer /healthz with N (default 200)
//	-http-after D      listen only from D after start: connections are refused before
//	-http-delay D      wait D before each answer
//	-pidfile PATH      write the own pid to PATH
//
// Failures to notify are reported on stderr and are not fatal: a program
// without NOTIFY_SOCKET runs all the same.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// childArg marks the re-execution that sends READY=1 for -from-child.
const childArg = "-notifyprog-ready-child"

type options struct {
	readyAfter    time.Duration
	status        string
	fromChild     bool
	mainPID       int
	watchdogEvery time.Duration
	watchdogFor   time.Duration
	triggerAfter  time.Duration
	abortFile     string
	httpAddr      string
	httpStatus    int
	httpAfter     time.Duration
	httpDelay     time.Duration
	pidfile       string
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == childArg {
		// The child of -from-child: send what the parent was asked to send
		// with READY=1, and exit.
		os.Exit(send(os.Args[2]))
	}
	var o options
	fs := flag.NewFlagSet("notifyprog", flag.ExitOnError)
	fs.DurationVar(&o.readyAfter, "ready-after", 0, "send READY=1 after this long; negative: never")
	fs.StringVar(&o.status, "status", "", "send STATUS= with READY=1")
	fs.BoolVar(&o.fromChild, "from-child", false, "send READY=1 from a forked child process")
	fs.IntVar(&o.mainPID, "mainpid", 0, "send MAINPID= after READY=1")
	fs.DurationVar(&o.watchdogEvery, "watchdog-every", 0, "send WATCHDOG=1 this often")
	fs.DurationVar(&o.watchdogFor, "watchdog-for", 0, "stop the pings after this long; 0: never")
	fs.DurationVar(&o.triggerAfter, "trigger-after", 0, "send WATCHDOG=trigger after this long")
	fs.StringVar(&o.abortFile, "abort-file", "", "on SIGABRT write this file, then die of SIGABRT")
	fs.StringVar(&o.httpAddr, "http", "", "serve GET /healthz on this address")
	fs.IntVar(&o.httpStatus, "http-status", http.StatusOK, "status of /healthz")
	fs.DurationVar(&o.httpAfter, "http-after", 0, "listen only after this long")
	fs.DurationVar(&o.httpDelay, "http-delay", 0, "wait this long before each answer")
	fs.StringVar(&o.pidfile, "pidfile", "", "write the own pid to this file")
	_ = fs.Parse(os.Args[1:])
	os.Exit(run(o))
}

func run(o options) int {
	start := time.Now()
	// A SIGABRT (a watchdog's abort), with or without -abort-file, kills
	// the process with that signal instead of exiting with status 2.
	debug.SetTraceback("crash")
	if o.pidfile != "" {
		if err := os.WriteFile(o.pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "notifyprog:", err)
			return 1
		}
	}
	if o.abortFile != "" {
		onAbort(o.abortFile)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if o.httpAddr != "" {
		go serveHTTP(ctx, o, start)
	}
	if o.watchdogEvery > 0 {
		go pings(ctx, o, start)
	}
	if o.triggerAfter > 0 {
		go func() {
			if sleepUntil(ctx, start.Add(o.triggerAfter)) {
				notify("WATCHDOG=trigger")
			}
		}()
	}
	if o.readyAfter >= 0 && sleepUntil(ctx, start.Add(o.readyAfter)) {
		ready(o)
	}
	<-ctx.Done()
	notify(daemon.SdNotifyStopping)
	return 0
}

// ready sends READY=1 (with STATUS=), from a child if asked, then MAINPID=.
func ready(o options) {
	msg := daemon.SdNotifyReady
	if o.status != "" {
		msg += "\nSTATUS=" + o.status
	}
	if o.fromChild {
		exe, err := os.Executable()
		if err == nil {
			var p *os.Process
			p, err = os.StartProcess(exe, []string{exe, childArg, msg},
				&os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
			if err == nil {
				var st *os.ProcessState
				if st, err = p.Wait(); err == nil && !st.Success() {
					err = fmt.Errorf("ready child: %s", st)
				}
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "notifyprog:", err)
		}
	} else {
		notify(msg)
	}
	if o.mainPID != 0 {
		notify("MAINPID=" + strconv.Itoa(o.mainPID))
	}
}

// send is the child of -from-child. It says its pid on stderr first, so
// that a test can tell whose credentials the message should carry.
func send(msg string) int {
	fmt.Fprintf(os.Stderr, "notifyprog: ready child %d\n", os.Getpid())
	sent, err := daemon.SdNotify(false, msg)
	if err != nil || !sent {
		fmt.Fprintln(os.Stderr, "notifyprog: ready child: not sent:", err)
		return 1
	}
	return 0
}

func notify(msg string) {
	if _, err := daemon.SdNotify(false, msg); err != nil {
		fmt.Fprintln(os.Stderr, "notifyprog: notifying:", err)
	}
}

// pings sends WATCHDOG=1 every o.watchdogEvery, until o.watchdogFor after
// start if that is set.
func pings(ctx context.Context, o options, start time.Time) {
	t := time.NewTicker(o.watchdogEvery)
	defer t.Stop()
	notify(daemon.SdNotifyWatchdog)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if o.watchdogFor > 0 && now.Sub(start) >= o.watchdogFor {
				return
			}
			notify(daemon.SdNotifyWatchdog)
		}
	}
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// onAbort makes SIGABRT write file, then kill the process with SIGABRT
// itself (a watchdog's abort must look like one to whoever waits).
func onAbort(file string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGABRT)
	go func() {
		<-c
		if err := os.WriteFile(file, []byte("abort "+strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "notifyprog:", err)
		}
		// With the signal back with the runtime, traceback "crash" makes it
		// re-raise SIGABRT with the default action.
		signal.Reset(syscall.SIGABRT)
		_ = syscall.Kill(os.Getpid(), syscall.SIGABRT)
		select {}
	}()
}

// serveHTTP answers GET /healthz with o.httpStatus, after o.httpDelay,
// from o.httpAfter after start.
func serveHTTP(ctx context.Context, o options, start time.Time) {
	if !sleepUntil(ctx, start.Add(o.httpAfter)) {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if o.httpDelay > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(o.httpDelay):
			}
		}
		w.WriteHeader(o.httpStatus)
		fmt.Fprintln(w, http.StatusText(o.httpStatus))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifyprog:", err)
		return
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "notifyprog:", err)
	}
}
