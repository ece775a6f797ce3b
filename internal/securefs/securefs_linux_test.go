package securefs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
	"github.com/respawnd/respawnd/internal/testenv"
)

// self trusts root and the user running the test, so that the unprivileged
// tests work in the test's own temporary directory.
var self = securefs.Policy{Trusted: []int{0, os.Geteuid()}}

// rootOnly trusts root alone.
var rootOnly = securefs.Policy{Trusted: []int{0}}

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

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	// Past the umask, with the sticky bit as the kernel spells it.
	if err := unix.Chmod(path, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string, uid int) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Lchown(path, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readVia opens path with OpenFile and returns its content.
func readVia(path string, p securefs.Policy) (string, error) {
	f, err := securefs.OpenFile(path, os.O_RDONLY, 0, p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b [256]byte
	n, err := f.Read(b[:])
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// wantRefusal checks that err is an *Error wrapping want whose component is
// comp.
func wantRefusal(t *testing.T, err, want error, comp string) {
	t.Helper()
	var se *securefs.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want a *securefs.Error wrapping %v", err, err, want)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v does not wrap %v", err, want)
	}
	if se.Component != comp {
		t.Errorf("error %v names component %q, want %q", err, se.Component, comp)
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "file"), "content")
	if got, err := readVia(filepath.Join(dir, "file"), self); err != nil || got != "content" {
		t.Fatalf("read %q, %v", got, err)
	}

	// Created with perm (less the umask), appended to, in blocking mode.
	path := filepath.Join(dir, "new")
	for _, s := range []string{"a", "b"} {
		f, err := securefs.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600, self)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != path {
			t.Errorf("Name() = %q, want %q", f.Name(), path)
		}
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Errorf("flags %#x, %v: want O_NONBLOCK cleared", fl, err)
		}
		if fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
			t.Error("descriptor not close-on-exec")
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if got := read(t, path); got != "ab" {
		t.Errorf("content %q, want ab", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", fi.Mode(), err)
	}

	// O_TRUNC truncates an accepted file.
	f, err := securefs.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0, self)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := read(t, path); got != "" {
		t.Errorf("after O_TRUNC: %q", got)
	}

	// System errors pass through.
	_, err = securefs.OpenFile(filepath.Join(dir, "missing", "file"), os.O_RDONLY, 0, self)
	wantRefusal(t, err, fs.ErrNotExist, filepath.Join(dir, "missing"))
	_, err = securefs.OpenFile(filepath.Join(dir, "file", "x"), os.O_RDONLY, 0, self)
	wantRefusal(t, err, syscall.ENOTDIR, filepath.Join(dir, "file"))
	_, err = securefs.OpenFile(dir, os.O_RDONLY, 0, self)
	wantRefusal(t, err, securefs.ErrNotRegular, dir)
	_, err = securefs.OpenFile("relative/path", os.O_RDONLY, 0, self)
	wantRefusal(t, err, securefs.ErrNotAbsolute, "relative/path")
}

func TestDotDot(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "a"), 0o755)
	mkdir(t, filepath.Join(dir, "b"), 0o755)
	write(t, filepath.Join(dir, "b", "file"), "b")
	for _, p := range []string{
		dir + "/a/../b/file",
		dir + "/./a/.././b//file",
		"/../../.." + dir + "/b/file",
	} {
		if got, err := readVia(p, self); err != nil || got != "b" {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}
	// A path that ends at a directory is no file.
	_, err := securefs.OpenFile(dir+"/a/..", os.O_RDONLY, 0, self)
	wantRefusal(t, err, securefs.ErrNotRegular, dir)
}

func TestSymlinksOfTrustedOwners(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "real"), 0o755)
	mkdir(t, filepath.Join(dir, "real", "sub"), 0o755)
	write(t, filepath.Join(dir, "real", "sub", "file"), "x")
	symlink(t, filepath.Join(dir, "real"), filepath.Join(dir, "abs"), -1)    // absolute, middle
	symlink(t, "real/sub", filepath.Join(dir, "rel"), -1)                    // relative, middle
	symlink(t, "../sub/./file", filepath.Join(dir, "real", "sub", "up"), -1) // ".." in the target, last
	symlink(t, "/", filepath.Join(dir, "root"), -1)
	symlink(t, "abs", filepath.Join(dir, "chain"), -1)
	symlink(t, "sub/file", filepath.Join(dir, "real", "last"), -1)
	for _, p := range []string{
		dir + "/abs/sub/file",
		dir + "/rel/file",
		dir + "/real/sub/up",
		dir + "/abs/sub/up",
		dir + "/root" + dir + "/real/sub/file",
		dir + "/chain/last",
		dir + "/rel/../sub/file", // ".." after a link: the physical parent, real
	} {
		if got, err := readVia(p, self); err != nil || got != "x" {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}
	// Creating through a dangling link of a trusted owner creates its
	// target.
	symlink(t, "real/created", filepath.Join(dir, "dangling"), -1)
	f, err := securefs.OpenFile(filepath.Join(dir, "dangling"), os.O_WRONLY|os.O_CREATE, 0o644, self)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.Stat(filepath.Join(dir, "real", "created")); err != nil {
		t.Error(err)
	}
}

