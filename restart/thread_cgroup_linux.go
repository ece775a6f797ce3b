package restart

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

// Keep the main goroutine on the main thread for the life of the process,
// so that every other goroutine runs on threads other than the thread-group
// leader. startInCgroups moves single threads between cgroup v1 groups and
// must never move the leader: in cgroup v1 the memory controller charges a
// process's page faults to the cgroup of its mm's owner, the leader, so
// moving the leader would charge respawnd's own memory to a program.
func init() { runtime.LockOSThread() }

// canMoveThread reports whether cmd carries what startInCgroups needs.
func canMoveThread(cmd *Command) bool {
	return len(cmd.CgroupLeave) == len(cmd.CgroupProcs) && len(cmd.CgroupProcs) > 0
}

// errThreadMove is returned (wrapped) when the forking thread could not be
// moved into the program's cgroups; nothing was started then.
var errThreadMove = errors.New("restart: moving the forking thread")

// startInCgroups starts c from a thread that sits in the program's cgroup
// v1 groups for the instant of the fork, so the child is born in them:
// the kernel gives a new task the cgroups of the thread that forked it
// (kernel/cgroup/cgroup.c, cgroup_fork), and os/exec forks (vfork) from the
// calling thread. The thread goes back to respawnd's cgroups right after.
//
// It runs on a goroutine of its own, locked to its thread: should the way
// back fail, the goroutine ends still locked and the Go runtime retires the
// thread, so no respawnd code ever runs inside a program's cgroup. When the
// thread cannot be moved in the first place it falls back to c.Start
// through the shim, done by the caller on errThreadMove.
func startInCgroups(c *exec.Cmd, procs, leave []string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		if tid == unix.Getpid() {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("%w: on the main thread", errThreadMove)
			return
		}
		for i, p := range procs {
			if err := writeTID(filepath.Join(filepath.Dir(p), "tasks"), tid); err != nil {
				for _, back := range leave[:i] {
					if writeTID(filepath.Join(back, "tasks"), tid) != nil {
						done <- fmt.Errorf("%w: %w", errThreadMove, err)
						return // still locked: the thread is retired
					}
				}
				runtime.UnlockOSThread()
				done <- fmt.Errorf("%w: %w", errThreadMove, err)
				return
			}
		}
		err := c.Start()
		for _, back := range leave {
			if werr := writeTID(filepath.Join(back, "tasks"), tid); werr != nil {
				done <- err
				return // still locked: the thread is retired
			}
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

func writeTID(tasks string, tid int) error {
	return pseudofs.Write(tasks, strconv.AppendInt(nil, int64(tid), 10))
}
