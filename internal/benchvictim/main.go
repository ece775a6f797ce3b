// Command benchvictim is the program the restart benchmarks kill over and
// over: a small static binary whose first act is to report its pid, so that
// "running" means the new process's own code runs, not just that a fork
// happened.
//
//	benchvictim ready FIFO            write "PID\n" to FIFO, then sleep until killed
//	benchvictim hog FIFO              write "PID\n" to FIFO, then allocate until the
//	                                  OOM killer ends it (run it only in a memory cgroup)
//	benchvictim storm TRIGGER MARKER  the first time only (MARKER does not exist
//	                                  yet): create MARKER, wait for a byte on the
//	                                  FIFO TRIGGER, then allocate until the OOM
//	                                  killer ends it; any later time, sleep until
//	                                  killed (run it only in a memory cgroup)
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

// storm is one program of an OOM storm. Its first instance creates marker,
// waits for the storm by reading one byte from the FIFO trigger (a blocked
// read costs no CPU; the benchmark writes a byte for every program), then
// allocates until the OOM killer ends it. Any later instance finds marker
// and only sleeps.
//
// The FIFO is opened read-write, which never blocks, and kept open: the
// bytes stay in it until every program has taken its own, however late it
// came to read. (Waiting in a blocking open, a program that reached its open
// after the writer's had come and gone waited forever.)
func storm(trigger, marker string) {
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		sleep() // allocated once already: this is a restart
	}
	_ = f.Close()
	t, err := os.OpenFile(trigger, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var b [1]byte
	if _, err := t.Read(b[:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hog()
	_ = t.Close() // not reached (hog ends in the OOM kill); it keeps t, and the FIFO, open till then
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