func TestSymlinkLimits(t *testing.T) {
	dir := t.TempDir()
	symlink(t, "b", filepath.Join(dir, "a"), -1)
	symlink(t, "a", filepath.Join(dir, "b"), -1)
	symlink(t, "self", filepath.Join(dir, "self"), -1)
	for _, p := range []string{dir + "/a", dir + "/self", dir + "/a/x"} {
		_, err := securefs.OpenFile(p, os.O_RDONLY, 0, self)
		if !errors.Is(err, securefs.ErrTooManyLinks) {
			t.Errorf("%s: %v, want ErrTooManyLinks", p, err)
		}
	}
	// A chain of exactly 40 links resolves; 41 do not.
	write(t, filepath.Join(dir, "file"), "x")
	prev := "file"
	for i := range 41 {
		name := fmt.Sprintf("l%02d", 40-i)
		symlink(t, prev, filepath.Join(dir, name), -1)
		prev = name
	}
	if got, err := readVia(dir+"/l01", self); err != nil || got != "x" {
		t.Errorf("40 links: %q, %v", got, err)
	}
	if _, err := readVia(dir+"/l00", self); !errors.Is(err, securefs.ErrTooManyLinks) {
		t.Errorf("41 links: %v, want ErrTooManyLinks", err)
	}
}

func TestWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "open"), 0o777)
	write(t, filepath.Join(dir, "open", "file"), "x")
	_, err := readVia(dir+"/open/file", self)
	wantRefusal(t, err, securefs.ErrWritableByOthers, dir+"/open")
	if !strings.Contains(err.Error(), "writable by others (mode 0777) and not sticky") {
		t.Errorf("message %q", err)
	}

	mkdir(t, filepath.Join(dir, "sticky"), 0o1777)
	write(t, filepath.Join(dir, "sticky", "file"), "x")
	if got, err := readVia(dir+"/sticky/file", self); err != nil || got != "x" {
		t.Errorf("in a sticky directory: %q, %v", got, err)
	}

	mkdir(t, filepath.Join(dir, "group"), 0o775)
	write(t, filepath.Join(dir, "group", "file"), "x")
	if got, err := readVia(dir+"/group/file", self); err != nil || got != "x" {
		t.Errorf("in a group-writable directory: %q, %v", got, err)
	}
}

func TestHardLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	write(t, victim, "precious")
	if err := os.Link(victim, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_TRUNC} {
		_, err := securefs.OpenFile(dir+"/link", flag, 0, self)
		wantRefusal(t, err, securefs.ErrHardLink, dir+"/link")
	}
	if got := read(t, victim); got != "precious" {
		t.Errorf("victim now %q", got)
	}
}

func TestFIFODoesNotHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	open := func(flag int) error {
		errc := make(chan error, 1)
		go func() {
			f, err := securefs.OpenFile(fifo, flag, 0o640, self)
			if err == nil {
				f.Close()
			}
			errc <- err
		}()
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			// Release the blocked open with a reader and a writer.
			r, _ := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
			w, _ := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0)
			<-errc
			r.Close()
			w.Close()
			t.Fatalf("opening a FIFO with flags %#x hung", flag)
			return nil
		}
	}
	// No reader: the kernel refuses a non-blocking writer at once.
	if err := open(os.O_WRONLY | os.O_APPEND | os.O_CREATE); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("writing a FIFO without a reader: %v, want ENXIO", err)
	}
	if err := open(os.O_RDONLY); !errors.Is(err, securefs.ErrNotRegular) {
		t.Errorf("reading a FIFO: %v, want ErrNotRegular", err)
	}
	// With a reader the open succeeds and the type check refuses it.
	r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := open(os.O_WRONLY); !errors.Is(err, securefs.ErrNotRegular) || !strings.Contains(err.Error(), "is a FIFO") {
		t.Errorf("writing a FIFO with a reader: %v, want ErrNotRegular", err)
	}
}

