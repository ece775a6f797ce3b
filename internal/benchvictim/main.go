// Command benchvictim is the program the restart benchmarks kill over and
// over: a small static binary whose first act is to report its pid, so that
// "running" means the new process's own code runs, not just that a fork
// happened.
//
//	benchvictim ready FIFO   write "PID\n" to FIFO, then sleep until killed
//	benchvictim hog FIFO     write "PID\n" to FIFO, then allocate until the
//	                         OOM killer ends it (run it only in a memory cgroup)
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: benchvictim ready|hog FIFO")
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
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	default:
		for {
			time.Sleep(time.Hour)
		}
	}
}
