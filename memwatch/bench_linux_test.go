package memwatch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// delivered is an Event with the moment Notify received it.
type delivered struct {
	Event
	got time.Time
}

// benchWatcher runs a Watcher for a benchmark and returns its events.
func benchWatcher(b *testing.B, cfg Config) (*Watcher, <-chan delivered) {
	b.Helper()
	// Room for every event of a benchmark round; a full channel fails it.
	ch := make(chan delivered, 64)
	cfg.Notify = func(e Event) {
		select {
		case ch <- delivered{e, time.Now()}:
		default:
			b.Errorf("event channel full")
		}
	}
	w, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	return w, ch
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// BenchmarkRecycleLatency measures threshold crossed → Recycle delivered.
// A grower in a memory cgroup (limit 256 MiB) allocates 56 MiB at once,
// then 256 KiB every 6.25 ms (4 MiB per 100 ms) until its cgroup's working
// set reaches 64 MiB, which it reports. Each crossing is a new instance:
// Add, a random pause of up to 1 s (so that crossings fall at random
// phases of the sampling), grow, Recycle, remove, free; at least 50
// crossings, or b.N. "signals" uses the kernel's signals (v1: a usage
// threshold; v2: memory.events, with memory.high at the threshold as the
// supervisor would set it, and a PSI trigger when the kernel has PSI);
// "sampling" only the 1 s samples.
//
// Reported: p50-ms, p99-ms and max-ms from the grower's report to the
// Recycle reaching Notify, and early-%, the share of crossings the watcher
// saw first (negative latencies, kept in the quantiles); step-p50-ms and
// step-p99-ms from the start of the 256 KiB step that crossed instead. The
// two agree within a step's allocation, except on v2 with signals: the
// kernel throttles a group above memory.high on its return from the
// faulting touch, so the grower's own report comes late (by up to
// seconds) while memory.events has already woken the watcher.
//
//	go test ./memwatch -run '^$' -bench RecycleLatency -benchtime 50x
func BenchmarkRecycleLatency(b *testing.B) {
	for _, mode := range []struct {
		name       string
		sampleOnly bool
	}{{"signals", false}, {"sampling", true}} {
		b.Run(mode.name, func(b *testing.B) {
			cg := testenv.NewMemoryCgroup(b, 256*mib)
			const above = 64 * mib
			if cg.V2 && !mode.sampleOnly {
				setHigh(b, cg, strconv.Itoa(above))
			}
			w, events := benchWatcher(b, Config{SampleInterval: time.Second, SampleOnly: mode.sampleOnly})
			g := startGrower(b, growerParams{cgroup: cg, measure: WorkingSet, threshold: above,
				fast: above - 8*mib, step: 256 << 10, period: 6250 * time.Microsecond, extra: 256 << 10, max: 200 * mib})
			n := max(b.N, 50)
			lat := make([]time.Duration, 0, n)
			fromStart := make([]time.Duration, 0, n)
			early := 0
			b.ResetTimer()
			for i := range n {
				remove, err := w.Add("bench", Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: above})
				if err != nil {
					b.Fatal(err)
				}
				// A random pause: crossings fall at random phases of the
				// 1 s sampling, not in step with it.
				time.Sleep(rand.N(time.Second))
				g.send("grow")
				start, crossed := g.crossed(30 * time.Second)
				var e delivered
				select {
				case e = <-events:
				case <-time.After(30 * time.Second):
					b.Fatalf("crossing %d: no recycle within 30s", i)
				}
				if e.Kind != Recycle {
					b.Fatalf("crossing %d: event %+v, want a recycle", i, e.Event)
				}
				d := e.got.Sub(crossed)
				if d < 0 {
					early++
				}
				lat = append(lat, d)
				fromStart = append(fromStart, e.got.Sub(start))
				g.expect("held", 30*time.Second)
				remove()
				g.send("free")
				g.expect("freed", 30*time.Second)
			}
			b.StopTimer()
			if k := oomKills(b, cg); k != 0 {
				b.Errorf("%d OOM kills in the cgroup", k)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(quantile(lat, 0.5)), "p50-ms")
			b.ReportMetric(ms(quantile(lat, 0.99)), "p99-ms")
			b.ReportMetric(ms(slices.Max(lat)), "max-ms")
			b.ReportMetric(100*float64(early)/float64(n), "early-%")
			b.ReportMetric(ms(quantile(fromStart, 0.5)), "step-p50-ms")
			b.ReportMetric(ms(quantile(fromStart, 0.99)), "step-p99-ms")
			b.ReportMetric(float64(n), "crossings")
		})
	}
}

// BenchmarkWatchCost measures the watcher's CPU time with 200 programs in
// empty memory cgroups (a check reads one small file) sampled every
// second for 10 s per round, and reports it per program per hour of
// watching. The test process is idle otherwise, so its CPU time is the
// watcher's.
//
//	go test ./memwatch -run '^$' -bench WatchCost -benchtime 1x
func BenchmarkWatchCost(b *testing.B) {
	const programs, round = 200, 10 * time.Second
	w, _ := benchWatcher(b, Config{SampleInterval: time.Second})
	for i := range programs {
		cg := testenv.NewMemoryCgroup(b, 64*mib)
		remove, err := w.Add(fmt.Sprintf("p%03d", i), Target{Dir: cg.Dir, V2: cg.V2}, Spec{Above: 32 * mib, For: 30 * time.Second, WarnAbove: 16 * mib})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(remove)
	}
	cpu := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	var spent time.Duration
	for range b.N {
		c0 := cpu()
		time.Sleep(round)
		spent += cpu() - c0
	}
	perHour := spent.Seconds() / float64(programs) / (float64(b.N) * round.Hours())
	b.ReportMetric(perHour*1000, "cpu-ms/program-hour")
}
