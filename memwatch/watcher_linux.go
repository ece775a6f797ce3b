//go:build linux

package memwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/epoll"
)

// Keys in the epoll set: the timer and the poke eventfd have their own;
// an entry's descriptors have its id shifted left by two, or'ed with the
// source. Entry ids start at 1 and are never reused, so a late event of a
// removed entry finds nothing.
const (
	keyTimer = 0
	keyPoke  = 1

	srcEvents = 1 // v2 memory.events, EPOLLPRI on change
	srcPSI    = 2 // v2 memory.pressure trigger, EPOLLPRI when it fires
	srcThresh = 3 // v1 eventfd of usage thresholds
)

// psiTrigger asks the kernel to signal when some of the group's tasks were
// stalled on memory for 150 ms within a 1 s window (Documentation/
// accounting/psi.rst, "Userspace monitors"): a sign the group is at its
// memory.high or memory.max and reclaiming, so its measure may be near a
// threshold. As root the window may be anything from 500 ms to 10 s.
const psiTrigger = "some 150000 1000000"

const (
	// followEvery and followChecks shape the re-checks after a kernel
	// signal that found the usage near Spec.Above (at most lead below it)
	// and the measure still below it: the usage counts inactive page cache
	// that the working set does not, and v1 thresholds fire on the usage,
	// late (see lead), so one is also registered lead below the line. The
	// program is then checked every 25 ms for up to a second (a usage read
	// each, memory.stat once the usage reaches the line), until the
	// measure crosses or the usage leaves the near zone. A program sitting
	// at its limit with a large page cache costs nothing extra, since it
	// sends no new signal.
	followEvery  = 25 * time.Millisecond
	followChecks = 40
	// minSignalGap keeps checks driven by signals of one program at least
	// this far apart: memory.events of a group held at memory.high changes
	// up to 100 times a second (cgroup_file_notify's own rate limit).
	minSignalGap = 10 * time.Millisecond
	// readBufSize holds memory.stat (1–3 KiB) with room to spare.
	readBufSize = 16 << 10
)

// Watcher measures many programs' memory against their Specs from one
// goroutine (Run) and one epoll set, which holds every program's kernel
// signals: on cgroup v2 its memory.events (EPOLLPRI when a counter such as
// high moves) and a PSI trigger on its memory.pressure; on v1 an eventfd
// registered through cgroup.event_control for usage thresholds at
// Spec.Above and Spec.WarnAbove (and a little below each, see lead). A
// signal only wakes a check; every check reads the measure, and every
// program is also measured each SampleInterval, so nothing depends on a
// signal arriving. Where the kernel offers no signal (PSI off, v1 events
// unavailable, an adopted process with a Sample function) the program is
// sampled only.
//
// On v2 memory.events changes when the group passes memory.high (among
// others): a memory.high at or below Spec.Above makes the crossing an
// event, and PSI reports stalls, which a group below its limits does not
// have. Without either the crossing is seen by sampling.
//
// A check reads one small file, the usage, and reads memory.stat only when
// the usage is at or above a threshold or the program's state may change
// (every measure is at most the usage). A program in a cgroup costs a few
// descriptors: the usage file, memory.stat once it has been needed, and
// its signals (v2: memory.events and memory.pressure; v1: one eventfd),
// and less than a KiB of heap.
//
// Add, Update, the remove functions and Run are safe for concurrent use.
// Run must be called once; when it returns it closes every descriptor,
// New's own included (an epoll set, a timerfd, an eventfd).
type Watcher struct {
	cfg   Config
	log   *slog.Logger
	set   *epoll.Set
	timer int // timerfd waking Run for the next tick or due check
	poke  int // eventfd: Add and Update ask for a prompt check

	running atomic.Bool

	// mu guards everything below. Run holds it while it handles a batch of
	// signals and checks, so that a descriptor is never closed while the
	// loop uses it.
	mu        sync.Mutex
	stopped   bool
	nextID    uint64
	byID      map[uint64]*entry
	byProgram map[string]*entry
	// woken lists entries to check in the next round; due holds entries
	// with a check due before the next tick.
	woken  []*entry
	due    map[*entry]struct{}
	tickAt time.Time
	buf    []byte
	// out collects a round's events. Only Run's goroutine touches it (it
	// runs every check), so it is read after mu is released.
	out []Event
	// Said once: a kernel signal unavailable on this host.
	warnedPSI, warnedEvents, warnedThresh bool
}

