package testenv

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// KernelAtLeast reports whether the running kernel's release is at least
// major.minor. Tests use it where the kernel, not respawnd, decides what can
// be known (PIDFD_INFO_EXIT since 6.15, per-fd memory.peak reset since
// 6.12), so that they assert the stronger promise where the kernel makes it
// possible and the weaker one elsewhere, instead of skipping.
func KernelAtLeast(t testing.TB, major, minor int) bool {
	t.Helper()
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatalf("uname: %v", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	maj, min, ok := parseRelease(release)
	if !ok {
		t.Fatalf("kernel release %q: no major.minor", release)
	}
	return maj > major || maj == major && min >= minor
}

// parseRelease reads the leading "MAJOR.MINOR" of a kernel release such as
// "6.1.0-57-amd64".
func parseRelease(s string) (major, minor int, ok bool) {
	a, rest, found := strings.Cut(s, ".")
	if !found {
		return 0, 0, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	maj, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	min, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0, 0, false
	}
	return maj, min, true
}
