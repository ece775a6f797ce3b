package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns every privileged skip
// into a failure; CI sets it so that no privileged test is silently skipped.
const RequireEnv = "RESPAWND_REQUIRE_ROOT_TESTS"

// Skip skips the test with a message, or fails it when RequireEnv is "1".
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but the test would skip: %s", RequireEnv, msg)
	}
	t.Skip(msg)
}
