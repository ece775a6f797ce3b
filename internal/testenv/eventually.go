package testenv

import (
	"context"
	"sync"
	"testing"
	"time"
)

// WaitTimeout bounds every wait of a test for something that should
// happen: generous, since a loaded machine is slow, and only ever reached
// when the test fails.
const WaitTimeout = 20 * time.Second

// Eventually polls cond every few milliseconds until it holds, failing the
// test with what after WaitTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Run runs run (a component's Run method) in a goroutine until the test
// ends, or until the returned stop is called: stop cancels run's context
// and waits up to WaitTimeout for it to return, failing the test if it
// returns an error or does not return. stop may be called more than once.
func Run(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(WaitTimeout):
				t.Errorf("Run did not return within %v", WaitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
