package restart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

// Start starts cmd. It returns once the program has exec'd, or a
// *StartError naming the step that failed; then nothing of the attempt is
// left running. Start does no logging and reads nothing from /proc; the
// exit and the output are handled by the Launcher's shared waiter and
// output mux (a goroutine per process and per pipe only where those are
// unavailable).
func (l *Launcher) Start(cmd Command) (*Process, error) {
	if len(cmd.Argv) == 0 || cmd.Argv[0] == "" {
		return nil, &StartError{Program: cmd.Name, Op: OpLookupCommand, Err: ErrNoCommand}
	}
	if len(cmd.ExtraFiles) > 0 && len(cmd.CgroupProcs) > 0 {
		return nil, &StartError{Program: cmd.Name, Op: OpExec, Err: ErrExtraFiles}
	}
	path := cmd.Argv[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				// Let callers test for fs.ErrNotExist as for any missing file.
				err = fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
			}
			return nil, &StartError{Program: cmd.Name, Op: OpLookupCommand, Err: err}
		}
		path = p
	}
	cred, login, serr := lookupCredential(cmd.User, cmd.Group)
	if serr != nil {
		serr.Program = cmd.Name
		return nil, serr
	}

	env := withLoginEnv(cmd.Env, login)
	if env == nil {
		env = []string{} // os/exec would pass respawnd's environment for nil
	}
	c := &exec.Cmd{
		Path:        path,
		Args:        cmd.Argv,
		Env:         env,
		Dir:         cmd.Dir,
		Stdin:       l.nullFile(),
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Credential: cred},
		ExtraFiles:  cmd.ExtraFiles,
	}
	// The child's pidfd, from the clone itself (CLONE_PIDFD): its wait then
	// parks in the runtime poller instead of blocking a thread.
	pidfd := -1
	if pidfdChildren() {
		c.SysProcAttr.PidFD = &pidfd
	}
	if cmd.CgroupFD > 0 {
		c.SysProcAttr.UseCgroupFD = true
		c.SysProcAttr.CgroupFD = cmd.CgroupFD
	}

	// Files the child inherits and the parent closes right after the fork.
	var childEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			_ = f.Close()
		}
	}
	var reportR *os.File
	var file *outFile
	if cmd.OutputFile != "" {
		var err error
		if file, err = l.openOutputFile(&cmd, cred); err != nil {
			return nil, &StartError{Program: cmd.Name, Op: OpOpenOutput, Err: err}
		}
	}
	// The child gets the *os.File write ends, never an io.Writer: os/exec
	// would copy through its own goroutines and Wait would block until a
	// grandchild holding the pipe exits. The read ends go to the output mux.
	outR, outW, err := outputPipe()
	if err != nil {
		if file != nil {
			file.close()
		}
		return nil, &StartError{Program: cmd.Name, Op: OpOpenOutput, Err: fmt.Errorf("creating stdout pipe: %w", err)}
	}
	errR, errW, err := outputPipe()
	if err != nil {
		_ = unix.Close(outR)
		_ = outW.Close()
		if file != nil {
			file.close()
		}
		return nil, &StartError{Program: cmd.Name, Op: OpOpenOutput, Err: fmt.Errorf("creating stderr pipe: %w", err)}
	}
	c.Stdout, c.Stderr = outW, errW
	childEnds = append(childEnds, outW, errW)
	var parentEnds []*os.File // besides the output read ends
	closeParent := func() {
		closeAll(parentEnds)
		_ = unix.Close(outR)
		_ = unix.Close(errR)
		if file != nil {
			file.close()
		}
	}

	shim := len(cmd.CgroupProcs) > 0 && (!canMoveThread(&cmd) || l.noThreadMove.Load())
	if shim {
		spec, err := json.Marshal(newShimSpec(&cmd, path, cred))
		if err != nil {
			closeAll(childEnds)
			closeParent()
			return nil, &StartError{Program: cmd.Name, Op: OpExec, Err: fmt.Errorf("encoding shim instructions: %w", err)}
		}
		var reportW *os.File
		if reportR, reportW, err = os.Pipe(); err != nil {
			closeAll(childEnds)
			closeParent()
			return nil, &StartError{Program: cmd.Name, Op: OpExec, Err: fmt.Errorf("creating shim report pipe: %w", err)}
		}
		childEnds = append(childEnds, reportW)
		c.Path = l.shimPath
		c.Args = []string{l.shimPath, shimMarker, string(spec)}
		c.Dir = ""
		c.SysProcAttr.Credential = nil // the shim drops privileges after joining
		c.ExtraFiles = []*os.File{reportW}
	}

	// Hold off the reaper from before the fork until the child is
	// registered, so it can never take this child for an orphan.
	l.reapMu.RLock()
	if len(cmd.CgroupProcs) > 0 && !shim {
		err = startInCgroups(c, cmd.CgroupProcs, cmd.CgroupLeave)
	} else {
		err = c.Start()
	}
	if err == nil {
		l.register(c.Process.Pid)
	}
	l.reapMu.RUnlock()
	closeAll(childEnds)
	if errors.Is(err, errThreadMove) {
		// This kernel will not move single threads: use the shim from now on.
		closeParent()
		l.noThreadMove.Store(true)
		return l.Start(cmd)
	}
	if err != nil {
		closeParent()
		if reportR != nil {
			_ = reportR.Close()
		}
		return nil, l.startError(&cmd, c, err)
	}
	pid := c.Process.Pid

	if shim {
		serr := readShimReport(cmd.Name, reportR)
		_ = reportR.Close()
		if serr != nil {
			// The shim exits right after reporting; reap it here so that the
			// failure stays synchronous and nothing is left behind.
			_ = c.Wait()
			if pidfd >= 0 {
				_ = unix.Close(pidfd)
			}
			l.unregister(pid)
			closeParent()
			return nil, serr
		}
	}

	if l.oomAdj != nil {
		// After the program's exec: written before, it would be undone by
		// nothing, but the shim and the thread join write nothing there.
		// Failure is not fatal: the program runs with respawnd's value.
		_ = pseudofs.Write("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", strconv.AppendInt(nil, int64(*l.oomAdj), 10))
	}
	p := &Process{
		pid:       pid,
		startTime: time.Now(),
		done:      make(chan struct{}),
		outDone:   make(chan struct{}),
	}
	killGroup := cmd.KillGroupOnExit
	switch {
	case pidfd < 0:
		go l.wait(p, c, killGroup)
	default:
		// Neither the exec.Cmd nor its os.Process is kept: the exit is
		// waited for and collected through pidfd, and the os.Process holds
		// a duplicate of it. Every descriptor respawnd holds is copied by
		// each fork and closed by each exec of every restart: with a
		// thousand programs, a thousand duplicates cost every restart
		// about a millisecond.
		_ = c.Process.Release()
		exited := func() { l.exited(p, pidfd, killGroup) }
		if err := l.waiter.add(pidfd, exited); err != nil {
			l.logger.Debug("child waiter unavailable, waiting with a thread", "pid", pid, "err", err)
			go func() {
				waitPidfdBlocking(pidfd)
				exited()
			}()
		}
	}
	sink := &outputSink{name: cmd.Name, file: file, stamps: cmd.OutputTimestamps, done: p.outDone}
	if l.tailLines > 0 {
		p.tailLines, p.tailBytes = int32(l.tailLines), int32(l.tailBytes)
		sink.proc = p
	}
	if err := l.out.add(sink, outR, errR); err != nil {
		// One goroutine per pipe instead: output is never lost.
		l.logger.Debug("output mux unavailable, copying with goroutines", "program", cmd.Name, "err", err)
		for _, op := range l.pipes(sink, outR, errR) {
			go l.copyPipe(op)
		}
	}
	return p, nil
}

