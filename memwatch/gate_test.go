package memwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// gateTest drives a Gate by hand: a fake /proc in a temp dir (meminfo and
// pressure/memory captured from a real host, with the figures rewritten)
// and steps at chosen times of a fake clock.
type gateTest struct {
	t    *testing.T
	proc string
	g    *Gate
	now  time.Time
	logs *bytes.Buffer
	// released records each release as "PROGRAM@SECONDS" or
	// "PROGRAM@SECONDS:timeout", in order.
	released []string
}

const mibKB = 1024 // kB per MiB, meminfo's unit

func newGateTest(t *testing.T, cfg GateConfig) *gateTest {
	t.Helper()
	gt := &gateTest{t: t, proc: t.TempDir(), now: t0, logs: &bytes.Buffer{}}
	if err := os.Mkdir(filepath.Join(gt.proc, "pressure"), 0o755); err != nil {
		t.Fatal(err)
	}
	gt.host(800, 1000, 0)
	cfg.ProcRoot = gt.proc
	cfg.Now = func() time.Time { return gt.now }
	cfg.Logger = slog.New(slog.NewTextHandler(gt.logs, nil))
	g, err := NewGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gt.g = g
	return gt
}

var (
	memTotalRE = regexp.MustCompile(`(?m)^MemTotal:\s+\d+ kB$`)
	memAvailRE = regexp.MustCompile(`(?m)^MemAvailable:\s+\d+ kB$`)
	some10RE   = regexp.MustCompile(`(?m)^some avg10=[0-9.]+ `)
)

// host writes the fake /proc: availMiB of totalMiB available, and a memory
// "some" avg10 of some10 percent; a negative some10 removes the pressure
// file, as on a kernel without PSI.
func (gt *gateTest) host(availMiB, totalMiB uint64, some10 float64) {
	gt.t.Helper()
	mi, err := os.ReadFile(filepath.Join("testdata", "proc", "meminfo"))
	if err != nil {
		gt.t.Fatal(err)
	}
	mi = memTotalRE.ReplaceAll(mi, fmt.Appendf(nil, "MemTotal:       %d kB", totalMiB*mibKB))
	mi = memAvailRE.ReplaceAll(mi, fmt.Appendf(nil, "MemAvailable:   %d kB", availMiB*mibKB))
	if err := os.WriteFile(filepath.Join(gt.proc, "meminfo"), mi, 0o644); err != nil {
		gt.t.Fatal(err)
	}
	pf := filepath.Join(gt.proc, "pressure", "memory")
	if some10 < 0 {
		if err := os.Remove(pf); err != nil && !errors.Is(err, os.ErrNotExist) {
			gt.t.Fatal(err)
		}
		return
	}
	p, err := os.ReadFile(filepath.Join("testdata", "proc", "pressure", "memory"))
	if err != nil {
		gt.t.Fatal(err)
	}
	p = some10RE.ReplaceAll(p, fmt.Appendf(nil, "some avg10=%.2f ", some10))
	if err := os.WriteFile(pf, p, 0o644); err != nil {
		gt.t.Fatal(err)
	}
}

func (gt *gateTest) hold(program string, order int, needMiB uint64, max time.Duration) {
	gt.g.Hold(program, order, needMiB*mib, max, func(timedOut bool) {
		r := fmt.Sprintf("%s@%g", program, gt.now.Sub(t0).Seconds())
		if timedOut {
			r += ":timeout"
		}
		gt.released = append(gt.released, r)
	})
}

// until steps the gate every Interval (500ms) from the current time up to
// and including t0+at.
func (gt *gateTest) until(at time.Duration) {
	for end := t0.Add(at); !gt.now.After(end); gt.now = gt.now.Add(500 * time.Millisecond) {
		gt.g.step(gt.now)
	}
	gt.now = t0.Add(at).Add(500 * time.Millisecond)
}

