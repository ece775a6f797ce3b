//go:build !linux

package testenv

import "testing"

// RequireRoot skips: privileged tests need Linux.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	Skip(t, "%s needs Linux", what)
}

// RequireKmsg skips: /dev/kmsg is Linux's.
func RequireKmsg(t testing.TB, what string) {
	t.Helper()
	Skip(t, "%s needs Linux", what)
}