// entry is one watched program instance.
type entry struct {
	id      uint64
	program string
	target  Target
	judge   judge

	usageFD, statFD, eventsFD, psiFD, threshFD int // -1 when not open
	thresholds                                 [4]uint64

	dueAt     time.Time // zero when no check is due before the tick
	lastCheck time.Time
	follow    uint8 // follow-up checks left in the current series
	signalled bool  // a kernel signal arrived since the last check
	queued    bool  // in w.woken
	gone      bool  // the cgroup was removed; nothing is open any more
	failing   bool  // the last check failed (logged once per streak)
}

// New makes a Watcher; Run starts it.
func New(cfg Config) (*Watcher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	set, err := epoll.New("memwatch")
	if err != nil {
		return nil, err
	}
	timer, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		_ = set.Close()
		return nil, fmt.Errorf("creating memory watcher timer: %w", err)
	}
	poke, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = set.Close()
		_ = unix.Close(timer)
		return nil, fmt.Errorf("creating memory watcher eventfd: %w", err)
	}
	w := &Watcher{
		cfg: cfg, log: cfg.Logger.With("component", "memwatch"),
		set: set, timer: timer, poke: poke,
		byID: map[uint64]*entry{}, byProgram: map[string]*entry{}, due: map[*entry]struct{}{},
		buf: make([]byte, readBufSize),
	}
	for _, r := range []struct {
		fd  int
		key uint64
	}{{timer, keyTimer}, {poke, keyPoke}} {
		if err := set.Add(r.fd, unix.EPOLLIN, r.key); err != nil {
			w.closeOwn()
			return nil, fmt.Errorf("creating memory watcher: %w", err)
		}
	}
	return w, nil
}

func (w *Watcher) closeOwn() {
	_ = w.set.Close()
	_ = unix.Close(w.timer)
	_ = unix.Close(w.poke)
}

// Add starts watching program's memory in t against s. The first check
// comes at once, then at least every SampleInterval. Adding a program that
// is already watched replaces its watch (a new instance: the Recycle is
// re-armed), and the earlier remove function then does nothing. remove
// stops the watch and closes its descriptors; it may be called more than
// once. An unusable kernel signal is not an error: the program is sampled
// instead, and a warning is logged once per kind of signal.
func (w *Watcher) Add(program string, t Target, s Spec) (remove func(), err error) {
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("watching memory of %q: %w", program, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("watching memory of %q: %w", program, err)
	}
	e := &entry{program: program, target: t, usageFD: -1, statFD: -1, eventsFD: -1, psiFD: -1, threshFD: -1}
	e.judge.spec = s
	if t.Sample == nil {
		path := filepath.Join(t.Dir, usageFile(t.V2))
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("watching memory of %q: %w", program, &os.PathError{Op: "open", Path: path, Err: err})
		}
		e.usageFD = fd
		var b [32]byte
		if _, err := readUsage(fd, b[:], path); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("watching memory of %q: %w", program, err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		e.closeAll(w.set)
		return nil, ErrStopped
	}
	w.nextID++
	e.id = w.nextID
	var sources []string
	if t.Sample == nil && !w.cfg.SampleOnly {
		if t.V2 {
			sources = w.armV2(e)
		} else if w.armV1(e) {
			sources = append(sources, "usage_threshold")
		}
	}
	if old := w.byProgram[program]; old != nil {
		w.drop(old)
	}
	w.byID[e.id], w.byProgram[program] = e, e
	w.wake(e)
	w.log.Debug("watching memory", "program", program, "cgroup", t.Dir, "signals", sources,
		"above", s.Above, "for", s.For, "measure", s.Measure.String(), "warn_above", s.WarnAbove)
	return func() { w.remove(e) }, nil
}

