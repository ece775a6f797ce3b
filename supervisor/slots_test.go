package supervisor

import (
	"sync"
	"testing"
	"time"
)

// TestWorkSlotsServeEarliestFirst: with every slot taken, waiters get
// slots in the order of their keys whatever the order they came in, and
// those of one key in the order they came.
func TestWorkSlotsServeEarliestFirst(t *testing.T) {
	w := newWorkSlots(1)
	w.take(time.Unix(100, 0)) // the only slot
	t0 := time.Unix(0, 0)
	asks := []time.Duration{5, 1, 3, 1, 0, 4}
	var mu sync.Mutex
	var served []int
	var wg sync.WaitGroup
	for i, d := range asks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.take(t0.Add(d * time.Second))
			mu.Lock()
			served = append(served, i)
			mu.Unlock()
			w.give()
		}()
		// Each waiter queues before the next comes.
		for {
			w.mu.Lock()
			n := len(w.waiters)
			w.mu.Unlock()
			if n == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	w.give()
	wg.Wait()
	want := []int{4, 1, 3, 2, 5, 0}
	for i := range want {
		if served[i] != want[i] {
			t.Fatalf("served %v, want %v", served, want)
		}
	}
	// Every slot is back: n takes do not block.
	w.take(t0)
	w.give()
	if w.free != 1 {
		t.Fatalf("%d free slots, want 1", w.free)
	}
}
