package memwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// runWatcher runs a Watcher until the test's end and returns it with the
// channel its events arrive on. Register a goleak check before calling it:
// cleanups run last-registered first, so the check runs after Run ended.
func runWatcher(t *testing.T, cfg Config) (*Watcher, <-chan Event) {
	t.Helper()
	// Room for every event a test provokes; a full channel fails the test
	// rather than blocking the watcher.
	ch := make(chan Event, 256)
	cfg.Notify = func(e Event) {
		select {
		case ch <- e:
		default:
			t.Errorf("event channel full, dropped %+v", e)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w, ch
}

// testLogger logs to the test at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// nextEvent returns the next event, failing the test after timeout.
func nextEvent(t *testing.T, ch <-chan Event, timeout time.Duration) Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(timeout):
		t.Fatalf("no event within %s", timeout)
	}
	return Event{}
}

// noEvent fails the test if an event arrives within d.
func noEvent(t *testing.T, ch <-chan Event, d time.Duration) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(d):
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(des) - 1 // the directory being read
}

// oomKills reads the cgroup's OOM-kill counter.
func oomKills(t testing.TB, cg *testenv.MemoryCgroup) int {
	t.Helper()
	file := "memory.oom_control"
	if cg.V2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.Dir, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no oom_kill in %s", file)
	return 0
}

// setHigh writes memory.high of a v2 cgroup; "max" lifts it.
func setHigh(t testing.TB, cg *testenv.MemoryCgroup, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg.Dir, "memory.high"), []byte(v), 0); err != nil {
		t.Fatal(err)
	}
}

// A program in a memory cgroup that grows 4 MiB every 100 ms past the
// recycle threshold gets exactly one Recycle, after at least For above it,
// and is never OOM-killed, with the kernel's signals (v1: a usage
// threshold; v2: memory.events, with memory.high at the threshold) and with
// sampling alone. How soon after the crossing is measured by
// BenchmarkRecycleLatency.
func TestWatcherRecycleRealCgroup(t *testing.T) {
	for _, mode := range []struct {
		name       string
		sampleOnly bool
	}{
		{"signals", false},
		{"sampling", true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t) })
			cg := testenv.NewMemoryCgroup(t, 256*mib)
			const above, forDur = 64 * mib, time.Second
			if cg.V2 && !mode.sampleOnly {
				setHigh(t, cg, strconv.Itoa(above))
			}
			w, events := runWatcher(t, Config{SampleInterval: time.Second, SampleOnly: mode.sampleOnly})
			// extra: on v2 one more step: above memory.high the kernel
			// throttles the grower, so it holds just past the line. On v1
			// 4 MiB: the working set is usage less inactive_file, and the
			// kernel's aging of the group's page cache moves it by more
			// than a step, which could take it back below the line before
			// For is over.
			// On v2, 1 MiB: with only 256 KiB the kernel's reclaim at
			// memory.high took the working set back below the line now
			// and then (1 run in 8 on 6.12), before For was over.
			extra := uint64(4 * mib)
			if cg.V2 && !mode.sampleOnly {
				extra = 1 * mib
			}
			g := startGrower(t, growerParams{cgroup: cg, measure: WorkingSet, threshold: above,
				fast: 40 * mib, step: 256 << 10, period: 6250 * time.Microsecond, extra: extra, max: 160 * mib})
			remove, err := w.Add("victim", Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: above, For: forDur})
			if err != nil {
				t.Fatal(err)
			}
			defer remove()
			g.send("grow")
			_, crossed := g.crossed(30 * time.Second)
			e := nextEvent(t, events, 30*time.Second)
			if e.Kind != Recycle || e.Program != "victim" || e.Threshold != above || e.Value < above || e.Measure != WorkingSet {
				t.Fatalf("event %+v, want a recycle of victim at %d", e, above)
			}
			if held := e.At.Sub(e.Since); held < forDur {
				t.Errorf("recycle after %s above, want at least %s", held, forDur)
			}
			// How soon is BenchmarkRecycleLatency's to measure, not a
			// wall-clock bound here.
			t.Logf("recycle %s after the grower crossed %d bytes (for %s); since-crossed %s", e.At.Sub(crossed), above, forDur, e.Since.Sub(crossed))
			g.expect("held", 30*time.Second)
			// Still above for two more samples: no second Recycle.
			noEvent(t, events, 2*time.Second)
			if n := oomKills(t, cg); n != 0 {
				t.Errorf("%d OOM kills in the cgroup", n)
			}
		})
	}
}

