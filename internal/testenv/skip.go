package testenv

import (
	"fmt"
	"os"
	"os/exec"
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

// RequireProgram returns the path of the program name, looked up in PATH,
// for a test that runs a real client or daemon from a distribution package
// (pkg names it). Where it is missing the test skips through Skip, a
// failure under RequireEnv (CI installs it), except in the test guests
// (RESPAWND_VM_GUEST=1): they are minimal systems by design, and the host
// run covers the test, as for a cgroup version.
func RequireProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	switch {
	case err == nil:
		return p
	case os.Getenv("RESPAWND_VM_GUEST") == "1":
		t.Skipf("%s (Debian package %s) is not in the test guest: a dimension of the test matrix, which the host run covers", name, pkg)
	default:
		Skip(t, "%s (Debian package %s) is not installed: %v", name, pkg, err)
	}
	return ""
}
