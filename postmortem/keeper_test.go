package postmortem

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/respawnd/respawnd/cgroup"
)

type fakeOutput struct {
	done  chan struct{}
	lines []Line
}

func (f *fakeOutput) OutputDone() <-chan struct{} { return f.done }
func (f *fakeOutput) Tail() []Line                { return f.lines }

type written struct {
	mu   sync.Mutex
	recs []*Record
	c    chan *Record
}

func (w *written) fn(r *Record, path string, data []byte) {
	w.mu.Lock()
	w.recs = append(w.recs, r)
	w.mu.Unlock()
	w.c <- r
}

func runKeeper(t *testing.T, cfg Config) (*Keeper, *written) {
	t.Helper()
	w := &written{c: make(chan *Record, 16)}
	if cfg.Store == nil {
		cfg.Store = newStore(t, t.TempDir(), 0)
	}
	cfg.Written = w.fn
	k := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return k, w
}

func next(t *testing.T, w *written) *Record {
	t.Helper()
	select {
	case r := <-w.c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no record written")
		return nil
	}
}

func report(oomKills, high uint64, someUS uint64) cgroup.MemoryReport {
	return cgroup.MemoryReport{Version: 2, Stat: map[string]uint64{"anon": 4096, "shmem": 8192},
		Events: map[string]uint64{"oom_kill": oomKills, "high": high}, PressureSomeUS: someUS, PressureFullUS: someUS / 2, HasPressure: true}
}

func TestKeeperRecordCarriesDeathAndFinal(t *testing.T) {
	host := &Host{MemTotalBytes: 100, MemAvailableBytes: 40}
	k, w := runKeeper(t, Config{CorePattern: func() string { return "core.%p" }, Host: func() (*Host, error) { return host, nil }})
	k.Baseline("api", report(2, 10, 1_000_000), t0)
	out := &fakeOutput{done: make(chan struct{}), lines: []Line{{Time: t0, Stream: "stderr", Text: "panic: boom"}}}
	close(out.done)
	k.Died(Death{Program: "api", Generation: 3, Output: out, Cgroup: "/programs/api", Report: report(3, 15, 3_500_000), Core: true, At: t0.Add(time.Minute)})
	code := 2
	k.Settled(Final{Program: "api", Generation: 3, PID: 42, Started: t0.Add(30 * time.Second), Died: t0.Add(time.Minute), Reason: "exit_error", ExitCode: &code, PeakBytes: 1 << 20, PeakSource: "cgroup"})
	r := next(t, w)
	if r.Program != "api" || r.PID != 42 || r.Generation != 3 || r.Reason != "exit_error" || r.ExitCode == nil || *r.ExitCode != 2 || r.UptimeSeconds != 30 {
		t.Fatalf("record %+v", r)
	}
	m := r.Memory
	if m == nil || m.Cgroup != "/programs/api" || m.Version != 2 || m.PeakBytes != 1<<20 || m.StatAfterExit["shmem"] != 8192 {
		t.Fatalf("memory %+v", m)
	}
	if m.Events["oom_kill"] != 1 || m.Events["high"] != 5 {
		t.Fatalf("events %v: want deltas oom_kill 1, high 5", m.Events)
	}
	if !m.EventsSince.Equal(t0.Add(30*time.Second)) || m.PressureSomeSeconds == nil || *m.PressureSomeSeconds != 2.5 || *m.PressureFullSeconds != 1.25 {
		t.Fatalf("since %v, pressure %v/%v", m.EventsSince, m.PressureSomeSeconds, m.PressureFullSeconds)
	}
	if r.Host != host || r.Core == nil || !r.Core.Dumped || r.Core.Pattern != "core.%p" {
		t.Fatalf("host %+v core %+v", r.Host, r.Core)
	}
	if !r.OutputKept || len(r.Output) != 1 || r.Output[0].Text != "panic: boom" {
		t.Fatalf("output %+v", r.Output)
	}
	stored, err := k.Store().Get(r.ID)
	if err != nil || stored.Output[0].Text != "panic: boom" || stored.Memory.Events["high"] != 5 {
		t.Fatalf("stored %+v, %v", stored, err)
	}

	// The next death counts from this one.
	k.Died(Death{Program: "api", Generation: 4, Report: report(3, 16, 3_500_000), At: t0.Add(2 * time.Minute)})
	k.Settled(Final{Program: "api", Generation: 4, Died: t0.Add(2 * time.Minute), Reason: "signal", Signal: "SIGTERM"})
	r = next(t, w)
	if r.Memory.Events["oom_kill"] != 0 || r.Memory.Events["high"] != 1 || r.OutputKept {
		t.Fatalf("second death: events %v output kept %v", r.Memory.Events, r.OutputKept)
	}
}

