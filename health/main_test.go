package health

import (
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfRequested()
	restart.RunShimIfRequested()
	runLocalHelperIfRequested()
	os.Exit(m.Run())
}

// waitTimeout bounds every wait for something that should happen; tests
// poll against it rather than sleep.
const waitTimeout = 20 * time.Second

// verifyNoLeaks checks for leaked goroutines after every cleanup
// registered later (cleanups run last-registered first).
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// timedEvent is an Event and when it was reported.
type timedEvent struct {
	Event
	at time.Time
}

// recorder collects what a watch reports: its events and the results
// Observe saw.
type recorder struct {
	mu       sync.Mutex
	events   []timedEvent
	results  []Result
	programs []string
}

func (r *recorder) notify(e Event) {
	r.mu.Lock()
	r.events = append(r.events, timedEvent{e, time.Now()})
	r.mu.Unlock()
}

func (r *recorder) observe(program string, res Result, _ time.Duration) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.programs = append(r.programs, program)
	r.mu.Unlock()
}

func (r *recorder) getEvents() []timedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) getResults() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.results)
}

// kinds returns the kinds of the events so far.
func (r *recorder) kinds() []EventKind {
	var out []EventKind
	for _, e := range r.getEvents() {
		out = append(out, e.Kind)
	}
	return out
}

// first returns the first event of kind k, if any.
func (r *recorder) first(k EventKind) (timedEvent, bool) {
	for _, e := range r.getEvents() {
		if e.Kind == k {
			return e, true
		}
	}
	return timedEvent{}, false
}

// startChecker makes a Checker with cfg (its Observe set to rec's when
// rec is not nil) and runs it until the test ends; the returned function
// ends Run earlier and waits for it to return.
func startChecker(t *testing.T, cfg Config, rec *recorder) (*Checker, func()) {
	t.Helper()
	if rec != nil && cfg.Observe == nil {
		cfg.Observe = rec.observe
	}
	c := New(cfg)
	return c, testenv.Run(t, c.Run)
}
