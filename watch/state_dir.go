package watch

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
)

// SecretFile is the name of the per-daemon secret in the state directory.
const SecretFile = "secret"

// SecretSize is the size in bytes of the per-daemon secret.
const SecretSize = 32

// StateDir is respawnd's state directory, held open: every file in it is
// opened, created, renamed and removed relative to the directory's
// descriptor, never through its path again. It is safe for concurrent use.
type StateDir struct {
	path string
	dir  *os.File
	euid int
	mu   sync.Mutex // serialises Write and Secret
	tmpN atomic.Uint64
}

// OpenStateDir opens (creating it, mode 0700, if missing; its parent must
// exist) the state directory and checks it is respawnd's alone: owned by
// the effective uid, no group or other write permission, every parent
// component owned by root or the effective uid and not writable by others
// unless sticky (securefs rules). Otherwise it refuses with an error that
// says what is wrong and how to fix it (e.g. "chown root DIR; chmod go-w
// DIR"). A relative path is taken from the working directory. Temporary
// files left by a respawnd that died while writing are removed.
func OpenStateDir(path string) (*StateDir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	euid := os.Geteuid()
	owner := "root"
	trusted := []int{0}
	if euid != 0 {
		owner = strconv.Itoa(euid)
		trusted = append(trusted, euid)
	}
	f, err := securefs.MkdirOpen(abs, 0o700, securefs.Policy{Trusted: trusted})
	if err != nil {
		return nil, stateDirError(abs, owner, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("state directory %s: %w", abs, err)
	}
	switch {
	case int(st.Uid) != euid:
		_ = f.Close()
		return nil, fmt.Errorf("state directory %s is owned by uid %d, not by respawnd's uid %d; fix: chown %s %s", abs, st.Uid, euid, owner, abs)
	case st.Mode&0o022 != 0:
		_ = f.Close()
		return nil, fmt.Errorf("state directory %s is writable by its group or others (mode %04o); fix: chmod go-w %s", abs, st.Mode&0o7777, abs)
	}
	d := &StateDir{path: abs, dir: f, euid: euid}
	d.removeLeftovers()
	return d, nil
}

// stateDirError explains a refusal of securefs with the way to fix it.
func stateDirError(path, owner string, err error) error {
	var se *securefs.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("opening state directory %s: %w", path, err)
	}
	var fix string
	switch {
	case errors.Is(err, securefs.ErrUntrustedOwner):
		chown := "chown"
		if fi, err := os.Lstat(se.Component); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			chown = "chown -h" // only for the message: nothing acts on this path
		}
		fix = fmt.Sprintf("; fix: %s %s %s; chmod go-w %s (or choose another state directory)", chown, owner, se.Component, se.Component)
	case errors.Is(err, securefs.ErrWritableByOthers):
		fix = fmt.Sprintf("; fix: chmod o-w %s (or make it sticky: chmod +t %s)", se.Component, se.Component)
	case errors.Is(err, fs.ErrNotExist) && se.Component != path:
		fix = fmt.Sprintf("; fix: create %s first", se.Component)
	}
	return fmt.Errorf("opening state directory %s: %w%s", path, err, fix)
}

// Path returns the directory's absolute path, for messages.
func (d *StateDir) Path() string { return d.path }

// Close closes the directory.
func (d *StateDir) Close() error { return d.dir.Close() }

// private is the policy for the files of the directory: owned by respawnd's
// effective uid, regular, one link.
func (d *StateDir) private() securefs.Policy { return securefs.Policy{Trusted: []int{d.euid}} }

// withFD calls fn with the directory's descriptor, keeping it open.
func (d *StateDir) withFD(fn func(fd int) error) error {
	err := fn(int(d.dir.Fd()))
	runtime.KeepAlive(d.dir)
	return err
}

// Load reads the entries Write wrote. A missing file gives no entries and
// no error. A file that is a symbolic link, not a regular file, not owned
// by respawnd's effective uid or writable by its group or others is
// refused with an error that does not wrap ErrCorruptState: something
// other than respawnd put it there. A file that cannot be understood gives
// an error wrapping ErrCorruptState.
func (d *StateDir) Load() ([]StateEntry, error) {
	f, err := d.openPrivate(StateFile, 0o022)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", f.Name(), err)
	}
	entries, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptState, f.Name(), err)
	}
	return entries, nil
}

