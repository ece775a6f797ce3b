package testenv

import (
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
