// Command alloc takes memory and keeps it: the program that respawnd
// supervises in the test machine's host-wide OOM scenario. It allocates MIB
// mebibytes in steps of STEP, writes to every page so that all of it is
// resident, says so, and sleeps until it is killed.
//
//	alloc MIB [STEP]
//
// Run it only where running out of memory harms nothing (the test machine).
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// held keeps the memory reachable: a local would be dead after its last
// use, and the collector could give the pages back while alloc sleeps.
var held [][]byte

func main() {
	total, step := 0, 4
	var err error
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: alloc MIB [STEP]")
		os.Exit(2)
	}
	if total, err = strconv.Atoi(os.Args[1]); err != nil || total <= 0 {
		fmt.Fprintf(os.Stderr, "alloc: bad size %q\n", os.Args[1])
		os.Exit(2)
	}
	if len(os.Args) > 2 {
		if step, err = strconv.Atoi(os.Args[2]); err != nil || step <= 0 {
			fmt.Fprintf(os.Stderr, "alloc: bad step %q\n", os.Args[2])
			os.Exit(2)
		}
	}
	pageSize := os.Getpagesize()
	for have := 0; have < total; have += step {
		b := make([]byte, step<<20)
		for i := 0; i < len(b); i += pageSize {
			b[i] = 1
		}
		held = append(held, b)
	}
	fmt.Fprintf(os.Stdout, "pid %d holds %d MiB in %d chunks\n", os.Getpid(), total, len(held))
	for {
		time.Sleep(time.Hour)
	}
}
