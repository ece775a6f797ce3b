package restart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

// lingerPoll is the pause between two looks at a lingering process group.
const lingerPoll = 20 * time.Millisecond

// Caps for the /proc files read here, above what they can hold: a stat
// line is well under a page, and a thread's children file lists at most
// pid_max (4,194,304) pids.
const (
	maxProcStat = 64 << 10
	maxChildren = 32 << 20
)

// lingerGroup waits, with the exited leader pgid still unreaped, until no
// other live process is in its process group or deadline passes.
func (l *Launcher) lingerGroup(pgid int, deadline time.Time) {
	for time.Now().Before(deadline) {
		if !census.hasMembers(pgid, time.Now()) {
			return
		}
		time.Sleep(min(lingerPoll, time.Until(deadline)))
	}
}

// census is the look at respawnd's children that every lingering group
// shares. Children are the process's, not one Launcher's, so it is too.
var census groupCensus

// groupCensus tells which process groups have live members, from one look
// at respawnd's children shared by every group that waits: when a thousand
// programs stop at once (respawnd's own stop, a reload that removes them),
// a look per group would read a thousand stat files each, a million in all.
type groupCensus struct {
	mu      sync.Mutex
	started time.Time    // when the last look began
	live    map[int]bool // process groups with a live member other than their leader
	looks   atomic.Uint64
}

// hasMembers reports whether a live process other than pgid itself is in
// process group pgid, from a look begun at since or later: one begun
// earlier may have missed a member forked since, so it is taken again.
// Once the leader has exited, its children belong to respawnd (the
// subreaper), so respawnd's own children are enough to look at; where the
// kernel does not list children, every process is.
func (c *groupCensus) hasMembers(pgid int, since time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.Before(since) { // also before the first look: started is zero
		c.look()
	}
	return c.live[pgid]
}

// look takes the census; c.mu is held. A look that cannot list processes
// finds no members: the wait ends, as its deadline would end it.
func (c *groupCensus) look() {
	c.looks.Add(1)
	c.started = time.Now()
	c.live = map[int]bool{}
	pids, err := ownChildren()
	if err != nil {
		if pids, err = allPIDs(); err != nil {
			return
		}
	}
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil && st.pgrp != pid && !st.dead() {
			c.live[st.pgrp] = true
		}
	}
}

// ownChildren lists respawnd's children, from every thread's children file
// (CONFIG_PROC_CHILDREN; proc(5)): a child belongs to the thread that forked
// it, or to whichever thread got it when it was reparented.
func ownChildren() ([]int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, t := range tasks {
		b, err := pseudofs.Read(filepath.Join("/proc/self/task", t.Name(), "children"), maxChildren)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a thread that just exited; a missing feature shows on every thread
			}
			return nil, err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	if len(out) == 0 {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/children"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func allPIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// procStat holds the fields of /proc/PID/stat the launcher needs.
type procStat struct {
	state byte
	ppid  int
	pgrp  int
}

func (s procStat) dead() bool { return s.state == 'Z' || s.state == 'X' || s.state == 'x' }

// readStat reads /proc/PID/stat. The comm (field 2) may hold spaces and
// parentheses, so the fields are counted from the last ')' (proc(5)).
func readStat(pid int) (procStat, error) {
	b, err := pseudofs.Read("/proc/"+strconv.Itoa(pid)+"/stat", maxProcStat)
	if err != nil {
		return procStat{}, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parsing stat of pid %d: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parsing stat of pid %d: too short", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("parsing stat of pid %d: bad ppid or pgrp", pid)
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp}, nil
}

// DrainOrphans ends what is left of the programs' descendants after every
// program has stopped: processes that left their program's process group
// (and had no cgroup to catch them) and were reparented to respawnd. Each
// gets SIGTERM, then SIGKILL once grace has passed; DrainOrphans returns
// when respawnd has no such child left, zombies included (Run, which must
// still be running, reaps them), or ctx is done. Supervised children are
// not touched.
func (l *Launcher) DrainOrphans(ctx context.Context, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	sent := map[syscall.Signal]map[int]bool{syscall.SIGTERM: {}, syscall.SIGKILL: {}}
	for {
		pids, err := ownChildren()
		if err != nil {
			return fmt.Errorf("listing respawnd's children: %w", err)
		}
		sig := syscall.SIGTERM
		if !time.Now().Before(deadline) {
			sig = syscall.SIGKILL
		}
		left := 0
		for _, pid := range pids {
			if l.supervised(pid) {
				continue
			}
			st, err := readStat(pid)
			if err != nil {
				continue // reaped since the listing
			}
			left++ // a zombie counts until Run has reaped it
			if st.dead() {
				continue
			}
			if !sent[sig][pid] {
				sent[sig][pid] = true
				signalChild(pid, sig)
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lingerPoll):
		}
	}
}

// signalChild signals pid only while it is still respawnd's child: through
// a pidfd opened before the parent is checked, so a pid reused after the
// listing is never signalled.
func signalChild(pid int, sig syscall.Signal) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if st, err := readStat(pid); err != nil || st.ppid != os.Getpid() {
		return
	}
	_ = unix.PidfdSendSignal(fd, sig, nil, 0)
}
