package restart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
)

// reopenEvery is how often a file that could not be opened again after a
// rotation is retried; lines in between are dropped.
const reopenEvery = time.Second

// errRotateLink says a file to rotate is reached through a symbolic link:
// its directory's entry is not the file, so rotation could rename the
// wrong object.
var errRotateLink = errors.New("restart: output file to rotate is reached through a symbolic link; name the file itself")

// outFile is the output file of one instance: both of its pipes write
// whole lines to it through the output mux. respawnd opens it, with the
// program's credentials, and rotates it by size when it is a regular file.
// A write never blocks: a file that is not regular is written in
// non-blocking mode, and a failed write (a full disk, EAGAIN, EIO) drops
// the lines, counts them, and is retried with the next lines. It is safe
// for concurrent use.
type outFile struct {
	program string
	path    string
	base    string // the file's name in dir
	cred    *syscall.Credential
	logger  *slog.Logger
	dropped *atomic.Uint64 // the program's dropped lines

	mu       sync.Mutex // guards every field below
	f        *os.File   // nil after a failed reopen
	fd       int
	regular  bool
	dev, ino uint64
	size     int64 // what we believe the file's size is
	maxSize  int64 // 0: never rotated
	maxFiles int
	dir      *os.File // the checked directory; nil unless rotating
	dirfd    int
	failing  bool      // in a streak of failed writes, which was logged
	streak   uint64    // lines dropped in the current streak
	retryAt  time.Time // when a failed reopen may be tried again
}

// outputPolicy returns the securefs rules for opening a program's output
// file or its directory: trusting root and the program's uid (respawnd's
// when cred is nil), a regular file or a character device at the end.
func outputPolicy(cred *syscall.Credential) securefs.Policy {
	if cred == nil {
		p := securefs.Policy{Trusted: []int{0}, CharDevices: true}
		if euid := os.Geteuid(); euid != 0 {
			p.Trusted = append(p.Trusted, euid)
		}
		return p
	}
	return securefs.Policy{Trusted: []int{0, int(cred.Uid)}, CharDevices: true}
}

// asOutputUser runs fn with the program's filesystem credentials (see
// asFilesystemUser), or as is when cred is nil.
func asOutputUser(cred *syscall.Credential, fn func() error) error {
	if cred == nil {
		return fn()
	}
	return asFilesystemUser(cred, fn)
}