// outputPipe makes a pipe for a program's stdout or stderr: the write end,
// blocking as programs expect, for the child; the read end, non-blocking
// and close-on-exec, for the output mux.
func outputPipe() (r int, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return -1, nil, err
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return -1, nil, err
	}
	return fds[0], os.NewFile(uintptr(fds[1]), "|1"), nil
}

// exited finishes a child started with a pidfd once it has exited (a
// zombie, not yet reaped): its group is given its linger time if asked (on
// a goroutine of its own, which only stops do), then reaped.
func (l *Launcher) exited(p *Process, pidfd int, killGroup bool) {
	if d := p.linger.Load(); d != 0 {
		go func() {
			l.lingerGroup(p.pid, time.Unix(0, d))
			l.reap(p, pidfd, killGroup)
		}()
		return
	}
	l.reap(p, pidfd, killGroup)
}

// reap kills what is left of the exited leader's group (when asked),
// collects its exit status through its pidfd, fills p.exit and closes
// p.done. It is the only one to reap the child.
func (l *Launcher) reap(p *Process, pidfd int, killGroup bool) {
	p.sigMu.Lock()
	if killGroup {
		// ESRCH cannot happen while the leader is a zombie in the group;
		// anything else is not worth failing the exit over.
		_ = unix.Kill(-p.pid, unix.SIGKILL)
	}
	st, err := reapPidfd(pidfd)
	p.reaped = true
	p.sigMu.Unlock()
	l.unregister(p.pid)
	if err != nil {
		// Only possible if something else reaped our child.
		l.logger.Error("collecting exit status failed", "pid", p.pid, "err", err)
		st = ExitStatus{Time: time.Now(), Code: -1}
	}
	p.exit = st
	close(p.done)
}