func TestCharDevices(t *testing.T) {
	_, err := securefs.OpenFile("/dev/null", os.O_WRONLY, 0, self)
	wantRefusal(t, err, securefs.ErrNotRegular, "/dev/null")
	f, err := securefs.OpenFile("/dev/null", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640, securefs.Policy{Trusted: self.Trusted, CharDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestUntrustedOwners(t *testing.T) {
	testenv.RequireRoot(t, "building a tree owned by other users")
	nobody := nobodyUID(t)
	dir := t.TempDir()
	protected := filepath.Join(dir, "protected")
	mkdir(t, protected, 0o700)
	secret := filepath.Join(protected, "secret")
	write(t, secret, "secret")
	mkdir(t, filepath.Join(dir, "logs"), 0o755)
	if err := os.Chown(filepath.Join(dir, "logs"), nobody, nobody); err != nil {
		t.Fatal(err)
	}

	// The attack of the security review: the last component is a link
	// owned by the less-privileged user.
	symlink(t, secret, dir+"/logs/app.log", nobody)
	// A directory of that user, anywhere on the path.
	mkdir(t, dir+"/logs/sub", 0o755)
	write(t, dir+"/logs/sub/app.log", "")
	// A link of that user in the middle of the path.
	mkdir(t, dir+"/mid", 0o755)
	symlink(t, protected, dir+"/mid/link", nobody)
	// A file of another user in a directory of root.
	mkdir(t, dir+"/other", 0o755)
	write(t, dir+"/other/app.log", "")
	if err := os.Chown(dir+"/other/app.log", 4242, 4242); err != nil {
		t.Fatal(err)
	}
	// The same link in a sticky directory (there the kernel refuses an
	// O_CREAT open of another's link with EACCES before ELOOP).
	mkdir(t, dir+"/sticky", 0o1777)
	symlink(t, secret, dir+"/sticky/app.log", nobody)
	// A directory of root reached through root's own link is fine.
	symlink(t, protected, dir+"/rootlink", -1)

	tests := []struct {
		path string
		comp string
	}{
		{dir + "/logs/app.log", dir + "/logs"},
		{dir + "/sticky/app.log", dir + "/sticky/app.log"},
		{dir + "/logs/sub/app.log", dir + "/logs"},
		{dir + "/mid/link/secret", dir + "/mid/link"},
		{dir + "/other/app.log", dir + "/other/app.log"},
	}
	for _, tt := range tests {
		f, err := securefs.OpenFile(tt.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640, rootOnly)
		if err == nil {
			f.Close()
			t.Errorf("%s: opened, want ErrUntrustedOwner", tt.path)
			continue
		}
		wantRefusal(t, err, securefs.ErrUntrustedOwner, tt.comp)
	}
	_, err := securefs.OpenFile(dir+"/mid/link/secret", os.O_RDONLY, 0, rootOnly)
	if want := "securefs: " + dir + "/mid/link: symbolic link owned by uid " + strconv.Itoa(nobody) + ", not a trusted owner (resolving " + dir + "/mid/link/secret)"; err == nil || err.Error() != want {
		t.Errorf("message\n%v\nwant\n%s", err, want)
	}
	if got, err := readVia(dir+"/rootlink/secret", rootOnly); err != nil || got != "secret" {
		t.Errorf("through root's link: %q, %v", got, err)
	}
	// Trusting the user makes its objects acceptable (the kernel's own
	// permission checks still apply to the opener).
	withNobody := securefs.Policy{Trusted: []int{0, nobody}}
	f, err := securefs.OpenFile(dir+"/logs/sub/app.log", os.O_WRONLY|os.O_APPEND, 0, withNobody)
	if err != nil {
		t.Errorf("trusting uid %d: %v", nobody, err)
	} else {
		f.Close()
	}
	if got := read(t, secret); got != "secret" {
		t.Errorf("protected file now %q", got)
	}
}

// TestRaceSwapDirectoryForSymlink swaps a directory of root for a link of
// another user to a protected directory, atomically and as fast as it can,
// while the resolver opens a file in it: every open must give the file of
// the real directory or a refusal, never the protected file.
func TestRaceSwapDirectoryForSymlink(t *testing.T) {
	testenv.RequireRoot(t, "building a tree owned by other users")
	defer goleak.VerifyNone(t)
	nobody := nobodyUID(t)
	dir := t.TempDir()
	mkdir(t, dir+"/protected", 0o755)
	write(t, dir+"/protected/f", "protected")
	mkdir(t, dir+"/d", 0o755)
	write(t, dir+"/d/f", "legit")
	symlink(t, dir+"/protected", dir+"/d.alt", nobody)

	stop := make(chan struct{})
	done := make(chan struct{})
	var swaps atomic.Int64
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, dir+"/d", unix.AT_FDCWD, dir+"/d.alt", unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swapping: %v", err)
				return
			}
			swaps.Add(1)
		}
	}()
	var opened, refused int
	for range 5000 {
		got, err := readVia(dir+"/d/f", rootOnly)
		switch {
		case err == nil && got == "legit":
			opened++
		case err == nil:
			close(stop)
			<-done
			t.Fatalf("opened %q through the attacker's link", got)
		case errors.Is(err, securefs.ErrUntrustedOwner):
			refused++
		default:
			close(stop)
			<-done
			t.Fatalf("unexpected error: %v", err)
		}
	}
	close(stop)
	<-done
	t.Logf("%d swaps: %d opens of the real file, %d refusals", swaps.Load(), opened, refused)
	if opened == 0 || refused == 0 {
		t.Errorf("the race did not happen both ways (%d opens, %d refusals)", opened, refused)
	}
}

