package supervisor

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/respawnd/respawnd/config"
)

// TestIdleLoopStack pins what an idle program costs in stack: a loop
// parked in wait keeps only small frames on its stack, so the garbage
// collector shrinks its goroutine's stack to 4 KiB once a start's deeper
// calls are over. A handler's frame left below the select (waiting and
// handling in one function, say) holds every idle loop at 8 KiB: for a
// thousand programs, 4 MiB of the daemon's memory.
func TestIdleLoopStack(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector's frames keep every stack at 8 KiB; the cgroup-v2 guests of test/all run this test without it")
	}
	const n = 300
	stacks := func() (inuse uint64, goroutines int) {
		// A stack shrinks by half at most once per collection: from the
		// 16 KiB a start may reach, three bring it to 2 KiB if it can go
		// that low.
		for range 4 {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse, runtime.NumGoroutine()
	}
	h := newHarness(t)
	s0, g0 := stacks()
	ps := make([]config.Program, n)
	for i := range ps {
		ps[i] = prog(fmt.Sprintf("p%d", i))
	}
	h.apply(ps...)
	h.waitStarts(n)
	h.sync()
	s1, g1 := stacks()
	if g1-g0 < n {
		t.Fatalf("%d goroutines more for %d programs", g1-g0, n)
	}
	per := float64(s1-s0) / float64(g1-g0)
	t.Logf("%d goroutines more, %.0f bytes of stack each", g1-g0, per)
	if per > 5<<10 {
		t.Errorf("an idle program loop keeps %.0f bytes of stack, want at most 4 KiB (and a little for the harness's own)", per)
	}
}