// Update replaces the Spec of a watched program, for example on reload. A
// changed threshold or measure re-arms the Recycle; see Spec.
func (w *Watcher) Update(program string, s Spec) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("updating memory watch of %q: %w", program, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return ErrStopped
	}
	e := w.byProgram[program]
	if e == nil {
		return fmt.Errorf("updating memory watch of %q: %w", program, ErrNotWatched)
	}
	e.judge.setSpec(s)
	if e.threshFD >= 0 && e.thresholds != thresholdsOf(s) {
		w.detach(&e.threshFD)
		w.armV1(e)
	}
	w.wake(e)
	return nil
}

// wake queues e for a check in the next round and pokes Run; w.mu is held.
func (w *Watcher) wake(e *entry) {
	if !e.queued {
		e.queued = true
		w.woken = append(w.woken, e)
	}
	one := [8]byte{1}
	_, _ = unix.Write(w.poke, one[:]) // EAGAIN: a poke is pending already
}

// armV2 opens e's memory.events and memory.pressure and adds them to the
// set; it returns the signals in use. w.mu is held.
func (w *Watcher) armV2(e *entry) []string {
	var sources []string
	path := filepath.Join(e.target.Dir, "memory.events")
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		// Edge-triggered: each change of the file wakes one check, and the
		// file need not be read to re-arm (a kernfs file polls readable
		// with EPOLLPRI until read, see kernfs_generic_poll).
		if err = w.set.Add(fd, unix.EPOLLPRI|unix.EPOLLET, e.id<<2|srcEvents); err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		if !w.warnedEvents {
			w.warnedEvents = true
			w.log.Warn("memory.events signals unavailable, sampling instead", "cgroup", e.target.Dir, "err", err)
		}
	} else {
		e.eventsFD = fd
		sources = append(sources, "memory.events")
	}
	// PSI: ENOENT when the kernel has it compiled out or off (psi=0, or
	// the default of kernels built with CONFIG_PSI_DEFAULT_DISABLED), or
	// the group's cgroup.pressure is 0; EOPNOTSUPP from the write when PSI
	// is off at run time.
	path = filepath.Join(e.target.Dir, "memory.pressure")
	fd, err = unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		// With the terminating NUL: psi_write (the /proc/pressure files)
		// overwrites the last byte written with one; cgroupfs accepts it.
		if _, err = unix.Write(fd, []byte(psiTrigger+"\x00")); err == nil {
			err = w.set.Add(fd, unix.EPOLLPRI|unix.EPOLLET, e.id<<2|srcPSI)
		}
		if err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		if !w.warnedPSI {
			w.warnedPSI = true
			w.log.Warn("memory pressure (PSI) triggers unavailable, relying on memory.events and sampling", "file", path, "err", err)
		}
		return sources
	}
	e.psiFD = fd
	return append(sources, "psi")
}

// lead is how far below a threshold the watcher starts to look closely:
// a v1 threshold is registered there too, and a signalled check that finds
// the usage this near starts the follow-up re-checks. The kernel checks v1
// thresholds only every 128 pages charged or uncharged on a CPU
// (memcg1_check_events, THRESHOLDS_EVENTS_TARGET), so a program that
// stops growing within 512 KiB of the line may never signal it; one that
// passes the line lead below it signals in time for the follow-ups to see
// the crossing. 4 MiB, or an eighth of a small threshold.
func lead(threshold uint64) uint64 {
	return min(4<<20, threshold/8)
}