// A program that stays below its recycle threshold is measured (it passes
// its warning level, which is reported) and never recycled.
func TestWatcherUnderThresholdRealCgroup(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	cg := testenv.NewMemoryCgroup(t, 256*mib)
	w, events := runWatcher(t, Config{SampleInterval: 100 * time.Millisecond})
	g := startGrower(t, growerParams{cgroup: cg, measure: RSS, threshold: 1 << 40,
		fast: 8 * mib, step: mib, period: 10 * time.Millisecond, max: 40 * mib})
	remove, err := w.Add("steady", Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: 128 * mib, Measure: RSS, WarnAbove: 24 * mib})
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	g.send("grow")
	g.expect("max", 30*time.Second)
	e := nextEvent(t, events, 10*time.Second)
	if e.Kind != Warn || e.Value < 24*mib || e.Measure != RSS {
		t.Fatalf("event %+v, want a warning at 24 MiB of rss", e)
	}
	noEvent(t, events, 2*time.Second) // 20 samples
}

// Removing a watch closes every descriptor it opened (the usage file,
// memory.stat, the kernel signals) and ends its events; Run's end closes
// the watcher's own.
func TestWatcherRemoveClosesFDs(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	cg := testenv.NewMemoryCgroup(t, 64*mib)
	g := startGrower(t, growerParams{cgroup: cg, measure: Anon, threshold: 1 << 40,
		fast: 4 * mib, step: mib, period: time.Millisecond, max: 4 * mib})
	g.send("grow")
	g.expect("max", 30*time.Second)
	atStart := openFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan Event, 16)
	w, err := New(Config{SampleInterval: 50 * time.Millisecond, Logger: testLogger(t), Notify: func(e Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	before := openFDs(t)
	// A threshold of one byte: the first check reads memory.stat and
	// reports at once, so every descriptor is open when the event comes.
	remove, err := w.Add("p", Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: 1, WarnAbove: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if e := nextEvent(t, events, 10*time.Second); e.Kind != Recycle && e.Kind != Warn {
			t.Fatalf("event %+v", e)
		}
	}
	during := openFDs(t)
	// usage and memory.stat; v1: one eventfd; v2: memory.events and, with
	// PSI, memory.pressure.
	want := 3
	if cg.V2 && psiTriggers(t, cg.Dir) {
		want = 4
	}
	if during-before != want {
		t.Errorf("a watch holds %d descriptors, want %d", during-before, want)
	}
	remove()
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after remove, %d before Add", after, before)
	}
	remove() // a second call does nothing
	noEvent(t, events, 200*time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != atStart {
		t.Errorf("%d descriptors open after Run, %d before New", after, atStart)
	}
	if _, err := w.Add("q", Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: 1}); !errors.Is(err, ErrStopped) {
		t.Errorf("Add after Run = %v, want ErrStopped", err)
	}
	if err := w.Update("p", Spec{Above: 1}); !errors.Is(err, ErrStopped) {
		t.Errorf("Update after Run = %v, want ErrStopped", err)
	}
	if openFDs(t) != atStart {
		t.Error("a refused Add left descriptors open")
	}
}

// psiTriggers reports whether a PSI trigger can be set on the cgroup.
func psiTriggers(t testing.TB, dir string) bool {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "memory.pressure"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Write([]byte(psiTrigger + "\x00"))
	return err == nil
}

// A watched cgroup that is removed (the program's instance is gone) ends
// its own watch: its descriptors are closed without waiting for remove.
func TestWatcherCgroupRemoved(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	cg := testenv.NewMemoryCgroup(t, 64*mib)
	w, _ := runWatcher(t, Config{SampleInterval: 50 * time.Millisecond})
	before := openFDs(t)
	remove, err := w.Add("p", Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: 32 * mib})
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	if openFDs(t) == before {
		t.Fatal("Add opened nothing")
	}
	if err := os.Remove(cg.Dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) != before {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open 10s after the cgroup went, %d before Add", openFDs(t), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An adopted process is judged by its Sample function: Warn, Recycle after
// For, WarnCleared below the clear level; a reload (Update) that lowers
// the threshold re-arms the Recycle; a failing function is logged and
// skipped.
func TestWatcherSampleTarget(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	var val atomic.Uint64
	var fail atomic.Bool
	val.Store(10)
	sample := func() (uint64, error) {
		if fail.Load() {
			return 0, errors.New("process tree vanished")
		}
		return val.Load(), nil
	}
	w, events := runWatcher(t, Config{SampleInterval: 10 * time.Millisecond})
	remove, err := w.Add("adopted", Target{Sample: sample}, Spec{Above: 100, For: 100 * time.Millisecond, Measure: RSS, WarnAbove: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	noEvent(t, events, 50*time.Millisecond)

	val.Store(120)
	if e := nextEvent(t, events, 5*time.Second); e.Kind != Warn || e.Value != 120 || e.Threshold != 80 {
		t.Fatalf("event %+v, want a warning", e)
	}
	e := nextEvent(t, events, 5*time.Second)
	if e.Kind != Recycle || e.Value != 120 || e.Program != "adopted" || e.Measure != RSS {
		t.Fatalf("event %+v, want a recycle", e)
	}
	if d := e.At.Sub(e.Since); d < 100*time.Millisecond {
		t.Errorf("recycle after %s above, want at least 100ms", d)
	}
	noEvent(t, events, 100*time.Millisecond) // fires once

	val.Store(77) // below 80 but above its clear level, 76
	noEvent(t, events, 100*time.Millisecond)
	val.Store(50)
	if e := nextEvent(t, events, 5*time.Second); e.Kind != WarnCleared || e.Value != 50 {
		t.Fatalf("event %+v, want the warning cleared", e)
	}

	// Reload: a threshold below the value re-arms and fires.
	if err := w.Update("adopted", Spec{Above: 40, Measure: RSS}); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events, 5*time.Second); e.Kind != Recycle || e.Threshold != 40 {
		t.Fatalf("event %+v, want a recycle at the new threshold", e)
	}
	if err := w.Update("nobody", Spec{Above: 1}); !errors.Is(err, ErrNotWatched) {
		t.Errorf("Update of an unknown program = %v, want ErrNotWatched", err)
	}
	if err := w.Update("adopted", Spec{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Update with an empty spec = %v, want ErrInvalid", err)
	}

	// Going below re-arms; errors meanwhile change nothing.
	val.Store(10)
	fail.Store(true)
	noEvent(t, events, 100*time.Millisecond)
	fail.Store(false)
	noEvent(t, events, 50*time.Millisecond)
	val.Store(60)
	if e := nextEvent(t, events, 5*time.Second); e.Kind != Recycle {
		t.Fatalf("event %+v, want a recycle after re-arming", e)
	}
}

// Adding a program again replaces its watch: the new instance is judged
// afresh (a Recycle already reported fires again), and the old remove
// function no longer touches it.
func TestWatcherAddReplaces(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	w, events := runWatcher(t, Config{SampleInterval: 10 * time.Millisecond})
	big := func() (uint64, error) { return 1000, nil }
	removeOld, err := w.Add("p", Target{Sample: big}, Spec{Above: 10})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events, 5*time.Second); e.Kind != Recycle {
		t.Fatalf("event %+v", e)
	}
	removeNew, err := w.Add("p", Target{Sample: big}, Spec{Above: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer removeNew()
	if e := nextEvent(t, events, 5*time.Second); e.Kind != Recycle {
		t.Fatalf("event %+v, want the new instance's recycle", e)
	}
	removeOld()
	if err := w.Update("p", Spec{Above: 20}); err != nil {
		t.Fatalf("the old remove ended the new watch: %v", err)
	}
}

// Bad targets and specs are refused with ErrInvalid and leave nothing open.
func TestWatcherAddInvalid(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	w, _ := runWatcher(t, Config{})
	before := openFDs(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		t    Target
		s    Spec
		want error
	}{
		{"no target", Target{}, Spec{Above: 1}, ErrInvalid},
		{"two targets", Target{Dir: dir, Sample: func() (uint64, error) { return 0, nil }}, Spec{Above: 1}, ErrInvalid},
		{"no threshold", Target{Dir: dir}, Spec{For: time.Second}, ErrInvalid},
		{"negative for", Target{Dir: dir}, Spec{Above: 1, For: -time.Second}, ErrInvalid},
		{"bad measure", Target{Dir: dir}, Spec{Above: 1, Measure: 7}, ErrInvalid},
		{"no cgroup files", Target{Dir: dir}, Spec{Above: 1}, os.ErrNotExist},
	} {
		if _, err := w.Add("p", c.t, c.s); !errors.Is(err, c.want) {
			t.Errorf("%s: Add = %v, want %v", c.name, err, c.want)
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after refused Adds, %d before", after, before)
	}
	if _, err := New(Config{SampleInterval: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with a negative interval = %v, want ErrInvalid", err)
	}
}

// fakeCgroup makes a cgroup directory of regular files from the fixture
// in testdata/cgroup/NAME.
func fakeCgroup(t testing.TB, name string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("testdata", "cgroup", name)
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// On a directory that is not cgroupfs the kernel's signals cannot be
// armed (regular files do not poll; there is no cgroup.event_control); the
// watch falls back to sampling, says so once, and still judges the real
// measure, reading memory.stat once the usage reaches the threshold. A
// malformed memory.stat is logged with its path and decides nothing.
func TestWatcherFallsBackToSampling(t *testing.T) {
	for _, c := range []struct {
		fixture string
		v2      bool
		log     string
	}{
		{"v2-6.1-grower", true, "memory.events signals unavailable"},
		// With page cache: a threshold between the working set and the
		// usage, which only memory.stat can place the program below.
		{"v1-6.18-own", false, "cgroup v1 usage thresholds unavailable"},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t) })
			var logs bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
			w, events := runWatcher(t, Config{SampleInterval: 10 * time.Millisecond, Logger: logger})
			dir := fakeCgroup(t, c.fixture)
			s, err := ReadCgroup(dir, c.v2)
			if err != nil {
				t.Fatal(err)
			}
			above := s.WorkingSet + 1
			remove, err := w.Add("fake", Target{Dir: dir, V2: c.v2}, Spec{Above: above})
			if err != nil {
				t.Fatal(err)
			}
			defer remove()
			noEvent(t, events, 100*time.Millisecond)
			// The usage grows by 1 MiB: the working set passes the threshold.
			if err := os.WriteFile(filepath.Join(dir, usageFile(c.v2)), []byte(strconv.FormatUint(s.Usage+mib, 10)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			e := nextEvent(t, events, 5*time.Second)
			if e.Kind != Recycle || e.Value != s.WorkingSet+mib {
				t.Fatalf("event %+v, want a recycle at %d", e, s.WorkingSet+mib)
			}
			if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte("anon 12x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			statPath := filepath.Join(dir, "memory.stat")
			deadline := time.Now().Add(5 * time.Second)
			var out string
			for {
				mu.Lock()
				out = logs.String()
				mu.Unlock()
				if strings.Contains(out, statPath) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no log naming the malformed memory.stat:\n%s", out)
				}
				time.Sleep(10 * time.Millisecond)
			}
			noEvent(t, events, 100*time.Millisecond) // ten failing checks
			mu.Lock()
			out = logs.String()
			mu.Unlock()
			if n := strings.Count(out, c.log); n != 1 {
				t.Errorf("the fallback was logged %d times, want once:\n%s", n, out)
			}
			if n := strings.Count(out, statPath); n != 1 {
				t.Errorf("the malformed memory.stat was logged %d times, want once per streak:\n%s", n, out)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A thousand programs cost no goroutine, no thread and no epoll set each,
// and little heap: the daemon's budget is 16 KiB per program in all.
func TestWatcherScale(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	w, _ := runWatcher(t, Config{SampleInterval: 20 * time.Millisecond, SampleOnly: true})
	dir := fakeCgroup(t, "v2-6.1-grower")
	epolls := func() int {
		n := 0
		des, _ := os.ReadDir("/proc/self/fd")
		for _, de := range des {
			if l, _ := os.Readlink(filepath.Join("/proc/self/fd", de.Name())); l == "anon_inode:[eventpoll]" {
				n++
			}
		}
		return n
	}
	const n = 1000
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0, e0 := runtime.NumGoroutine(), epolls()
	var removes []func()
	for i := range n {
		// Above the fixture's usage: each check reads one file.
		r, err := w.Add(fmt.Sprintf("program-%04d", i), Target{Dir: dir, V2: true}, Spec{Above: 1 << 40, For: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		removes = append(removes, r)
	}
	time.Sleep(100 * time.Millisecond) // a few rounds over all of them
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perProgram := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc)) / n
	t.Logf("heap per program: %d bytes", perProgram)
	if perProgram > 2048 {
		t.Errorf("%d bytes of heap per program, want at most 2 KiB", perProgram)
	}
	if g := runtime.NumGoroutine(); g > g0+2 {
		t.Errorf("%d goroutines with %d programs, %d before", g, n, g0)
	}
	if e := epolls(); e != e0 {
		t.Errorf("%d epoll sets with %d programs, %d before", e, n, e0)
	}
	for _, r := range removes {
		r()
	}
}

// A watcher with nothing to watch sleeps: its timer is disarmed, so that
// a respawnd whose programs set no memory thresholds is not woken every
// SampleInterval. A watch arms it and is checked at once; once the last
// watch is removed the timer is disarmed again.
func TestWatcherIdleWithoutWatches(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	w, events := runWatcher(t, Config{SampleInterval: 10 * time.Millisecond})
	armed := func() bool {
		var cur unix.ItimerSpec
		if err := unix.TimerfdGettime(w.timer, &cur); err != nil {
			t.Fatal(err)
		}
		return cur.Value != unix.Timespec{}
	}
	var checks atomic.Int64
	sample := func() (uint64, error) {
		checks.Add(1)
		return 500, nil
	}
	remove, err := w.Add("p", Target{Sample: sample}, Spec{Above: 100, Measure: RSS})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events, 5*time.Second); e.Kind != Recycle {
		t.Fatalf("event %+v, want the recycle of the first check", e)
	}
	testenv.Eventually(t, "the timer armed for the next tick", armed)
	n := checks.Load()
	testenv.Eventually(t, "a tick after the first check", func() bool { return checks.Load() > n })
	remove()
	testenv.Eventually(t, "the timer disarmed once nothing is watched", func() bool { return !armed() })
	n = checks.Load()
	time.Sleep(50 * time.Millisecond) // five SampleIntervals
	if armed() || checks.Load() != n {
		t.Errorf("the watcher still ticks with nothing watched")
	}
}
