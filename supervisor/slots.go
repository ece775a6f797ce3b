package supervisor

import (
	"container/heap"
	"sync"
	"time"
)

// workSlots are the supervisor's work slots (Config.Parallel): a loop
// takes one to handle an event that makes blocking system calls. When all
// are taken, waiters get them in the order of their keys, not of their
// arrival: a death's key is the moment it was reaped, so that in an OOM
// storm deaths are handled, and their programs restarted, in the order
// they died, even by a loop that came to the queue late (it was waiting
// for a slot for something else). Other events' key is the moment they
// asked.
type workSlots struct {
	mu      sync.Mutex
	free    int
	seq     uint64
	waiters slotQueue
}

func newWorkSlots(n int) *workSlots { return &workSlots{free: n} }

// take waits for a slot; ask ranks the waiter (see workSlots).
func (w *workSlots) take(ask time.Time) {
	w.mu.Lock()
	if w.free > 0 && len(w.waiters) == 0 {
		w.free--
		w.mu.Unlock()
		return
	}
	w.seq++
	s := &slotWaiter{ask: ask, seq: w.seq, ready: make(chan struct{})}
	heap.Push(&w.waiters, s)
	w.mu.Unlock()
	<-s.ready
}

// give returns a slot: to the first waiter, if any.
func (w *workSlots) give() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.waiters) == 0 {
		w.free++
		return
	}
	close(heap.Pop(&w.waiters).(*slotWaiter).ready)
}

type slotWaiter struct {
	ask   time.Time
	seq   uint64 // arrival: ties go to the first come
	ready chan struct{}
}

// slotQueue is a heap of waiters, earliest ask first.
type slotQueue []*slotWaiter

func (q slotQueue) Len() int { return len(q) }
func (q slotQueue) Less(i, j int) bool {
	if !q[i].ask.Equal(q[j].ask) {
		return q[i].ask.Before(q[j].ask)
	}
	return q[i].seq < q[j].seq
}
func (q slotQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *slotQueue) Push(x any)   { *q = append(*q, x.(*slotWaiter)) }
func (q *slotQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}