// thresholdsOf returns the usage thresholds registered on v1 for s: each
// threshold and the point lead below it, without zeros or repeats.
func thresholdsOf(s Spec) [4]uint64 {
	var t [4]uint64
	n := 0
	for _, v := range []uint64{s.Above - lead(s.Above), s.Above, s.WarnAbove - lead(s.WarnAbove), s.WarnAbove} {
		if v != 0 && !slices.Contains(t[:n], v) {
			t[n] = v
			n++
		}
	}
	return t
}

// armV1 registers usage thresholds (thresholdsOf) on one eventfd
// (cgroup-v1/memory.rst, "Memory thresholds"): the kernel signals it when
// memory.usage_in_bytes crosses any of them, in either direction. The
// registrations last as long as the eventfd; closing it removes them. w.mu
// is held.
func (w *Watcher) armV1(e *entry) bool {
	ts := thresholdsOf(e.judge.spec)
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err == nil {
		for _, t := range ts {
			if t == 0 {
				break
			}
			reg := strconv.Itoa(efd) + " " + strconv.Itoa(e.usageFD) + " " + strconv.FormatUint(t, 10)
			if err = writeFile(filepath.Join(e.target.Dir, "cgroup.event_control"), reg); err != nil {
				break
			}
		}
		if err == nil {
			err = w.set.Add(efd, unix.EPOLLIN, e.id<<2|srcThresh)
		}
		if err != nil {
			_ = unix.Close(efd)
		}
	}
	if err != nil {
		if !w.warnedThresh {
			w.warnedThresh = true
			w.log.Warn("cgroup v1 usage thresholds unavailable, sampling instead", "cgroup", e.target.Dir, "err", err)
		}
		return false
	}
	e.threshFD, e.thresholds = efd, ts
	return true
}