// A start failure has no death: its record has the reason alone.
func TestKeeperSettledWithoutDeath(t *testing.T) {
	k, w := runKeeper(t, Config{})
	k.Settled(Final{Program: "api", Generation: 1, Died: t0, Reason: "start_failure", Error: "exec: no such file"})
	r := next(t, w)
	if r.Reason != "start_failure" || r.Error == "" || r.Memory != nil || r.OutputKept {
		t.Fatalf("record %+v", r)
	}
}

// The record waits for the last lines, but not for ever: a child that
// kept the pipe open does not hold the record back beyond OutputWait.
func TestKeeperWaitsForOutputBounded(t *testing.T) {
	k, w := runKeeper(t, Config{OutputWait: 50 * time.Millisecond})
	out := &fakeOutput{done: make(chan struct{}), lines: []Line{{Text: "partial"}}}
	k.Died(Death{Program: "api", Generation: 1, Output: out})
	k.Settled(Final{Program: "api", Generation: 1, Died: t0, Reason: "signal"})
	if r := next(t, w); len(r.Output) != 1 || r.Output[0].Text != "partial" {
		t.Fatalf("output %+v", r.Output)
	}

	out2 := &fakeOutput{done: make(chan struct{})}
	k.Died(Death{Program: "api", Generation: 2, Output: out2})
	k.Settled(Final{Program: "api", Generation: 2, Died: t0.Add(time.Second), Reason: "signal"})
	out2.lines = nil
	select {
	case r := <-w.c:
		t.Fatalf("record %s written before its output ended or the wait passed", r.ID)
	case <-time.After(10 * time.Millisecond):
	}
	out2.lines = []Line{{Text: "last words"}} // written before OutputDone
	close(out2.done)
	if r := next(t, w); len(r.Output) != 1 || r.Output[0].Text != "last words" {
		t.Fatalf("output %+v", r.Output)
	}
}

// Settled never blocks: with the writer stuck, records beyond the queue
// are dropped and counted.
func TestKeeperSettledNeverBlocks(t *testing.T) {
	k := New(Config{Store: newStore(t, t.TempDir(), 0), Queue: 2})
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			k.Settled(Final{Program: "api", Generation: uint64(i + 1), Died: t0, Reason: "signal"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Settled blocked on a full queue")
	}
	if got := k.Dropped(); got != 8 {
		t.Fatalf("dropped %d, want 8", got)
	}
}

func TestKeeperPendingIsBounded(t *testing.T) {
	k := New(Config{Store: newStore(t, t.TempDir(), 0)})
	for i := range maxPending + 10 {
		k.Died(Death{Program: "api", Generation: uint64(i)})
	}
	if len(k.pending) != maxPending || len(k.order) != maxPending {
		t.Fatalf("pending %d/%d, want %d", len(k.pending), len(k.order), maxPending)
	}
}

// A death reported again (by a respawnd that took over from one that had
// recorded it) is not recorded again, and its hook does not run again.
func TestKeeperSkipsDeathsAlreadyRecorded(t *testing.T) {
	dir := t.TempDir()
	k, w := runKeeper(t, Config{Store: newStore(t, dir, 0)})
	k.Settled(Final{Program: "api", Generation: 7, PID: 99, Died: t0, Reason: "oom_kill"})
	next(t, w)

	k2, w2 := runKeeper(t, Config{Store: newStore(t, dir, 0)})
	k2.Settled(Final{Program: "api", Generation: 7, PID: 99, Died: t0.Add(time.Minute), Reason: "unknown"})
	k2.Settled(Final{Program: "api", Generation: 7, PID: 100, Died: t0.Add(2 * time.Minute), Reason: "signal"})
	if r := next(t, w2); r.PID != 100 {
		t.Fatalf("wrote %+v, want only the new death of pid 100", r)
	}
	if n, _ := k2.Store().Size(); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
}

// A program removed from the configuration loses its baseline: its next
// death (after it is added again) counts no events from the old one.
func TestKeeperKeepDropsRemovedPrograms(t *testing.T) {
	k := New(Config{Store: newStore(t, t.TempDir(), 0)})
	k.Baseline("api", report(1, 1, 0), t0)
	k.Baseline("web", report(1, 1, 0), t0)
	k.Keep([]string{"web"})
	if _, ok := k.base["api"]; ok {
		t.Fatal("api's baseline kept after its removal")
	}
	if _, ok := k.base["web"]; !ok {
		t.Fatal("web's baseline dropped")
	}
}