// openOutputFile opens cmd's output file for the output mux (see
// openOutput). A regular file with cmd.OutputMaxSize set is rotated: its
// directory is opened by the same rules and kept, and the file must be
// that directory's entry itself, not reached through a link.
func (l *Launcher) openOutputFile(cmd *Command, cred *syscall.Credential) (*outFile, error) {
	f, err := openOutput(cmd.OutputFile, cred)
	if err != nil {
		return nil, err
	}
	o := &outFile{
		program: cmd.Name,
		path:    cmd.OutputFile,
		base:    filepath.Base(cmd.OutputFile),
		cred:    cred,
		logger:  l.logger,
		dropped: l.droppedCounter(cmd.Name),
		dirfd:   -1,
	}
	if err := o.use(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	if !o.regular || cmd.OutputMaxSize <= 0 {
		return o, nil
	}
	var dir *os.File
	err = asOutputUser(cred, func() error {
		var err error
		dir, err = securefs.OpenDir(filepath.Dir(cmd.OutputFile), outputPolicy(cred))
		return err
	})
	if err != nil {
		o.close()
		return nil, fmt.Errorf("opening the directory of %s for rotation: %w", cmd.OutputFile, err)
	}
	o.dir, o.dirfd = dir, int(dir.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(o.dirfd, o.base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Dev != o.dev || st.Ino != o.ino {
		o.close()
		return nil, fmt.Errorf("%s: %w", cmd.OutputFile, errRotateLink)
	}
	o.maxSize, o.maxFiles = cmd.OutputMaxSize, max(1, cmd.OutputMaxFiles)
	return o, nil
}

// use makes f the file written to. A file that is not regular is put in
// non-blocking mode, so that a slow reader or a stuck terminal costs lines,
// not the mux.
func (o *outFile) use(f *os.File) error {
	fd := int(f.Fd()) // puts f in blocking mode, once: f is never read through os
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("reading the status of %s: %w", o.path, err)
	}
	o.regular = st.Mode&unix.S_IFMT == unix.S_IFREG
	if !o.regular {
		if err := unix.SetNonblock(fd, true); err != nil {
			return fmt.Errorf("making %s non-blocking: %w", o.path, err)
		}
	}
	o.f, o.fd, o.dev, o.ino, o.size = f, fd, st.Dev, st.Ino, st.Size
	return nil
}

// close closes the file and its directory.
func (o *outFile) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil {
		_ = o.f.Close()
		o.f = nil
	}
	if o.dir != nil {
		_ = o.dir.Close()
		o.dir = nil
	}
}

// write writes b, whole lines each ending in '\n', rotating the file
// first when b would take it past maxSize. b is cut between lines so that
// no file ends in the middle of one; a single line longer than maxSize
// goes whole into a file of its own. Lines that cannot be written are
// counted as dropped.
func (o *outFile) write(b []byte, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil && !o.reopen(now) {
		o.fail(nil, countLines(b))
		return
	}
	// A file just opened by a rotation is written to before it may be
	// rotated again: one found past maxSize already (not renamed, or
	// replaced) costs a rotation per line, never an endless loop.
	justRotated := false
	for len(b) > 0 {
		chunk := b
		if o.maxSize > 0 && o.size+int64(len(chunk)) > o.maxSize {
			room := o.maxSize - o.size
			cut := -1
			if room > 0 {
				cut = bytes.LastIndexByte(chunk[:room], '\n')
			}
			if cut < 0 && o.size > 0 && !justRotated {
				if o.sizeChanged() {
					continue // truncated or grown by someone else: work it out again
				}
				if err := o.rotate(now); err != nil {
					o.fail(err, countLines(b))
					return
				}
				justRotated = true
				continue
			}
			if cut < 0 {
				if cut = bytes.IndexByte(chunk, '\n'); cut < 0 {
					cut = len(chunk) - 1
				}
			}
			chunk = chunk[:cut+1]
		}
		if kept, err := o.writeChunk(chunk); err != nil {
			o.fail(err, countLines(b)-kept)
			return
		}
		justRotated = false
		b = b[len(chunk):]
	}
	o.recovered()
}

// sizeChanged reads the file's size, which another writer or a
// copytruncate may have changed, and reports whether it differs from what
// was believed.
func (o *outFile) sizeChanged() bool {
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil || st.Size == o.size {
		return false
	}
	o.size = st.Size
	return true
}

// writeChunk writes chunk whole. When only part of it could be written, a
// line cut short at the end of a regular file is truncated away again, and
// the error is returned with the number of chunk's lines that were written
// whole.
func (o *outFile) writeChunk(chunk []byte) (kept int, err error) {
	before, written := o.size, 0
	for written < len(chunk) {
		n, err := unix.Write(o.fd, chunk[written:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n > 0 {
			written += n
			o.size += int64(n)
		}
		if err == nil && n <= 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			if written > 0 && o.regular {
				keep := bytes.LastIndexByte(chunk[:written], '\n') + 1
				if keep < written && unix.Ftruncate(o.fd, before+int64(keep)) == nil {
					o.size = before + int64(keep)
				}
				kept = countLines(chunk[:keep])
			}
			return kept, err
		}
	}
	return 0, nil
}

// rotate renames FILE.N-1 … FILE.1 to FILE.N … FILE.2 (FILE.N removed
// first) and FILE to FILE.1, then opens a new FILE. Every name is taken
// relative to the directory opened and checked at start: a name is only
// ever renamed or removed within that directory, never followed, so a link
// planted in place of a rotated file is moved or removed itself and its
// target is never touched. FILE is renamed only while it still is the file
// written to. The renames and the open run with the program's
// credentials. When renaming FILE fails (the program's user may write the
// file but not its directory) rotation is given up for this instance, with
// a warning, and the file grows on.
func (o *outFile) rotate(now time.Time) error {
	name := func(i int) string { return o.base + "." + strconv.Itoa(i) }
	var renameErr error
	err := asOutputUser(o.cred, func() error {
		_ = unix.Unlinkat(o.dirfd, name(o.maxFiles), 0)
		for i := o.maxFiles - 1; i >= 1; i-- {
			_ = unix.Renameat(o.dirfd, name(i), o.dirfd, name(i+1))
		}
		var st unix.Stat_t
		if unix.Fstatat(o.dirfd, o.base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == o.dev && st.Ino == o.ino {
			if err := unix.Renameat(o.dirfd, o.base, o.dirfd, name(1)); err != nil {
				renameErr = err
				return nil
			}
		}
		return nil
	})
	if err == nil && renameErr != nil {
		o.logger.Warn("rotating the output file failed; it grows past max_size until the next start", "program", o.program, "file", o.path, "err", renameErr)
		o.maxSize = 0
		return nil
	}
	if err != nil {
		return err
	}
	_ = o.f.Close()
	o.f = nil
	o.retryAt = time.Time{}
	if !o.reopen(now) {
		return errors.New("reopening after rotation failed")
	}
	return nil
}

// reopen opens FILE in the checked directory again, with the program's
// credentials and the rules of securefs.OpenAt (no link, a trusted owner,
// one hard link). It is tried at most once every reopenEvery.
func (o *outFile) reopen(now time.Time) bool {
	if o.dir == nil || now.Before(o.retryAt) {
		return false
	}
	var f *os.File
	err := asOutputUser(o.cred, func() error {
		var err error
		f, err = securefs.OpenAt(o.dir, o.base, outputFlags, outputPerm, outputPolicy(o.cred))
		return err
	})
	if err == nil {
		if err = o.use(f); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		o.retryAt = now.Add(reopenEvery)
		o.fail(err, 0)
		return false
	}
	if !o.regular {
		o.maxSize = 0 // never rotate what is not a regular file
	}
	return true
}

// fail counts n lines as dropped; the first failure of a streak is logged.
func (o *outFile) fail(err error, n int) {
	if n > 0 {
		o.dropped.Add(uint64(n))
		o.streak += uint64(n)
	}
	if !o.failing && err != nil {
		o.failing = true
		o.logger.Warn("writing the output file failed; lines are dropped until it works again", "program", o.program, "file", o.path, "err", err)
	}
}

// recovered ends a streak of failures.
func (o *outFile) recovered() {
	if o.failing {
		o.failing = false
		o.logger.Info("writing the output file works again", "program", o.program, "file", o.path, "dropped_lines", o.streak)
		o.streak = 0
	}
}

// countLines counts the lines of b, whose last line may lack its '\n'.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}
