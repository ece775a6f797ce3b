package watch

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
	"github.com/respawnd/respawnd/internal/testenv"
)

// TestPidfileOfOthers plants what a user other than the matched one can
// plant on the way to a pidfile: respawnd must not take a pid from it.
func TestPidfileOfOthers(t *testing.T) {
	testenv.RequireRoot(t, "pidfiles owned by other users")
	nobody := nobodyUID(t)
	dir := t.TempDir()
	write := func(path, content string, uid int) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(path string, mode uint32, uid int) {
		t.Helper()
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(dir+"/run", 0o755, 0)
	write(dir+"/run/root.pid", "1\n", 0)
	mkdir(dir+"/run/user", 0o755, nobody) // the matched user's own directory
	write(dir+"/run/user/app.pid", "42\n", nobody)
	mkdir(dir+"/tmp", 0o1777, 0)
	write(dir+"/tmp/app.pid", "42\n", nobody)
	if err := os.Symlink(dir+"/run/root.pid", dir+"/tmp/link.pid"); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(dir+"/tmp/link.pid", nobody, nobody); err != nil {
		t.Fatal(err)
	}
	mkdir(dir+"/open", 0o777, 0)
	write(dir+"/open/app.pid", "42\n", 0)

	rootOnly := []int{0}
	withNobody := []int{0, nobody}
	tests := []struct {
		path    string
		trusted []int
		want    int
		refusal error
	}{
		{dir + "/run/root.pid", rootOnly, 1, nil},
		{dir + "/run/user/app.pid", withNobody, 42, nil},
		{dir + "/tmp/app.pid", withNobody, 42, nil},
		{dir + "/run/user/app.pid", rootOnly, 0, securefs.ErrUntrustedOwner},
		{dir + "/tmp/app.pid", rootOnly, 0, securefs.ErrUntrustedOwner},
		{dir + "/tmp/link.pid", rootOnly, 0, securefs.ErrUntrustedOwner},
		{dir + "/open/app.pid", withNobody, 0, securefs.ErrWritableByOthers},
		{dir + "/run/missing.pid", rootOnly, 0, nil},
	}
	for _, tt := range tests {
		pid, ok, err := readPidfile(tt.path, tt.trusted)
		switch {
		case tt.refusal != nil:
			if !errors.Is(err, tt.refusal) || ok || !strings.Contains(err.Error(), "pidfile "+tt.path) {
				t.Errorf("%s trusting %v: %d, %v, %v; want a refusal wrapping %v", tt.path, tt.trusted, pid, ok, err, tt.refusal)
			}
		case err != nil || pid != tt.want || ok != (tt.want != 0):
			t.Errorf("%s trusting %v: %d, %v, %v; want %d", tt.path, tt.trusted, pid, ok, err, tt.want)
		}
	}

	// Through Match: the pidfile of another user than the matched one is
	// an error, the matched user's is read.
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Match(Matcher{Pidfile: dir + "/tmp/app.pid"}); !errors.Is(err, securefs.ErrUntrustedOwner) {
		t.Errorf("Match with nobody's pidfile: %v, want a refusal", err)
	}
	if _, err := s.Match(Matcher{Pidfile: dir + "/tmp/app.pid", User: "nobody"}); err != nil {
		t.Errorf("Match with the matched user's pidfile: %v", err)
	}
}