func writeFile(path, s string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(s)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// detach takes the descriptor *fd out of the set and closes it.
func (w *Watcher) detach(fd *int) {
	if *fd < 0 {
		return
	}
	_ = w.set.Del(*fd) // ENOENT for descriptors never added (usage, stat)
	_ = unix.Close(*fd)
	*fd = -1
}

// closeAll closes every descriptor of e; set is the epoll set they may be
// in.
func (e *entry) closeAll(set *epoll.Set) {
	for _, fd := range []*int{&e.eventsFD, &e.psiFD, &e.threshFD, &e.statFD, &e.usageFD} {
		if *fd >= 0 {
			_ = set.Del(*fd)
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

// remove ends e's watch if it is still the current one.
func (w *Watcher) remove(e *entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byID[e.id] != e {
		return
	}
	w.drop(e)
}

// drop forgets e and closes its descriptors; w.mu is held.
func (w *Watcher) drop(e *entry) {
	delete(w.byID, e.id)
	if w.byProgram[e.program] == e {
		delete(w.byProgram, e.program)
	}
	delete(w.due, e)
	e.closeAll(w.set)
	e.gone = true
}

// Run watches until ctx is done, then closes every descriptor and returns
// nil. Later calls of Add and Update return ErrStopped.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("memwatch: Run called twice")
	}
	defer w.shutdown()
	stop := context.AfterFunc(ctx, func() { _ = w.set.Wake() })
	defer stop()
	w.mu.Lock()
	w.tickAt = w.cfg.Now().Add(w.cfg.SampleInterval)
	w.armTimer(w.cfg.Now())
	w.mu.Unlock()
	// A buffer of 128 events takes a burst of signals from many programs
	// in few epoll_wait calls; more simply wait for the next call.
	events := make([]unix.EpollEvent, 128)
	err := w.set.Wait(events, w.handle, func() bool { return false })
	if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("watching memory: %w", err)
}

// shutdown ends every watch and closes the watcher's descriptors.
func (w *Watcher) shutdown() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for _, e := range w.byID {
		w.drop(e)
	}
	w.woken = nil
	w.closeOwn()
}

// handle takes one batch of ready descriptors, runs the checks due and
// hands the events to Notify.
func (w *Watcher) handle(ready []unix.EpollEvent) {
	w.mu.Lock()
	var b [8]byte
	for _, ev := range ready {
		k := epoll.Key(ev)
		switch k {
		case keyTimer:
			_, _ = unix.Read(w.timer, b[:])
			continue
		case keyPoke:
			_, _ = unix.Read(w.poke, b[:])
			continue
		}
		e := w.byID[k>>2]
		if e == nil {
			continue // removed since the kernel queued the event
		}
		switch k & 3 {
		case srcThresh:
			_, _ = unix.Read(e.threshFD, b[:])
		case srcPSI:
			if ev.Events&unix.EPOLLERR != 0 {
				// No trigger any more, or the cgroup is being removed
				// (kernfs_fop_poll); sampling goes on.
				w.detach(&e.psiFD)
				continue
			}
		}
		e.signalled = true
		if !e.queued {
			e.queued = true
			w.woken = append(w.woken, e)
		}
	}
	now := w.cfg.Now()
	w.round(now)
	w.armTimer(now)
	w.mu.Unlock()
	for _, ev := range w.out {
		w.cfg.Notify(ev)
	}
	clear(w.out) // drop the program names
	w.out = w.out[:0]
}

// round runs the checks due at now: every program at a tick, otherwise
// the woken ones and those whose due time has come. w.mu is held.
func (w *Watcher) round(now time.Time) {
	if !now.Before(w.tickAt) {
		w.tickAt = now.Add(w.cfg.SampleInterval)
		for _, e := range w.byID {
			w.check(e, now)
		}
		for _, e := range w.woken {
			e.queued = false
		}
		w.woken = w.woken[:0]
		return
	}
	woken := w.woken
	for _, e := range woken {
		e.queued = false
		if w.byID[e.id] != e {
			continue
		}
		if gap := now.Sub(e.lastCheck); e.signalled && gap < minSignalGap {
			w.setDue(e, e.lastCheck.Add(minSignalGap))
			continue
		}
		w.check(e, now)
	}
	clear(woken)
	w.woken = woken[:0]
	for e := range w.due {
		if !now.Before(e.dueAt) {
			w.check(e, now)
		}
	}
}

// setDue makes a check of e due at t unless one is due earlier.
func (w *Watcher) setDue(e *entry, t time.Time) {
	if _, ok := w.due[e]; ok && e.dueAt.Before(t) {
		return
	}
	e.dueAt = t
	w.due[e] = struct{}{}
}

// armTimer sets the timer for the next tick or due check. w.mu is held.
// With nothing watched it disarms the timer: a respawnd whose programs set
// no memory thresholds is not woken every SampleInterval for nothing. Add
// wakes the loop, whose round then ticks at once.
func (w *Watcher) armTimer(now time.Time) {
	if len(w.byID) == 0 {
		w.tickAt = time.Time{}
		var off unix.ItimerSpec
		if err := unix.TimerfdSettime(w.timer, 0, &off, nil); err != nil {
			w.log.Error("disarming memory watcher timer", "err", err)
		}
		return
	}
	next := w.tickAt
	for e := range w.due {
		if e.dueAt.Before(next) {
			next = e.dueAt
		}
	}
	d := max(next.Sub(now), time.Microsecond) // a zero value would disarm it
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
	if err := unix.TimerfdSettime(w.timer, 0, &spec, nil); err != nil {
		// Cannot happen with a valid timerfd and value; the ticks of the
		// next handled signal would be late, so say so.
		w.log.Error("arming memory watcher timer", "err", err)
	}
}

// check measures e once, feeds its judge and schedules what follows. w.mu
// is held.
func (w *Watcher) check(e *entry, now time.Time) {
	signalled := e.signalled
	e.signalled = false
	e.lastCheck = now
	delete(w.due, e)
	e.dueAt = time.Time{}
	if e.gone {
		return
	}
	v, usage, err := w.measure(e)
	if err != nil {
		w.failed(e, err)
		return
	}
	if e.failing {
		e.failing = false
		w.log.Info("measuring memory again", "program", e.program)
	}
	n := len(w.out)
	w.out = e.judge.observe(now, v, w.out)
	for i := n; i < len(w.out); i++ {
		ev := &w.out[i]
		ev.Program = e.program
		w.log.Info("memory "+ev.Kind.String(), "program", e.program, "measure", ev.Measure.String(),
			"value", ev.Value, "threshold", ev.Threshold, "since", ev.Since)
	}
	above := e.judge.spec.Above
	switch {
	case above == 0 || v >= above || usage < above-lead(above) || e.target.Sample != nil:
		e.follow = 0
	case signalled:
		e.follow = followChecks
	case e.follow > 0:
		e.follow--
	}
	if t, ok := e.judge.due(); ok {
		w.setDue(e, t)
	}
	if e.follow > 0 {
		w.setDue(e, now.Add(followEvery))
	}
}

// failed handles a check that could not measure e: a removed cgroup ends
// its signals, anything else is logged once per streak.
func (w *Watcher) failed(e *entry, err error) {
	if e.target.Sample == nil && (errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist)) {
		// Removed: kernfs answers ENODEV on descriptors opened before.
		w.log.Debug("cgroup gone, no longer measured", "program", e.program, "cgroup", e.target.Dir)
		delete(w.due, e)
		e.closeAll(w.set)
		e.gone = true
		return
	}
	if !e.failing {
		e.failing = true
		w.log.Warn("measuring memory", "program", e.program, "err", err)
		return
	}
	w.log.Debug("measuring memory", "program", e.program, "err", err)
}

