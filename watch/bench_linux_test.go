package watch

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

var (
	idleFor   = flag.Duration("watch.idle", 60*time.Second, "how long BenchmarkWatchIdle watches its idle processes")
	idleProcs = flag.Int("watch.procs", 1000, "how many processes BenchmarkWatchIdle watches")
	kills     = flag.Int("watch.kills", 200, "how many kills BenchmarkKillToDone times per kind")
)

const sleepBin = "/bin/sleep"

// BenchmarkWatchIdle measures the CPU that watching -watch.procs matched,
// idle processes costs over -watch.idle: the whole test process's user
// plus system time from getrusage, as a percentage of one core. One run
// does the whole measurement, whatever b.N.
//
//	go test -run '^$' -bench WatchIdle -benchtime 1x ./watch
func BenchmarkWatchIdle(b *testing.B) {
	if _, err := os.Stat(sleepBin); err != nil {
		testenv.Skip(b, "the benchmark runs %s: %v", sleepBin, err)
	}
	tag := fmt.Sprintf("3600.%d", os.Getpid())
	for range *idleProcs {
		startChild(b, sleepBin, tag)
	}
	s := liveScanner(b)
	matched, err := s.Match(Matcher{Comm: "sleep", Cmdline: regexp.MustCompile("^" + regexp.QuoteMeta(sleepBin+" "+tag) + "$")})
	if err != nil || len(matched) != *idleProcs {
		b.Fatalf("matched %d of %d: %v", len(matched), *idleProcs, err)
	}
	w, err := NewWatcher(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range matched {
		if _, err := w.Watch(p.Identity); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	for b.Loop() {
		before, t0 := cpuTime(b), time.Now()
		time.Sleep(*idleFor)
		used, wall := cpuTime(b)-before, time.Since(t0)
		b.ReportMetric(100*used.Seconds()/wall.Seconds(), "%cpu")
		b.ReportMetric(float64(w.Len()), "watched")
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkKillToDone times SIGKILL to the report of the death for
// -watch.kills watched non-children (Done closes) and, as the floor, for
// as many children of the benchmark (wait returns). It reports p50 and p99
// of each. One run does the whole measurement, whatever b.N.
//
//	go test -run '^$' -bench KillToDone -benchtime 1x ./watch
func BenchmarkKillToDone(b *testing.B) {
	if _, err := os.Stat(sleepBin); err != nil {
		testenv.Skip(b, "the benchmark runs %s: %v", sleepBin, err)
	}
	for b.Loop() {
		w, err := NewWatcher(Config{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()

		var procs []*Proc
		for range *kills {
			p, err := w.Watch(startNonChild(b, sleepBin, "3600"))
			if err != nil {
				b.Fatal(err)
			}
			procs = append(procs, p)
		}
		var watched []time.Duration
		unknown := 0
		for _, p := range procs {
			t0 := time.Now()
			if err := unix.Kill(p.PID(), unix.SIGKILL); err != nil { // pid checked alive by Watch just before
				b.Fatal(err)
			}
			<-p.Done()
			watched = append(watched, time.Since(t0))
			if ex := p.Exit(); !ex.Known || ex.Signal != syscall.SIGKILL {
				unknown++
			}
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if unknown > 0 {
			b.Errorf("%d deaths without a known SIGKILL status", unknown)
		}

		var children []*exec.Cmd
		for range *kills {
			children = append(children, startChild(b, sleepBin, "3600"))
		}
		var waited []time.Duration
		for _, c := range children {
			t0 := time.Now()
			_ = c.Process.Kill()
			_, _ = c.Process.Wait()
			waited = append(waited, time.Since(t0))
		}
		b.ReportMetric(float64(pct(watched, 50).Microseconds()), "nonchild-p50-µs")
		b.ReportMetric(float64(pct(watched, 99).Microseconds()), "nonchild-p99-µs")
		b.ReportMetric(float64(pct(waited, 50).Microseconds()), "child-p50-µs")
		b.ReportMetric(float64(pct(waited, 99).Microseconds()), "child-p99-µs")
	}
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