// openPrivate opens name in the directory for reading and refuses it
// unless it is respawnd's regular file without any of the mode bits in
// forbidden.
func (d *StateDir) openPrivate(name string, forbidden os.FileMode) (*os.File, error) {
	f, err := securefs.OpenAt(d.dir, name, os.O_RDONLY, 0, d.private())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("refusing %s: %w; respawnd writes it itself, remove it", filepath.Join(d.path, name), err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if m := fi.Mode().Perm(); m&forbidden != 0 {
		_ = f.Close()
		return nil, fmt.Errorf("refusing %s: mode %04o gives its group or others access; respawnd writes it with mode 0600, remove it", f.Name(), m)
	}
	return f, nil
}

// Write replaces the state file with entries, atomically: a temporary file
// is created in the directory (O_EXCL, mode 0600), written, synced when
// sync is set, and renamed over the state file; with sync the directory is
// synced too. The rename alone leaves the old or the new file should
// respawnd die at any point; the syncs only guard against the machine going
// down, which a state file in a tmpfs such as /run does not survive anyway,
// so callers that write after every start and exit sync at most once a
// second and a crash loop does not become a stream of disk flushes. Entries
// that Load would refuse are not written.
func (d *StateDir) Write(entries []StateEntry, sync bool) error {
	if err := validateEntries(entries); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	data, err := encodeState(entries)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	tmp, err := d.writeTemp(StateFile, data, sync)
	if err != nil {
		return err
	}
	err = d.withFD(func(fd int) error { return unix.Renameat(fd, tmp, fd, StateFile) })
	if err != nil {
		d.remove(tmp)
		return fmt.Errorf("replacing state file %s: %w", filepath.Join(d.path, StateFile), err)
	}
	if sync {
		if err := d.dir.Sync(); err != nil {
			return fmt.Errorf("syncing state directory %s: %w", d.path, err)
		}
	}
	return nil
}

// writeTemp creates a new temporary file for name in the directory, writes
// data to it, syncs it when asked, and returns its name.
func (d *StateDir) writeTemp(name string, data []byte, sync bool) (string, error) {
	var f *os.File
	var tmp string
	for {
		tmp = "." + name + "." + strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(d.tmpN.Add(1), 10) + ".tmp"
		var err error
		f, err = securefs.OpenAt(d.dir, tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600, d.private())
		if errors.Is(err, fs.ErrExist) {
			continue // left by an earlier respawnd of the same pid
		}
		if err != nil {
			return "", fmt.Errorf("creating temporary file for %s: %w", name, err)
		}
		break
	}
	_, err := f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.remove(tmp)
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return tmp, nil
}

// remove removes name from the directory, best effort: a leftover
// temporary file is harmless and removed at the next OpenStateDir.
func (d *StateDir) remove(name string) {
	_ = d.withFD(func(fd int) error { return unix.Unlinkat(fd, name, 0) })
}

// removeLeftovers removes the temporary files of writes that a crash
// interrupted.
func (d *StateDir) removeLeftovers() {
	var names []string
	_ = d.withFD(func(fd int) error {
		// A descriptor of its own, so that reading the entries leaves the
		// directory's offset alone.
		rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		r := os.NewFile(uintptr(rfd), d.path)
		defer r.Close()
		names, err = r.Readdirnames(-1)
		return err
	})
	for _, n := range names {
		for _, base := range []string{StateFile, SecretFile} {
			if strings.HasPrefix(n, "."+base+".") && strings.HasSuffix(n, ".tmp") {
				d.remove(n)
			}
		}
	}
}

// Secret returns the per-daemon secret: SecretSize random bytes in the file
// SecretFile of the directory, created once (mode 0600, from crypto/rand,
// written to a temporary file that is then renamed into place without
// replacing a secret another process created meanwhile) and read by every
// later call and every later respawnd. A secret file that is a symbolic
// link, not a regular file, not owned by respawnd's effective uid, readable
// or writable by its group or others, or of another size is refused.
func (d *StateDir) Secret() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.readSecret()
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	fresh := make([]byte, SecretSize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("making a secret: %w", err)
	}
	tmp, err := d.writeTemp(SecretFile, fresh, true)
	if err != nil {
		return nil, err
	}
	err = d.withFD(func(fd int) error { return renameNoReplace(fd, tmp, SecretFile) })
	if errors.Is(err, fs.ErrExist) {
		// Another process made one first: use it.
		d.remove(tmp)
		return d.readSecret()
	}
	if err != nil {
		d.remove(tmp)
		return nil, fmt.Errorf("creating secret %s: %w", filepath.Join(d.path, SecretFile), err)
	}
	if err := d.dir.Sync(); err != nil {
		return nil, fmt.Errorf("syncing state directory %s: %w", d.path, err)
	}
	return fresh, nil
}

func (d *StateDir) readSecret() ([]byte, error) {
	f, err := d.openPrivate(SecretFile, 0o077)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, SecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if len(b) != SecretSize {
		return nil, fmt.Errorf("refusing %s: %d bytes, want %d; remove it and respawnd makes a new one", f.Name(), len(b), SecretSize)
	}
	return b, nil
}

// Subdir opens the directory name in the state directory, creating it (mode
// 0700) if missing, for a part of respawnd that keeps files of its own
// there. It refuses a symbolic link, a directory not owned by respawnd's
// effective uid and one writable by its group or others: only respawnd
// writes in the state directory, so anything else was put there by someone
// else.
func (d *StateDir) Subdir(name string) (*os.File, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("state subdirectory %q: not a single file name", name)
	}
	full := filepath.Join(d.path, name)
	var f *os.File
	err := d.withFD(func(fd int) error {
		if err := unix.Mkdirat(fd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating %s: %w", full, err)
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("refusing %s: %w; respawnd creates it itself, remove it", full, err)
		}
		f = os.NewFile(uintptr(nfd), full)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("reading %s: %w", full, err)
	}
	if int(st.Uid) != d.euid || st.Mode&0o022 != 0 {
		_ = f.Close()
		return nil, fmt.Errorf("refusing %s: owned by uid %d with mode %04o; respawnd creates it for uid %d with mode 0700, remove it", full, st.Uid, st.Mode&0o7777, d.euid)
	}
	return f, nil
}
