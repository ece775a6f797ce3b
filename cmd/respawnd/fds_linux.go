package main

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeOnExecInherited marks every file descriptor respawnd inherited
// beyond stdin, stdout and stderr close-on-exec, so that programs do not
// inherit whatever respawnd's own parent leaked to it (a shell's pipes, a
// deploy tool's sockets). The descriptors systemd passes for socket
// activation (LISTEN_FDS, from 3 on) are left alone; the listener keeps
// them close-on-exec itself once it takes them.
func closeOnExecInherited() {
	keep := 0
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		keep, _ = strconv.Atoi(os.Getenv("LISTEN_FDS"))
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || fd < 3+keep {
			continue
		}
		unix.CloseOnExec(fd)
	}
}
