package watch

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
	"github.com/respawnd/respawnd/internal/testenv"
)

func openStateDir(t *testing.T, path string) *StateDir {
	t.Helper()
	d, err := OpenStateDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestStateDirRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state") // created by OpenStateDir
	d := openStateDir(t, path)
	if d.Path() != path {
		t.Errorf("Path() = %q, want %q", d.Path(), path)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, %v; want 0700", st.Mode(), err)
	}
	if got, err := d.Load(); err != nil || got != nil {
		t.Errorf("Load without a file = %v, %v", got, err)
	}
	want := testEntries()
	for _, sync := range []bool{true, false} {
		if err := d.Write(want, sync); err != nil {
			t.Fatal(err)
		}
		got, err := d.Load()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Load = %+v, %v; want %+v", got, err, want)
		}
	}
	st, err := os.Stat(filepath.Join(path, StateFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v", st.Mode(), err)
	}
	if err := d.Write(nil, true); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Load(); err != nil || got != nil {
		t.Fatalf("after writing nothing: %+v, %v", got, err)
	}
	// Entries Load would refuse are not written.
	if err := d.Write([]StateEntry{{Program: "api", PID: 0}}, false); err == nil || !strings.Contains(err.Error(), "entry 0: pid") {
		t.Errorf("Write of a bad entry: %v", err)
	}

	// A temporary file left by a crash goes at the next open; nothing else
	// is left behind.
	if err := os.WriteFile(filepath.Join(path, "."+StateFile+".123.7.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	openStateDir(t, path)
	names, _ := os.ReadDir(path)
	if len(names) != 1 || names[0].Name() != StateFile {
		t.Errorf("files left in the state dir: %v", names)
	}
	// Relative paths are taken from the working directory.
	t.Chdir(filepath.Dir(path))
	if d := openStateDir(t, "state"); d.Path() != path {
		t.Errorf("relative: Path() = %q", d.Path())
	}
}

func TestStateDirLoadCorrupt(t *testing.T) {
	d := openStateDir(t, t.TempDir())
	if err := os.WriteFile(filepath.Join(d.Path(), StateFile), []byte(`{"version":1,"entries":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := d.Load()
	if !errors.Is(err, ErrCorruptState) || got != nil || !strings.Contains(err.Error(), "older respawnd") {
		t.Errorf("Load of a version 1 file = %v, %v; want ErrCorruptState", got, err)
	}
}

func TestStateDirRefusesFiles(t *testing.T) {
	dir := t.TempDir()
	d := openStateDir(t, dir)
	state := filepath.Join(dir, StateFile)
	good, err := encodeState(testEntries())
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.json")
	if err := os.WriteFile(elsewhere, good, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		setup func(t *testing.T)
		want  error
	}{
		"symbolic link": {func(t *testing.T) {
			if err := os.Symlink(elsewhere, state); err != nil {
				t.Fatal(err)
			}
		}, securefs.ErrSymlink},
		"hard link": {func(t *testing.T) {
			if err := os.Link(elsewhere, state); err != nil {
				t.Fatal(err)
			}
		}, securefs.ErrHardLink},
		"directory": {func(t *testing.T) {
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
		}, securefs.ErrNotRegular},
		"FIFO": {func(t *testing.T) {
			if err := unix.Mkfifo(state, 0o600); err != nil {
				t.Fatal(err)
			}
		}, securefs.ErrNotRegular},
		"writable by others": {func(t *testing.T) {
			if err := os.WriteFile(state, good, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, 0o666); err != nil {
				t.Fatal(err)
			}
		}, nil},
		"writable by the group": {func(t *testing.T) {
			if err := os.WriteFile(state, good, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, 0o620); err != nil {
				t.Fatal(err)
			}
		}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { _ = os.RemoveAll(state) })
			tc.setup(t)
			got, err := d.Load()
			if err == nil || got != nil || errors.Is(err, ErrCorruptState) {
				t.Fatalf("Load = %v, %v; want a refusal that is not ErrCorruptState", got, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), state) {
				t.Errorf("error %q does not name %s", err, state)
			}
		})
	}
	// Write replaces whatever is there by a file of its own.
	if err := os.Symlink(elsewhere, state); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(nil, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(elsewhere); !bytes.Equal(b, good) {
		t.Error("Write wrote through a link")
	}
	if fi, err := os.Lstat(state); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("state file after Write: %v, %v", fi, err)
	}
}

// secretHelperEnv makes TestSecretHelper print the secret of the state
// directory it names: the secret as another process sees it.
const secretHelperEnv = "RESPAWND_WATCH_TEST_SECRET_DIR"

func TestSecretHelper(t *testing.T) {
	dir := os.Getenv(secretHelperEnv)
	if dir == "" {
		return // run by TestSecret only
	}
	d, err := OpenStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := d.Secret()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("secret=" + hex.EncodeToString(b) + "\n")
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	d := openStateDir(t, dir)
	s1, err := d.Secret()
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != SecretSize || bytes.Equal(s1, make([]byte, SecretSize)) {
		t.Fatalf("secret %x", s1)
	}
	s2, err := d.Secret()
	if err != nil || !bytes.Equal(s1, s2) {
		t.Errorf("second call: %x, %v; want %x", s2, err, s1)
	}
	fi, err := os.Stat(filepath.Join(dir, SecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, %v; want 0600", fi.Mode(), err)
	}
	// Another process, another StateDir: the same secret.
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecretHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), secretHelperEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if want := "secret=" + hex.EncodeToString(s1) + "\n"; !strings.Contains(string(out), want) {
		t.Errorf("another process read\n%s\nwant %s", out, want)
	}

	// A fresh directory gets a fresh secret.
	other, err := openStateDir(t, t.TempDir()).Secret()
	if err != nil || bytes.Equal(other, s1) {
		t.Errorf("secret of another directory: %x, %v", other, err)
	}

	path := filepath.Join(dir, SecretFile)
	for name, mutate := range map[string]func() error{
		"readable by others": func() error { return os.Chmod(path, 0o604) },
		"wrong size":         func() error { return os.WriteFile(path, []byte("short"), 0o600) },
		"symbolic link": func() error {
			target := filepath.Join(t.TempDir(), "s")
			if err := os.WriteFile(target, s1, 0o600); err != nil {
				return err
			}
			_ = os.Remove(path)
			return os.Symlink(target, path)
		},
	} {
		t.Run(name, func(t *testing.T) {
			_ = os.Remove(path)
			if err := os.WriteFile(path, s1, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := mutate(); err != nil {
				t.Fatal(err)
			}
			if b, err := d.Secret(); err == nil {
				t.Errorf("Secret = %x, want a refusal", b)
			}
		})
	}
}

func nobodyUID(t *testing.T) int {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		testenv.Skip(t, "no user nobody: %v", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// chmodExact sets mode past the umask, with the sticky bit as the kernel
// spells it.
func chmodExact(t *testing.T, path string, mode uint32) {
	t.Helper()
	if err := unix.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestOpenStateDirRefuses(t *testing.T) {
	testenv.RequireRoot(t, "state directories owned by other users")
	nobody := nobodyUID(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the state dir path
		want  []string                               // in the message
	}{
		{"owned by nobody", func(t *testing.T, base string) string {
			p := base + "/state"
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return p
		}, []string{"owned by uid " + strconv.Itoa(nobody), "fix: chown root " + "BASE/state"}},
		{"mode 0777", func(t *testing.T, base string) string {
			p := base + "/state"
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			chmodExact(t, p, 0o777)
			return p
		}, []string{"writable by others", "fix: chmod o-w BASE/state"}},
		{"mode 0770", func(t *testing.T, base string) string {
			p := base + "/state"
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			chmodExact(t, p, 0o770)
			return p
		}, []string{"writable by its group or others (mode 0770)", "fix: chmod go-w BASE/state"}},
		{"parent writable by others", func(t *testing.T, base string) string {
			chmodExact(t, base, 0o777)
			return base + "/state"
		}, []string{"writable by others (mode 0777) and not sticky", "fix: chmod o-w BASE"}},
		{"link of nobody to a directory elsewhere", func(t *testing.T, base string) string {
			if err := os.Mkdir(base+"/elsewhere", 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(base+"/elsewhere", base+"/state"); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(base+"/state", nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return base + "/state"
		}, []string{"BASE/state: symbolic link owned by uid " + strconv.Itoa(nobody)}},
		{"link to nobody's directory", func(t *testing.T, base string) string {
			if err := os.Mkdir(base+"/elsewhere", 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(base+"/elsewhere", nobody, nobody); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(base+"/elsewhere", base+"/state"); err != nil {
				t.Fatal(err)
			}
			return base + "/state"
		}, []string{"BASE/elsewhere: owned by uid " + strconv.Itoa(nobody)}},
		{"missing parent", func(t *testing.T, base string) string {
			return base + "/missing/state"
		}, []string{"fix: create BASE/missing first"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			path := tt.setup(t, base)
			d, err := OpenStateDir(path)
			if err == nil {
				d.Close()
				t.Fatal("OpenStateDir succeeded, want a refusal")
			}
			t.Log(err)
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "BASE", base); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// A sticky parent writable by everyone, like /tmp, is fine.
	base := t.TempDir()
	chmodExact(t, base, 0o1777)
	openStateDir(t, base+"/state")
}

func TestStateDirRefusesFilesOfOthers(t *testing.T) {
	testenv.RequireRoot(t, "state files owned by other users")
	nobody := nobodyUID(t)
	d := openStateDir(t, t.TempDir())
	for _, name := range []string{StateFile, SecretFile} {
		path := filepath.Join(d.Path(), name)
		content, err := encodeState(nil)
		if err != nil {
			t.Fatal(err)
		}
		if name == SecretFile {
			content = bytes.Repeat([]byte{1}, SecretSize)
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		var lerr error
		if name == StateFile {
			_, lerr = d.Load()
		} else {
			_, lerr = d.Secret()
		}
		if !errors.Is(lerr, securefs.ErrUntrustedOwner) || errors.Is(lerr, ErrCorruptState) {
			t.Errorf("%s owned by nobody: %v, want a refusal for its owner", name, lerr)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil || int(st.Uid) != nobody {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	if _, err := d.Load(); errors.Is(err, fs.ErrNotExist) {
		t.Error("refusal reported as a missing file")
	}
}