// at steps the gate once at t0+at.
func (gt *gateTest) at(at time.Duration) {
	gt.now = t0.Add(at)
	gt.g.step(gt.now)
}

func (gt *gateTest) want(released ...string) {
	gt.t.Helper()
	if strings.Join(gt.released, " ") != strings.Join(released, " ") {
		gt.t.Errorf("released %q, want %q\nlog:\n%s", gt.released, released, gt.logs)
	}
}

const sec = time.Second

// The decision table of the host memory gate, with the default knobs:
// need × 1.2 available, 5 % of MemTotal available, PSI some avg10 below
// 10, all held for a 5 s window.
func TestGateDecisions(t *testing.T) {
	t.Run("all met: released after the window", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 100, 0)
		gt.until(4500 * time.Millisecond)
		gt.want()
		gt.until(5 * sec)
		gt.want("a@5")
		gt.until(20 * sec)
		gt.want("a@5")
	})
	t.Run("a condition failing mid-window restarts it", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 100, 0)
		gt.until(2 * sec)
		gt.host(800, 1000, 30) // PSI spike
		gt.until(2500 * time.Millisecond)
		gt.host(100, 1000, 0) // 100 < 100 × 1.2
		gt.until(3 * sec)
		gt.host(800, 1000, 0)
		gt.until(7500 * time.Millisecond)
		gt.want()
		gt.until(8500 * time.Millisecond)
		gt.want("a@8.5")
	})
	t.Run("need too large", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 700, 0) // 700 × 1.2 = 840 > 800
		gt.until(60 * sec)
		gt.want()
		gt.host(840, 1000, 0)
		gt.until(65 * sec) // the window runs from 60.5
		gt.want()
		gt.until(66 * sec)
		gt.want("a@65.5")
	})
	t.Run("below the minimum share of total", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.host(40, 1000, 0) // 4 % of MemTotal
		gt.hold("a", 1, 1, 0)
		gt.until(30 * sec)
		gt.want()
		gt.host(51, 1000, 0)
		gt.until(36 * sec)
		gt.want("a@35.5")
	})
	t.Run("pressure high", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.host(800, 1000, 10) // not below 10
		gt.hold("a", 1, 1, 0)
		gt.until(30 * sec)
		gt.want()
		gt.host(800, 1000, 9.99)
		gt.until(36 * sec)
		gt.want("a@35.5")
	})
	t.Run("pressure missing", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.host(800, 1000, -1)
		gt.hold("a", 1, 1, 0)
		gt.hold("b", 2, 1, 0)
		gt.until(20 * sec)
		gt.want("a@5", "b@10.5")
		if n := strings.Count(gt.logs.String(), "(PSI) unavailable"); n != 1 {
			t.Errorf("missing PSI logged %d times, want once:\n%s", n, gt.logs)
		}
		if last := gt.g.Last(); last.Pressure != nil || last.MemAvailable != 800*mib {
			t.Errorf("Last = %+v", last)
		}
	})
	t.Run("max passes first", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.host(100, 1000, 50)
		gt.hold("a", 1, 1, 10*sec)
		gt.until(9500 * time.Millisecond)
		gt.want()
		gt.at(10 * sec)
		gt.want("a@10:timeout")
	})
	t.Run("max releases out of order", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 700, 0) // never fits
		gt.hold("b", 2, 1, 0)
		gt.hold("c", 3, 1, 3*sec)
		gt.until(3 * sec)
		gt.want("c@3:timeout")
		if h := gt.g.Held(); len(h) != 2 || h[0].Program != "a" || h[1].Program != "b" {
			t.Errorf("Held = %+v, want a then b", h)
		}
	})
	t.Run("one at a time in order, each with a fresh window", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("c", 30, 1, 0)
		gt.hold("a", 10, 1, 0)
		gt.hold("b", 20, 1, 0)
		gt.hold("b2", 20, 1, 0) // same order: held later, released later
		h := gt.g.Held()
		var names []string
		for _, x := range h {
			names = append(names, x.Program)
		}
		if strings.Join(names, ",") != "a,b,b2,c" {
			t.Errorf("Held = %v, want a,b,b2,c", names)
		}
		gt.until(30 * sec)
		gt.want("a@5", "b@10.5", "b2@16", "c@21.5")
	})
	t.Run("the next head is judged by its own need", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("small", 1, 100, 0)
		gt.hold("big", 2, 600, 0)
		gt.until(5 * sec)
		gt.want("small@5")
		gt.host(700, 1000, 0) // the small one started: 700 < 600 × 1.2
		gt.until(20 * sec)
		gt.want("small@5")
		gt.host(721, 1000, 0)
		gt.until(30 * sec)
		gt.want("small@5", "big@25.5")
	})
	t.Run("cancel", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 1, 0)
		gt.hold("b", 2, 1, 0)
		gt.until(3 * sec)
		gt.g.Cancel("a") // the head: b's window starts afresh
		gt.g.Cancel("nobody")
		gt.until(8 * sec)
		gt.want()
		gt.until(9 * sec)
		gt.want("b@8.5")
		if h := gt.g.Held(); len(h) != 0 {
			t.Errorf("Held = %+v after everything was released", h)
		}
	})
	t.Run("hold again replaces", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 700, 0)
		gt.until(2 * sec)
		gt.hold("a", 1, 1, 0) // re-held with a smaller need: a new window
		gt.until(10 * sec)
		gt.want("a@7.5")
	})
	t.Run("host unreadable", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{})
		gt.hold("a", 1, 1, 0)
		gt.hold("b", 2, 1, 4*sec)
		if err := os.Remove(filepath.Join(gt.proc, "meminfo")); err != nil {
			t.Fatal(err)
		}
		gt.until(10 * sec)
		gt.want("b@4:timeout")
		if n := strings.Count(gt.logs.String(), "reading host memory"); n != 1 {
			t.Errorf("unreadable meminfo logged %d times, want once:\n%s", n, gt.logs)
		}
		gt.host(800, 1000, 0)
		gt.until(16 * sec)
		gt.want("b@4:timeout", "a@15.5")
	})
	t.Run("knobs", func(t *testing.T) {
		gt := newGateTest(t, GateConfig{Window: 2 * sec, Headroom: 1, MinAvailableFraction: -1, MaxPSISome10: -1})
		gt.host(30, 1000, 90) // 3 % of total, PSI 90: both turned off
		gt.hold("a", 1, 30, 0)
		gt.until(3 * sec)
		gt.want("a@2")
	})
}

