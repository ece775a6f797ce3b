package supervisor

import (
	"errors"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/restart"
)

// fakeClock is a manual clock: timers fire only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), c: ch})
	return ch
}

// Advance moves the clock and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) { c.fire(d) }

// fire moves the clock, fires every timer that is due and returns their
// channels (see waitReceived).
func (c *fakeClock) fire(d time.Duration) []chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	var due []fakeTimer
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	now := c.now
	c.mu.Unlock()
	fired := make([]chan time.Time, 0, len(due))
	for _, t := range due {
		t.c <- now
		fired = append(fired, t.c)
	}
	return fired
}

// waitReceived waits until every fired timer channel has been received
// from: the loop that armed it has taken the tick (its handler then runs
// before the loop answers a ping; see harness.sync). Only for timers the
// loop still waits on: an abandoned one is never received.
func waitReceived(t *testing.T, fired []chan time.Time) {
	t.Helper()
	testenv.Eventually(t, "the loops to take their timers", func() bool {
		for _, c := range fired {
			if len(c) > 0 {
				return false
			}
		}
		return true
	})
}

// pendingTimers returns the durations from now of the armed timers.
func (c *fakeClock) pendingTimers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.timers {
		out = append(out, t.at.Sub(c.now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// fakeLauncher starts fakeProcs with increasing pids.
type fakeLauncher struct {
	mu      sync.Mutex
	clock   *fakeClock
	nextPID int
	procs   []*fakeProc
	fail    error
	// obeyStop makes processes exit when they get a signal other than 0.
	obeyStop bool
}

func (l *fakeLauncher) Start(cmd restart.Command) (Process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return nil, l.fail
	}
	l.nextPID++
	p := &fakeProc{pid: 1000 + l.nextPID, done: make(chan struct{}), clock: l.clock, obey: l.obeyStop, cmd: cmd}
	l.procs = append(l.procs, p)
	return p, nil
}

func (l *fakeLauncher) started() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.procs)
}

func (l *fakeLauncher) last() *fakeProc {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.procs) == 0 {
		return nil
	}
	return l.procs[len(l.procs)-1]
}

type fakeProc struct {
	pid   int
	cmd   restart.Command
	clock *fakeClock
	obey  bool

	mu      sync.Mutex
	done    chan struct{}
	exit    restart.ExitStatus
	signals []syscall.Signal
}

func (p *fakeProc) PID() int                 { return p.pid }
func (p *fakeProc) Done() <-chan struct{}    { return p.done }
func (p *fakeProc) Exit() restart.ExitStatus { p.mu.Lock(); defer p.mu.Unlock(); return p.exit }

func (p *fakeProc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	obey := p.obey || sig == syscall.SIGKILL
	p.mu.Unlock()
	if obey {
		p.die(restart.ExitStatus{Signaled: true, Signal: sig})
	}
	return nil
}

func (p *fakeProc) gotSignals() []syscall.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]syscall.Signal(nil), p.signals...)
}

// die ends the process with st (once).
func (p *fakeProc) die(st restart.ExitStatus) { p.dieAt(st, p.clock.Now()) }

// dieAt is die for a death reaped at a moment (the order in which loops
// handle deaths is not always the order of the deaths).
func (p *fakeProc) dieAt(st restart.ExitStatus, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	st.Time = at
	p.exit = st
	close(p.done)
}

// fakeGroup is a memory cgroup whose oom_kill counter the test controls.
type fakeGroup struct {
	mu      sync.Mutex
	path    string
	ooms    uint64
	counts  chan oom.CgroupCounts
	removed bool
	signals []syscall.Signal
	// drain, when set, is what Drain waits for (the test decides when the
	// group is empty).
	drain    chan error
	released chan struct{}
	parent   *fakeCgroups
	peak     uint64 // what Peak reports; 0 means unknown
	resets   int
	name     string
	// events counts the counter changes reported with event; delivered
	// counts those the watcher handed to the program's loop, through out.
	events, delivered int
	out               chan oom.CgroupCounts
}

func (g *fakeGroup) gotSignals() []syscall.Signal {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]syscall.Signal(nil), g.signals...)
}

