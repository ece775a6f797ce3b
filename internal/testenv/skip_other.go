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

// RequireCgroupV1 skips: cgroups are Linux's.
func RequireCgroupV1(t testing.TB, what string) {
	t.Helper()
	Skip(t, "%s needs Linux", what)
}

// RequireCgroupV2 skips: cgroups are Linux's.
func RequireCgroupV2(t testing.TB, what string) {
	t.Helper()
	Skip(t, "%s needs Linux", what)
}