// Held lists what the gate holds with its deadline; Last shows the host as
// the gate last read it, every PSI figure included.
func TestGateStatus(t *testing.T) {
	gt := newGateTest(t, GateConfig{})
	if last := gt.g.Last(); !last.At.IsZero() {
		t.Errorf("Last before any read = %+v", last)
	}
	gt.host(300, 1000, 12.5)
	gt.hold("a", 7, 10, time.Minute)
	gt.at(0)
	h := gt.g.Held()
	if len(h) != 1 || h[0] != (Holding{Program: "a", Order: 7, Need: 10 * mib, Since: t0, Deadline: t0.Add(time.Minute)}) {
		t.Errorf("Held = %+v", h)
	}
	last := gt.g.Last()
	// The other figures are the captured host's: 0.00 and its totals.
	want := Host{At: t0, MemTotal: 1000 * mib, MemAvailable: 300 * mib, Pressure: &Pressure{
		Some: PressureLine{Avg10: 12.5, Total: 56243729 * time.Microsecond},
		Full: PressureLine{Total: 2588380 * time.Microsecond},
	}}
	if last.Pressure == nil || *last.Pressure != *want.Pressure {
		t.Errorf("Last().Pressure = %+v, want %+v", last.Pressure, want.Pressure)
	}
	last.Pressure, want.Pressure = nil, nil
	if last != want {
		t.Errorf("Last = %+v, want %+v", last, want)
	}
}