func (g *fakeGroup) Path() string    { return g.path }
func (g *fakeGroup) FD() int         { return -1 }
func (g *fakeGroup) Procs() []string { return nil }
func (g *fakeGroup) Leave() []string { return nil }
func (g *fakeGroup) KillAll() error  { return nil }
func (g *fakeGroup) ResetPeak() {
	g.mu.Lock()
	g.resets++
	g.mu.Unlock()
}
func (g *fakeGroup) Peak() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak, g.peak > 0
}
func (g *fakeGroup) Signal(sig syscall.Signal) error {
	g.mu.Lock()
	g.signals = append(g.signals, sig)
	g.mu.Unlock()
	return nil
}
func (g *fakeGroup) Drain(time.Duration) error {
	g.mu.Lock()
	d := g.drain
	g.mu.Unlock()
	if d != nil {
		select {
		case err := <-d:
			return err
		case <-g.released:
			return nil
		}
	}
	return nil
}
func (g *fakeGroup) OOMKills() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ooms, nil
}
func (g *fakeGroup) Update(Limits) error { return nil }
func (g *fakeGroup) Watch(out chan oom.CgroupCounts) (func(), error) {
	g.mu.Lock()
	g.out = out
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.out = nil
		g.mu.Unlock()
	}, nil
}

// event raises the counter and reports it, as the kernel and the watcher do
// (latest counts only, replacing any the loop has not taken).
func (g *fakeGroup) event() {
	g.mu.Lock()
	g.ooms++
	g.events++
	c := oom.CgroupCounts{OOMKill: g.ooms}
	out := g.out
	g.mu.Unlock()
	if out != nil {
		select {
		case out <- c:
		default:
			select {
			case <-out:
			default:
			}
			out <- c
		}
	}
	g.mu.Lock()
	g.delivered++
	g.mu.Unlock()
}

// waitTaken waits until the program's loop has received every counter
// change reported with event (its handler then runs before the loop
// answers a ping; see harness.sync).
func (g *fakeGroup) waitTaken(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, "the loop to take the cgroup's counters", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.delivered == g.events && g.out != nil && len(g.out) == 0
	})
}
func (g *fakeGroup) Remove() error {
	g.mu.Lock()
	g.removed = true
	g.mu.Unlock()
	if g.parent != nil {
		g.parent.record("remove " + g.name)
	}
	return nil
}
func (g *fakeGroup) oom() { g.mu.Lock(); g.ooms++; g.mu.Unlock() }

type fakeCgroups struct {
	mu     sync.Mutex
	groups map[string]*fakeGroup
	// drain, when set, is handed to every group made (see fakeGroup.drain);
	// closing released ends every wait on it.
	drain    chan error
	released chan struct{}
	// log records "create NAME" and "remove NAME" in order.
	log []string
}

func (c *fakeCgroups) Create(name string, _ Limits) (Group, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil {
		c.groups = map[string]*fakeGroup{}
	}
	g := &fakeGroup{path: "/respawnd/" + name, counts: make(chan oom.CgroupCounts, 16), drain: c.drain, released: c.released, parent: c, name: name}
	c.groups[name] = g
	c.log = append(c.log, "create "+name)
	return g, nil
}

func (c *fakeCgroups) record(s string) {
	c.mu.Lock()
	c.log = append(c.log, s)
	c.mu.Unlock()
}

// group returns the latest group made for name.
func (c *fakeCgroups) group(name string) *fakeGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[name]
}

// created counts the groups made for name.
func (c *fakeCgroups) created(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.log {
		if l == "create "+name {
			n++
		}
	}
	return n
}

// fakeRecorder remembers what it was told.
type fakeRecorder struct {
	mu       sync.Mutex
	exits    []Exit
	restarts int
	// latencies and waits are those of each restart, in order.
	latencies, waits []time.Duration
	kills            map[string]int
	loops            int
}

func (r *fakeRecorder) RecycleLoop(string) { r.mu.Lock(); r.loops++; r.mu.Unlock() }

func (r *fakeRecorder) Exited(e Exit) { r.mu.Lock(); r.exits = append(r.exits, e); r.mu.Unlock() }
func (r *fakeRecorder) Restarted(_ string, latency time.Duration) {
	r.mu.Lock()
	r.restarts++
	r.latencies = append(r.latencies, latency)
	r.mu.Unlock()
}
func (r *fakeRecorder) RestartWaited(_ string, wait time.Duration) {
	r.mu.Lock()
	r.waits = append(r.waits, wait)
	r.mu.Unlock()
}
func (r *fakeRecorder) OOMKill(program string, _ oom.Kill) {
	r.mu.Lock()
	if r.kills == nil {
		r.kills = map[string]int{}
	}
	r.kills[program]++
	r.mu.Unlock()
}

func (r *fakeRecorder) exitList() []Exit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exit(nil), r.exits...)
}

func (r *fakeRecorder) killCount(program string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kills[program]
}

func prog(name string, mod ...func(*config.Program)) config.Program {
	p := config.DefaultProgram()
	p.Name = name
	p.Command = []string{"/bin/" + name}
	p.Restart.Backoff.Jitter = 0
	for _, m := range mod {
		m(&p)
	}
	return p
}

var errTest = errors.New("no such file")