func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	d, err := securefs.OpenDir(dir, self)
	if err != nil {
		t.Fatal(err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil || len(names) != 0 {
		t.Errorf("Readdirnames = %v, %v", names, err)
	}
	_, err = securefs.OpenDir(dir+"/missing", self)
	wantRefusal(t, err, fs.ErrNotExist, dir+"/missing")
	write(t, dir+"/file", "")
	_, err = securefs.OpenDir(dir+"/file", self)
	wantRefusal(t, err, syscall.ENOTDIR, dir+"/file")
	mkdir(t, dir+"/open", 0o777)
	_, err = securefs.OpenDir(dir+"/open", self)
	wantRefusal(t, err, securefs.ErrWritableByOthers, dir+"/open")
}

func TestMkdirOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for range 2 { // creates, then opens the existing one
		d, err := securefs.MkdirOpen(path, 0o700, self)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := d.Stat()
		d.Close()
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("created %v, %v; want a directory of mode 0700", fi.Mode(), err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
			t.Errorf("owned by %d", uid)
		}
	}
	_, err := securefs.MkdirOpen(dir+"/missing/state", 0o700, self)
	wantRefusal(t, err, fs.ErrNotExist, dir+"/missing")
	// A trusted dangling link: its target is created.
	symlink(t, "target", dir+"/link", -1)
	d, err := securefs.MkdirOpen(dir+"/link", 0o700, self)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if fi, err := os.Lstat(dir + "/target"); err != nil || !fi.IsDir() {
		t.Errorf("link target: %v, %v", fi, err)
	}
}

func TestMkdirOpenRefusesOthers(t *testing.T) {
	testenv.RequireRoot(t, "building a tree owned by other users")
	nobody := nobodyUID(t)
	dir := t.TempDir()
	mkdir(t, dir+"/theirs", 0o700)
	if err := os.Chown(dir+"/theirs", nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err := securefs.MkdirOpen(dir+"/theirs", 0o700, rootOnly)
	wantRefusal(t, err, securefs.ErrUntrustedOwner, dir+"/theirs")
	symlink(t, dir+"/theirs", dir+"/state", -1)
	_, err = securefs.MkdirOpen(dir+"/state", 0o700, rootOnly)
	wantRefusal(t, err, securefs.ErrUntrustedOwner, dir+"/theirs")
	symlink(t, dir+"/elsewhere", dir+"/state2", nobody)
	_, err = securefs.MkdirOpen(dir+"/state2", 0o700, rootOnly)
	wantRefusal(t, err, securefs.ErrUntrustedOwner, dir+"/state2")
	if _, err := os.Lstat(dir + "/elsewhere"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("created through another user's link: %v", err)
	}
}

func TestOpenAt(t *testing.T) {
	dir := t.TempDir()
	d, err := securefs.OpenDir(dir, self)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := securefs.OpenAt(d, "new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600, self)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("x"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if f.Name() != dir+"/new" || read(t, dir+"/new") != "x" {
		t.Errorf("name %q, content %q", f.Name(), read(t, dir+"/new"))
	}
	_, err = securefs.OpenAt(d, "new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600, self)
	wantRefusal(t, err, fs.ErrExist, dir+"/new")

	symlink(t, "new", dir+"/link", -1)
	_, err = securefs.OpenAt(d, "link", os.O_RDONLY, 0, self)
	wantRefusal(t, err, securefs.ErrSymlink, dir+"/link")
	if err := os.Link(dir+"/new", dir+"/hard"); err != nil {
		t.Fatal(err)
	}
	_, err = securefs.OpenAt(d, "hard", os.O_RDONLY, 0, self)
	wantRefusal(t, err, securefs.ErrHardLink, dir+"/hard")
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := securefs.OpenAt(d, name, os.O_RDONLY, 0, self); err == nil {
			t.Errorf("OpenAt(%q) succeeded", name)
		}
	}
}