// measure returns e's measure and its usage, the bound of every measure
// (for a Sample function, both are its value). memory.stat is read only
// when the usage alone cannot settle the check. w.mu is held.
func (w *Watcher) measure(e *entry) (v, usage uint64, err error) {
	if f := e.target.Sample; f != nil {
		v, err := f()
		if err != nil {
			return 0, 0, fmt.Errorf("sampling: %w", err)
		}
		return v, v, nil
	}
	usage, err = readUsage(e.usageFD, w.buf[:32], filepath.Join(e.target.Dir, usageFile(e.target.V2)))
	if err != nil {
		return 0, 0, err
	}
	if e.judge.quiet(usage) {
		// Every measure is at most the usage: judged with the usage,
		// nothing changes, and no file more is read.
		return usage, usage, nil
	}
	path := filepath.Join(e.target.Dir, "memory.stat")
	if e.statFD < 0 {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, 0, &os.PathError{Op: "open", Path: path, Err: err}
		}
		e.statFD = fd
	}
	b, err := pread(e.statFD, w.buf, path)
	if err != nil {
		return 0, 0, err
	}
	st, err := parseMemoryStat(b, e.target.V2)
	if err != nil {
		return 0, 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return st.sample(usage).Value(e.judge.spec.Measure), usage, nil
}

// readUsage reads a usage file through its open descriptor.
func readUsage(fd int, buf []byte, path string) (uint64, error) {
	b, err := pread(fd, buf, path)
	if err != nil {
		return 0, err
	}
	v, err := parseUsage(b)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return v, nil
}

// pread reads a cgroup file from its start. One call reads it all: a
// seq_file read fills the buffer until the buffer or the file ends
// (seq_read_iter), so a short read is the end; a full buffer means the
// file was larger than expected.
func pread(fd int, buf []byte, path string) ([]byte, error) {
	for {
		n, err := unix.Pread(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == len(buf) {
			return nil, fmt.Errorf("reading %s: larger than %d bytes", path, len(buf))
		}
		return buf[:n], nil
	}
}
