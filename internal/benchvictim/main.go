// Command benchvictim is the program the restart benchmarks kill over and
// over: a small static binary whose first act is to report its pid, so that
// "running" means the new process's own code runs, not just that a fork
// happened.
//
//	benchvictim ready FIFO            write "PID\n" to FIFO, then sleep until killed
//	benchvictim hog FIFO              write "PID\n" to FIFO, then allocate until the
//	                                  OOM killer ends it (run it only in a memory cgroup)
//	benchvictim storm TRIGGER MARKER  wait until the file TRIGGER exists; then, the
//	                                  first time only (MARKER does not exist yet),
//	                                  create MARKER and allocate until the OOM killer
//	                                  ends it; otherwise sleep until killed (run it
//	                                  only in a memory cgroup)
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "storm" {
		storm(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: benchvictim ready|hog FIFO | storm TRIGGER MARKER")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[2], os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	_ = f.Close()
	switch os.Args[1] {
	case "hog":
		hog()
	default:
		sleep()
	}
}

func storm(trigger, marker string) {
	for {
		if _, err := os.Stat(trigger); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		sleep() // allocated once already: this is a restart
	}
	_ = f.Close()
	hog()
}

func hog() {
	var keep [][]byte
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
}

func sleep() {
	for {
		time.Sleep(time.Hour)
	}
}
