package memwatch

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// GateConfig configures a Gate. Zero values mean defaults.
type GateConfig struct {
	// ProcRoot is where procfs is mounted; default "/proc".
	ProcRoot string
	// Now and After are the clock; default time.Now and time.After.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Interval is how often the host is read while a program is held;
	// default 500ms.
	Interval time.Duration
	// Window is how long every condition must hold before the head of the
	// queue is released; default 5s.
	Window time.Duration
	// Headroom multiplies a held program's need: MemAvailable must reach
	// need × Headroom; default 1.2.
	Headroom float64
	// MinAvailableFraction is the share of MemTotal that MemAvailable must
	// reach whatever the need; default 0.05, negative turns it off.
	MinAvailableFraction float64
	// MaxPSISome10 is the host's memory "some" avg10 (a percentage) that
	// must not be reached; default 10, negative turns it off.
	MaxPSISome10 float64
	// Logger receives the gate's logs; nil discards them.
	Logger *slog.Logger
}

func (c GateConfig) withDefaults() (GateConfig, error) {
	switch {
	case c.Interval < 0, c.Window < 0:
		return c, fmt.Errorf("%w gate config: negative interval or window", ErrInvalid)
	case c.Headroom < 0:
		return c, fmt.Errorf("%w gate config: negative headroom %g", ErrInvalid, c.Headroom)
	case c.MinAvailableFraction > 1:
		return c, fmt.Errorf("%w gate config: minimum available fraction %g above 1", ErrInvalid, c.MinAvailableFraction)
	}
	if c.ProcRoot == "" {
		c.ProcRoot = procfs.DefaultMountPoint
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Interval == 0 {
		c.Interval = 500 * time.Millisecond
	}
	if c.Window == 0 {
		c.Window = 5 * time.Second
	}
	if c.Headroom == 0 {
		c.Headroom = 1.2
	}
	if c.MinAvailableFraction == 0 {
		c.MinAvailableFraction = 0.05
	}
	if c.MaxPSISome10 == 0 {
		c.MaxPSISome10 = 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Gate holds the restarts of programs killed by a host-wide OOM until the
// host has recovered, and then releases them one at a time in their order.
// The head of the queue (the lowest order, then the earliest Hold) is
// released once, for Window without a break, the host's MemAvailable has
// been at least its need × Headroom and at least MinAvailableFraction of
// MemTotal, and the memory "some" avg10 below MaxPSISome10 (a host without
// PSI meets that condition; the gate says so once in its log). The window
// restarts whenever a condition fails, the head changes, or a program is
// released: each program is judged by the memory left after the one
// before started. A program whose max has passed is released at once,
// whatever its place, with timedOut set.
//
// The host is read every Interval while a program is held, never
// otherwise. Hold, Cancel, Held and Last are safe for concurrent use; Run
// must be called once.
type Gate struct {
	cfg  GateConfig
	log  *slog.Logger
	proc procfs.FS
	// wake nudges Run when the queue changes; a buffer of one keeps a
	// nudge sent while Run is busy.
	wake chan struct{}

	mu sync.Mutex // guards everything below
	// queue is kept in release order: order, then seq.
	queue []*hold
	seq   uint64
	// head is the hold whose window runs since okSince, if okRun.
	head    *hold
	okRun   bool
	okSince time.Time
	last    Host
	// Said once: no PSI on this host; meminfo unreadable (per streak).
	saidNoPSI, readFailing bool
}

type hold struct {
	program  string
	order    int
	seq      uint64
	need     uint64
	since    time.Time
	deadline time.Time // zero: no max
	release  func(timedOut bool)
}

// Holding describes one held program, for status.
type Holding struct {
	Program string
	Order   int
	// Need is the memory the program is expected to take, in bytes.
	Need uint64
	// Since is when it was held; Deadline, when it will be released
	// whatever the host's memory (zero: never).
	Since, Deadline time.Time
}

// NewGate makes a Gate; Run starts it.
func NewGate(cfg GateConfig) (*Gate, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pfs, err := procfs.NewFS(cfg.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("memory gate: %w", err)
	}
	return &Gate{cfg: cfg, log: cfg.Logger.With("component", "memgate"), proc: pfs, wake: make(chan struct{}, 1)}, nil
}

// Hold queues program, whose memory need is need bytes (its peak working
// set, say), at position order (its place in the configuration). release
// is called exactly once, from Run's goroutine, when the program may start:
// timedOut is true when max (if positive) passed first. release must not
// block; it may call Hold and Cancel. Holding a program already held
// replaces its hold, whose release is then never called.
func (g *Gate) Hold(program string, order int, need uint64, max time.Duration, release func(timedOut bool)) {
	now := g.cfg.Now()
	g.mu.Lock()
	g.seq++
	h := &hold{program: program, order: order, seq: g.seq, need: need, since: now, release: release}
	if max > 0 {
		h.deadline = now.Add(max)
	}
	g.queue = slices.DeleteFunc(g.queue, func(x *hold) bool { return x.program == program })
	i, _ := slices.BinarySearchFunc(g.queue, h, compareHolds)
	g.queue = slices.Insert(g.queue, i, h)
	g.mu.Unlock()
	g.log.Info("restart held for memory", "program", program, "need", need, "max", max)
	g.nudge()
}

func compareHolds(a, b *hold) int {
	if c := cmp.Compare(a.order, b.order); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// Cancel forgets program's hold, if any, without calling its release (the
// program was stopped or removed meanwhile).
func (g *Gate) Cancel(program string) {
	g.mu.Lock()
	n := len(g.queue)
	g.queue = slices.DeleteFunc(g.queue, func(x *hold) bool { return x.program == program })
	cancelled := len(g.queue) < n
	g.mu.Unlock()
	if cancelled {
		g.log.Info("held restart cancelled", "program", program)
		g.nudge()
	}
}

func (g *Gate) nudge() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Held lists the held programs in the order they will be released (unless
// a max passes first).
func (g *Gate) Held() []Holding {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Holding, len(g.queue))
	for i, h := range g.queue {
		out[i] = Holding{Program: h.program, Order: h.order, Need: h.need, Since: h.since, Deadline: h.deadline}
	}
	return out
}

// Last returns the host's memory as the gate last read it, the zero Host
// if it never did. The gate reads only while a program is held: for
// current figures, call ReadHost.
func (g *Gate) Last() Host {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// Run reads the host every Interval while a program is held and releases
// programs, until ctx is done; then it returns nil. Programs still held
// stay held (Held lists them).
func (g *Gate) Run(ctx context.Context) error {
	for {
		g.mu.Lock()
		n := len(g.queue)
		var next time.Time
		for _, h := range g.queue {
			if !h.deadline.IsZero() && (next.IsZero() || h.deadline.Before(next)) {
				next = h.deadline
			}
		}
		g.mu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-g.wake:
			}
			continue
		}
		now := g.cfg.Now()
		g.step(now)
		d := g.cfg.Interval
		if !next.IsZero() && next.Sub(now) < d {
			d = max(next.Sub(now), 0)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.cfg.After(d):
		case <-g.wake:
		}
	}
}

// released is a release decided under the lock, called after it.
type released struct {
	h        *hold
	timedOut bool
}

// step reads the host once at now and releases what is due: every hold
// whose deadline has passed, then the head if its window is complete.
func (g *Gate) step(now time.Time) {
	g.mu.Lock()
	empty := len(g.queue) == 0
	g.mu.Unlock()
	if empty {
		return
	}
	host, noPSI, readErr := readHost(g.proc)
	host.At = now

	g.mu.Lock()
	var out []released
	g.queue = slices.DeleteFunc(g.queue, func(h *hold) bool {
		if !h.deadline.IsZero() && !now.Before(h.deadline) {
			out = append(out, released{h, true})
			return true
		}
		return false
	})
	switch {
	case readErr != nil && !g.readFailing:
		g.readFailing = true
		g.log.Warn("reading host memory; held restarts wait", "err", readErr)
	case readErr == nil:
		g.readFailing = false
		g.last = host
	}
	if noPSI != nil && !g.saidNoPSI {
		g.saidNoPSI = true
		g.log.Warn("host memory pressure (PSI) unavailable; the restart gate judges by MemAvailable alone", "err", noPSI)
	}
	var head *hold
	if len(g.queue) > 0 {
		head = g.queue[0]
	}
	if head != g.head {
		g.head, g.okRun = head, false
	}
	if head != nil {
		ok, why := g.met(host, readErr, head)
		switch {
		case !ok:
			if g.okRun {
				g.log.Debug("memory gate window restarted", "program", head.program, "reason", why)
			}
			g.okRun = false
		case !g.okRun:
			g.okRun, g.okSince = true, now
		}
		if g.okRun && now.Sub(g.okSince) >= g.cfg.Window {
			g.queue = g.queue[1:]
			g.head, g.okRun = nil, false
			out = append(out, released{head, false})
		}
	}
	g.mu.Unlock()
	for _, r := range out {
		g.log.Info("releasing held restart", "program", r.h.program, "held_for", now.Sub(r.h.since), "timed_out", r.timedOut)
		r.h.release(r.timedOut)
	}
}

// met reports whether the host lets h start, and if not, why.
func (g *Gate) met(host Host, readErr error, h *hold) (bool, string) {
	c := g.cfg
	avail := float64(host.MemAvailable)
	switch {
	case readErr != nil:
		return false, "host memory unreadable"
	case avail < float64(h.need)*c.Headroom:
		return false, "available " + strconv.FormatUint(host.MemAvailable, 10) + " below need × headroom"
	case c.MinAvailableFraction > 0 && avail < float64(host.MemTotal)*c.MinAvailableFraction:
		return false, "available " + strconv.FormatUint(host.MemAvailable, 10) + " below the minimum share of total"
	case c.MaxPSISome10 > 0 && host.Pressure != nil && host.Pressure.Some.Avg10 >= c.MaxPSISome10:
		return false, "pressure some avg10 " + strconv.FormatFloat(host.Pressure.Some.Avg10, 'f', 2, 64) + " not below the maximum"
	}
	return true, ""
}