func TestNewGateInvalid(t *testing.T) {
	for _, c := range []GateConfig{{Interval: -1}, {Window: -1}, {Headroom: -1}, {MinAvailableFraction: 2}} {
		if _, err := NewGate(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewGate(%+v) = %v, want ErrInvalid", c, err)
		}
	}
	if _, err := NewGate(GateConfig{ProcRoot: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("NewGate with a missing proc root: no error")
	}
}

// ReadHost reads the real /proc of this machine, and a fake one.
func TestReadHost(t *testing.T) {
	h, err := ReadHost("")
	if err != nil {
		t.Fatal(err)
	}
	if h.MemTotal == 0 || h.MemAvailable == 0 || h.MemAvailable > h.MemTotal {
		t.Errorf("ReadHost = %+v", h)
	}
	h, err = ReadHost("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	if h.MemTotal != 24683548*1024 || h.MemAvailable != 23821464*1024 || h.Pressure == nil || h.Pressure.Full.Total != 2588380*time.Microsecond {
		t.Errorf("ReadHost(testdata/proc) = %+v", h)
	}
	// No MemAvailable (Linux before 3.14).
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: 1000 kB\nMemFree: 10 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHost(dir); !errors.Is(err, ErrNoMemAvailable) {
		t.Errorf("ReadHost without MemAvailable = %v, want ErrNoMemAvailable", err)
	}
	// A malformed pressure file is an error, not "no PSI".
	if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: 1000 kB\nMemAvailable: 10 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pressure"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pressure", "memory"), []byte("some avg10=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err := ReadHost(dir); err == nil {
		t.Errorf("ReadHost with a malformed pressure file = %+v, want an error", h)
	}
}

// fakeClock is a clock for Run: After's channels fire when advance passes
// their time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	afters  int // After calls so far
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.afters++
	ch := make(chan time.Time, 1) // fired once, never blocks advance
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.afters
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		keep = append(keep, w)
	}
	c.waiters = keep
}

// Run reads the host only while a program is held: an empty gate waits
// without a timer; a Hold starts the reads every Interval, and the head is
// released after Window; then the reads stop. A cancelled context ends
// Run with nil.
func TestGateRun(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	proc := newGateTest(t, GateConfig{}).proc // only for its fake /proc
	clock := &fakeClock{now: t0}
	g, err := NewGate(GateConfig{ProcRoot: proc, Now: clock.Now, After: clock.After})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	// eventually polls for a condition the Run goroutine brings about.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	clock.advance(time.Minute)
	time.Sleep(20 * time.Millisecond) // give an empty Run the chance to misbehave
	if clock.calls() != 0 || !g.Last().At.IsZero() {
		t.Fatal("an empty gate reads the host or sets a timer")
	}
	released := make(chan bool, 1)
	held := clock.Now()
	g.Hold("a", 1, mib, 0, func(timedOut bool) { released <- timedOut })
	eventually("the first read", func() bool { return !g.Last().At.IsZero() && clock.calls() > 0 })
	for len(released) == 0 {
		if clock.Now().Sub(held) > time.Minute {
			t.Fatal("not released after a minute")
		}
		n := clock.calls()
		clock.advance(500 * time.Millisecond)
		eventually("the next timer", func() bool { return clock.calls() > n || len(released) > 0 })
	}
	if timedOut := <-released; timedOut {
		t.Error("released as timed out")
	}
	if d := clock.Now().Sub(held); d != 5*time.Second {
		t.Errorf("released %s after the hold, want the 5s window", d)
	}
	// The timer armed before the release fires; then Run waits without one.
	clock.advance(500 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	n, read := clock.calls(), g.Last().At
	clock.advance(time.Minute)
	time.Sleep(20 * time.Millisecond)
	if clock.calls() != n || !g.Last().At.Equal(read) {
		t.Error("the gate reads the host or sets timers with nothing held")
	}
}