// wait is reap for a child started without a pidfd (kernels before 5.3):
// it runs in its own goroutine, one per process, blocking a thread in
// waitid until the exit.
func (l *Launcher) wait(p *Process, c *exec.Cmd, killGroup bool) {
	// Wait for the exit without reaping: until the zombie is reaped, its pid
	// (and so the process group id) cannot be reused, so Signal may use it.
	waitExited(p.pid)
	if d := p.linger.Load(); d != 0 {
		l.lingerGroup(p.pid, time.Unix(0, d))
	}
	p.sigMu.Lock()
	if killGroup {
		_ = unix.Kill(-p.pid, unix.SIGKILL)
	}
	// rusage's maxrss is not reported: a child forked with CLONE_VM (as
	// os/exec does) is charged the parent's peak until it execs, so the
	// figure would be respawnd's, not the program's. The program's cgroup
	// has the real peak.
	err := c.Wait()
	st := ExitStatus{Time: time.Now(), Code: -1}
	if ps := c.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				st.Code = ws.ExitStatus()
			case ws.Signaled():
				st.Signaled = true
				st.Signal = ws.Signal()
				st.Core = ws.CoreDump()
			}
		}
	} else {
		// Only possible if something else reaped our child.
		l.logger.Error("collecting exit status failed", "pid", p.pid, "err", err)
	}
	p.reaped = true
	p.sigMu.Unlock()
	l.unregister(p.pid)
	p.exit = st
	close(p.done)
}

// waitExited blocks until the child pid has exited, without reaping it.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Signal sends sig to the whole process group of the program.
//
// The group id is the leader's pid. It is used only while the leader is not
// yet reaped: a zombie still holds its pid, so the id cannot name anybody
// else. Once the leader is reaped Signal sends nothing and returns
// ErrProcessDone, because a group left without members frees the id for
// reuse. To be rid of group members that outlive the leader, set
// Command.KillGroupOnExit.
func (p *Process) Signal(sig syscall.Signal) error {
	p.sigMu.RLock()
	defer p.sigMu.RUnlock()
	if p.reaped {
		return ErrProcessDone
	}
	if err := unix.Kill(-p.pid, sig); err != nil {
		return fmt.Errorf("sending %v to process group %d: %w", sig, p.pid, err)
	}
	return nil
}

// nullFile returns /dev/null opened once for every child's stdin, or nil
// (os/exec then opens it itself) if that failed.
func (l *Launcher) nullFile() *os.File {
	l.devNullOnce.Do(func() {
		l.devNull, _ = os.Open(os.DevNull)
	})
	return l.devNull
}

func (l *Launcher) register(pid int) {
	l.childMu.Lock()
	l.children[pid] = struct{}{}
	l.childMu.Unlock()
}

// unregister forgets a reaped child and wakes the reaper, which may have
// stopped at this child's zombie.
func (l *Launcher) unregister(pid int) {
	l.childMu.Lock()
	delete(l.children, pid)
	l.childMu.Unlock()
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

func (l *Launcher) supervised(pid int) bool {
	l.childMu.Lock()
	_, ok := l.children[pid]
	l.childMu.Unlock()
	return ok
}

// startError attributes a failed fork/exec to a step. The runtime reports
// only the errno of whichever step failed in the child (clone into the
// cgroup, credentials, chdir, execve), so the step is told apart after the
// fact, on the failure path only.
func (l *Launcher) startError(cmd *Command, c *exec.Cmd, err error) *StartError {
	se := &StartError{Program: cmd.Name, Op: OpExec, Err: err}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return se
	}
	if cmd.CgroupFD > 0 && cgroupFailure(cmd.CgroupFD, errno) {
		se.Op = OpJoinCgroup
		se.Err = fmt.Errorf("cloning into cgroup fd %d: %w", cmd.CgroupFD, errno)
		return se
	}
	if c.SysProcAttr.Credential != nil && (errno == unix.EPERM || errno == unix.EINVAL) {
		se.Op = OpSetCredentials
		return se
	}
	if c.Dir != "" && (errno == unix.ENOENT || errno == unix.ENOTDIR || errno == unix.EACCES || errno == unix.ELOOP) {
		fi, serr := os.Stat(c.Dir)
		switch {
		case serr != nil:
			se.Op, se.Err = OpChdir, serr
		case !fi.IsDir():
			se.Op, se.Err = OpChdir, &os.PathError{Op: "chdir", Path: c.Dir, Err: unix.ENOTDIR}
		}
	}
	return se
}

// cgroupFailure reports whether a fork with CLONE_INTO_CGROUP failed
// because of the cgroup: the fd is no cgroup v2 directory, or clone3
// returned an errno that only the cgroup can cause (EBUSY: the cgroup has
// controllers enabled for its children; EOPNOTSUPP: a threaded or invalid
// domain; EAGAIN: its pids.max).
func cgroupFailure(fd int, errno syscall.Errno) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return true
	}
	switch errno {
	case unix.EBADF, unix.EBUSY, unix.EOPNOTSUPP, unix.EAGAIN, unix.ENODEV:
		return true
	}
	return false
}
