package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

// Signal sends sig to every process in the group (and any cgroup below it),
// each once. A process is signalled through a pidfd opened before its
// membership is checked, so a pid that was reused after the listing is
// never signalled: the new process is not in the group. Processes that exit
// meanwhile are skipped. A group that no longer exists has nothing to
// signal.
func (g *Group) Signal(sig syscall.Signal) error {
	pids, err := g.PIDs()
	if err != nil {
		if gone(err) {
			return nil
		}
		return err
	}
	var errs []error
	for _, pid := range pids {
		if err := g.signalMember(pid, sig); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// signalMember signals pid if it is still a member of the group.
func (g *Group) signalMember(pid int, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil
	case errors.Is(err, unix.ENOSYS):
		// Before Linux 5.3: check, then kill. The pid could be reused in
		// between only if the process exited and a new one got the same pid
		// within microseconds.
		if in, err := g.contains(pid); err != nil || !in {
			return nil
		}
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling pid %d of cgroup %s: %w", pid, g.path, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("opening pidfd of pid %d of cgroup %s: %w", pid, g.path, err)
	}
	defer unix.Close(fd)
	if in, err := g.contains(pid); err != nil || !in {
		return nil // gone, or moved elsewhere: not ours to signal
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling pid %d of cgroup %s: %w", pid, g.path, err)
	}
	return nil
}

// contains reports whether the live process pid is in the group or below
// it, from /proc/PID/cgroup (cgroups(7): "hierarchy-ID:controllers:path").
func (g *Group) contains(pid int) (bool, error) {
	b, err := pseudofs.Read("/proc/"+strconv.Itoa(pid)+"/cgroup", maxControlFile)
	if err != nil {
		return false, err
	}
	return memberOf(b, g.path, g.v2), nil
}

// memberOf reports whether the /proc/PID/cgroup content places the process
// at path or below it: on the unified line for v2, on the line of the
// memory hierarchy for v1.
func memberOf(procCgroup []byte, path string, v2 bool) bool {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if v2 && (parts[0] != "0" || parts[1] != "") {
			continue
		}
		if !v2 && !slices.Contains(strings.Split(parts[1], ","), "memory") {
			continue
		}
		p := parts[2]
		return p == path || strings.HasPrefix(p, strings.TrimSuffix(path, "/")+"/")
	}
	return false
}

// Drain waits until no process is left in the group. After timeout it
// SIGKILLs what is left (KillAll) and waits a few seconds more; an error
// then says processes are still there. On v2 it waits for the kernel's
// notification that cgroup.events changed; on v1 it polls.
func (g *Group) Drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var w *eventsWatch
	if g.v2 {
		// Without the watch, polling still works; the watch only makes it
		// prompt.
		w, _ = watchEvents(filepath.Join(g.dir, "cgroup.events"))
		defer w.close()
	}
	for {
		empty, err := g.empty()
		if err != nil {
			if gone(err) {
				return nil
			}
			return fmt.Errorf("waiting for cgroup %s to empty: %w", g.path, err)
		}
		if empty {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return g.KillAll()
		}
		w.wait(min(left, drainPoll))
	}
}

// drainPoll is the longest pause between two looks at a draining group.
const drainPoll = 20 * time.Millisecond

// empty reports whether no process is in the group: cgroup.events says
// "populated 0" on v2 (it counts the whole subtree); cgroup.procs of the
// group and its descendants list nobody on v1.
func (g *Group) empty() (bool, error) {
	if !g.v2 {
		pids, err := g.PIDs()
		return len(pids) == 0, err
	}
	b, err := pseudofs.Read(filepath.Join(g.dir, "cgroup.events"), maxControlFile)
	if err != nil {
		return false, err
	}
	populated, ok := eventsField(b, "populated")
	if !ok {
		return false, fmt.Errorf("no populated field in %s/cgroup.events", g.dir)
	}
	return populated == 0, nil
}

// eventsField reads one "key value" line of a cgroup v2 events file.
func eventsField(b []byte, key string) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// eventsWatch is an inotify watch of one cgroup v2 events file: the kernel
// signals IN_MODIFY on it whenever a value changes (cgroup_file_notify).
type eventsWatch struct{ fd int }

func watchEvents(path string) (*eventsWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return &eventsWatch{fd: fd}, nil
}

// wait blocks until the file changes or d passes; a nil watch just sleeps.
func (w *eventsWatch) wait(d time.Duration) {
	if w == nil {
		time.Sleep(d)
		return
	}
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, int(d.Milliseconds())+1); err != nil || n == 0 {
		return
	}
	var buf [4096]byte
	_, _ = unix.Read(w.fd, buf[:]) // drain the queued events
}

func (w *eventsWatch) close() {
	if w != nil {
		_ = unix.Close(w.fd)
	}
}

// Contains reports whether the live process pid is in the cgroup at path
// (a path as Group.Path gives it) or below it. Only root can move a process
// into a program's cgroup, so membership proves the process was started
// there (or put there) by respawnd.
func (m *Manager) Contains(pid int, path string) (bool, error) {
	b, err := pseudofs.Read("/proc/"+strconv.Itoa(pid)+"/cgroup", maxControlFile)
	if err != nil {
		return false, fmt.Errorf("reading cgroups of pid %d: %w", pid, err)
	}
	return memberOf(b, path, m.layout.v2), nil
}

// ResetPeak starts a new peak measurement for the next instance: on v1 it
// resets memory.max_usage_in_bytes; on v2 it opens memory.peak and resets
// the peak seen through that file descriptor (Linux 6.12; older kernels
// keep one peak for the group's whole life, so Peak then reports nothing).
// It is called right before a start.
func (g *Group) ResetPeak() {
	g.peakMu.Lock()
	defer g.peakMu.Unlock()
	if !g.v2 {
		g.peakOK = pseudofs.Write(filepath.Join(g.dir, "memory.max_usage_in_bytes"), []byte("0")) == nil
		return
	}
	if g.peakFile == nil {
		f, err := os.OpenFile(filepath.Join(g.dir, "memory.peak"), os.O_RDWR, 0)
		if err != nil {
			g.peakOK = false
			return
		}
		g.peakFile = f
	}
	_, err := g.peakFile.WriteAt([]byte("reset\n"), 0)
	g.peakOK = err == nil
}

// Peak returns the group's peak memory use in bytes since the last
// ResetPeak; ok is false when it is not known for that span.
func (g *Group) Peak() (peak uint64, ok bool) {
	g.peakMu.Lock()
	defer g.peakMu.Unlock()
	if !g.peakOK {
		return 0, false
	}
	var b []byte
	var err error
	if g.v2 {
		buf := make([]byte, 32)
		var n int
		n, err = g.peakFile.ReadAt(buf, 0)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		b = buf[:n]
	} else {
		b, err = pseudofs.Read(filepath.Join(g.dir, "memory.max_usage_in_bytes"), maxControlFile)
	}
	if err != nil {
		return 0, false
	}
	v, err := parseUint(b)
	return v, err == nil
}

// closePeak releases the memory.peak file descriptor.
func (g *Group) closePeak() {
	g.peakMu.Lock()
	defer g.peakMu.Unlock()
	if g.peakFile != nil {
		_ = g.peakFile.Close()
		g.peakFile = nil
	}
	g.peakOK = false
}
