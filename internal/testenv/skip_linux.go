package testenv

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips unless the process holds the capabilities that
// privileged tests need (CAP_SYS_ADMIN for cgroups, CAP_KILL, CAP_SETUID).
// It probes the effective capability set rather than comparing the uid to 0.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		Skip(t, "%s needs root; skipped under -short", what)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatalf("%s: reading capabilities: %v", what, err)
	}
	for _, c := range []uint{unix.CAP_SYS_ADMIN, unix.CAP_KILL, unix.CAP_SETUID} {
		if data[c/32].Effective&(1<<(c%32)) == 0 {
			Skip(t, "%s needs root (capability %d missing)", what, c)
		}
	}
}

// RequireKmsg skips unless /dev/kmsg can be opened for reading.
func RequireKmsg(t testing.TB, what string) {
	t.Helper()
	RequireRoot(t, what)
	f, err := os.Open("/dev/kmsg")
	switch {
	case err == nil:
		_ = f.Close()
	case errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrNotExist):
		Skip(t, "%s needs /dev/kmsg: %v", what, err)
	default:
		t.Fatalf("%s: opening /dev/kmsg: %v", what, err)
	}
}

// RequireCgroupV1 skips the test unless the memory controller is on a
// cgroup v1 hierarchy. The cgroup version is a dimension of the test
// matrix, not a privilege: on a host with the memory controller on cgroup
// v2 the test skips with the reason even when RequireEnv is "1" (the run on
// a cgroup v1 host covers it). A host with no memory controller at all
// skips through Skip.
func RequireCgroupV1(t testing.TB, what string) {
	t.Helper()
	requireCgroup(t, what, false)
}

// RequireCgroupV2 skips the test unless the memory controller is on the
// cgroup v2 hierarchy; see RequireCgroupV1.
func RequireCgroupV2(t testing.TB, what string) {
	t.Helper()
	requireCgroup(t, what, true)
}

func requireCgroup(t testing.TB, what string, wantV2 bool) {
	t.Helper()
	_, v2, err := memoryRoot()
	if err != nil {
		Skip(t, "%s: %v", what, err)
	}
	if v2 != wantV2 && wantV2 && os.Getenv("RESPAWND_VM_GUEST") == "1" {
		// The VM guests are cgroup-v2-only: a v2 test that finds no v2
		// memory controller there is a broken detection, not a dimension
		// of the matrix, and must not be listed apart as one.
		Skip(t, "%s needs the memory controller on cgroup v2, which this v2-only guest should have, but it was found on v1", what)
	}
	if v2 != wantV2 {
		t.Skipf("%s needs the memory controller on %s and this host has it on %s: a dimension of the test matrix, not a missing privilege (the %s run covers it)",
			what, cgroupName(wantV2), cgroupName(v2), cgroupName(wantV2))
	}
}

func cgroupName(v2 bool) string {
	if v2 {
		return "cgroup v2"
	}
	return "cgroup v1"
}
