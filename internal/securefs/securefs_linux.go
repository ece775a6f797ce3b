package securefs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks is how many symbolic links one resolution follows, the same
// limit as the kernel's (MAXSYMLINKS, include/linux/namei.h).
const maxLinks = 40

// stepFlags opens one component without following it, whatever it is, for
// fstat and readlinkat only. O_PATH needs search permission on the parent
// and no permission on the object itself.
const stepFlags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC

// finalFlags are added to every final open: never follow a link there
// (ELOOP instead), never block (a FIFO without a reader, a device), never
// leak the descriptor into a child, never acquire a controlling terminal.
const finalFlags = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY

// OpenFile resolves the absolute path by the package's rules and opens the
// file there with flag (os.O_RDONLY, os.O_WRONLY|os.O_APPEND|os.O_CREATE…)
// and, when it is created, perm. The file must be a regular file with one
// link, or a character device with p.CharDevices, and be owned by a
// trusted uid; a created file belongs to the caller's filesystem uid, so it
// must be trusted too. O_TRUNC takes effect only once the file is accepted.
// The returned file is in blocking mode.
func OpenFile(path string, flag int, perm os.FileMode, p Policy) (*os.File, error) {
	r := resolver{path: path, pol: &p}
	trunc := flag&os.O_TRUNC != 0
	flag = flag&^os.O_TRUNC | finalFlags
	fd, comp, err := r.resolve(func(dirfd int, name string) (int, error) {
		return unix.Openat(dirfd, name, flag, uint32(perm.Perm()))
	})
	if err != nil {
		return nil, err
	}
	return r.finish(fd, comp, trunc)
}

// OpenDir resolves the absolute path by the package's rules and opens the
// directory there for reading. The directory itself must pass the rules for
// directories (trusted owner, not writable by others unless sticky). The
// returned file can serve as the directory of OpenAt and be synced.
func OpenDir(path string, p Policy) (*os.File, error) { return openDir(path, 0, false, &p) }

// MkdirOpen is OpenDir that first creates the last component of path with
// perm (less the umask) when it is missing; the rest of the path must
// exist. A created directory belongs to the caller's filesystem uid, which
// must be trusted.
func MkdirOpen(path string, perm os.FileMode, p Policy) (*os.File, error) {
	return openDir(path, perm, true, &p)
}

func openDir(path string, perm os.FileMode, create bool, p *Policy) (*os.File, error) {
	r := resolver{path: path, pol: p}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, comp, err := r.resolve(func(dirfd int, name string) (int, error) {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if create && errors.Is(err, unix.ENOENT) && name != "." {
			// EEXIST: created meanwhile, or a dangling link that the
			// open below reports as ELOOP so that it is followed.
			if err := unix.Mkdirat(dirfd, name, uint32(perm.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
				return -1, err
			}
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
		if errors.Is(err, unix.ENOTDIR) {
			// O_DIRECTORY|O_NOFOLLOW reports a link as ENOTDIR, not ELOOP.
			var st unix.Stat_t
			if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		return fd, err
	})
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, r.sysErr(comp, err)
	}
	if err := r.checkDir(&st, comp); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// OpenAt opens the single name (no slash, not "." or "..") in dir, a
// directory the caller opened and checked before, with flag and perm as
// OpenFile does. It never follows a symbolic link (ErrSymlink) and checks
// the file as OpenFile does. The returned file is named dir's name joined
// with name.
func OpenAt(dir *os.File, name string, flag int, perm os.FileMode, p Policy) (*os.File, error) {
	comp := strings.TrimSuffix(dir.Name(), "/") + "/" + name
	r := resolver{path: comp, pol: &p}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, r.refuse(comp, unix.EINVAL, "not a single file name")
	}
	trunc := flag&os.O_TRUNC != 0
	fd, err := unix.Openat(int(dir.Fd()), name, flag&^os.O_TRUNC|finalFlags, uint32(perm.Perm()))
	runtime.KeepAlive(dir)
	if errors.Is(err, unix.ELOOP) {
		return nil, r.refuse(comp, ErrSymlink, "is a symbolic link")
	}
	if err != nil {
		return nil, r.sysErr(comp, err)
	}
	return r.finish(fd, comp, trunc)
}

// resolver is one resolution of path under pol.
type resolver struct {
	path  string
	pol   *Policy
	links int // symbolic links followed so far
}

func (r *resolver) refuse(comp string, err error, format string, args ...any) error {
	return &Error{Path: r.path, Component: comp, Err: err, reason: fmt.Sprintf(format, args...)}
}

// sysErr wraps an error of the system unchanged, so that errors.Is works
// with fs.ErrNotExist and fs.ErrPermission.
func (r *resolver) sysErr(comp string, err error) error {
	return &Error{Path: r.path, Component: comp, Err: err}
}

// resolve walks r.path from "/" and calls final with the checked
// directory holding the last component and that component's name ("."
// when the path names a directory through "/" or ".."). final opens with
// O_NOFOLLOW; when it fails with ELOOP the last component is a link, which
// is followed by the rules and the walk goes on. resolve returns final's
// descriptor and the component it opened.
func (r *resolver) resolve(final func(dirfd int, name string) (int, error)) (int, string, error) {
	if !strings.HasPrefix(r.path, "/") {
		return -1, r.path, r.refuse(r.path, ErrNotAbsolute, "not an absolute path")
	}
	dir, err := r.openRoot()
	if err != nil {
		return -1, "/", err
	}
	// dir changes as the walk goes down; the deferred call closes the last.
	defer func() { _ = unix.Close(dir) }()
	dirPath := "/"
	// restart replaces dir with "/" for an absolute link target.
	restart := func() error {
		root, err := r.openRoot()
		if err != nil {
			return err
		}
		_ = unix.Close(dir)
		dir, dirPath = root, "/"
		return nil
	}

	rest := components(r.path)
	for {
		name := "."
		if len(rest) > 0 {
			name, rest = rest[0], rest[1:]
		}
		comp := join(dirPath, name)

		if name == ".." {
			// The physical parent of the directory held, whatever the
			// path said: opened, not computed.
			fd, err := unix.Openat(dir, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return -1, comp, r.sysErr(comp, err)
			}
			if err := r.checkDirFD(fd, comp); err != nil {
				_ = unix.Close(fd)
				return -1, comp, err
			}
			_ = unix.Close(dir)
			dir, dirPath = fd, comp
			continue
		}

		if len(rest) > 0 {
			fd, err := unix.Openat(dir, name, stepFlags, 0)
			if err != nil {
				return -1, comp, r.sysErr(comp, err)
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				_ = unix.Close(fd)
				return -1, comp, r.sysErr(comp, err)
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if err := r.checkDir(&st, comp); err != nil {
					_ = unix.Close(fd)
					return -1, comp, err
				}
				_ = unix.Close(dir)
				dir, dirPath = fd, comp
			case unix.S_IFLNK:
				target, err := r.follow(fd, &st, comp)
				_ = unix.Close(fd)
				if err != nil {
					return -1, comp, err
				}
				rest = append(components(target), rest...)
				if strings.HasPrefix(target, "/") {
					if err := restart(); err != nil {
						return -1, comp, err
					}
				}
			default:
				_ = unix.Close(fd)
				return -1, comp, r.sysErr(comp, unix.ENOTDIR)
			}
			continue
		}

		fd, openErr := final(dir, name)
		if openErr == nil {
			return fd, comp, nil
		}
		// ELOOP: the last component is a symbolic link. EACCES may be one
		// too: with O_CREAT in a sticky directory writable by others the
		// kernel refuses a link owned by neither the directory's owner nor
		// the caller (may_create_in_sticky, fs/namei.c) before O_NOFOLLOW
		// is looked at.
		if !errors.Is(openErr, unix.ELOOP) && !errors.Is(openErr, unix.EACCES) {
			return -1, comp, r.sysErr(comp, openErr)
		}
		lfd, err := unix.Openat(dir, name, stepFlags, 0)
		if err != nil {
			return -1, comp, r.sysErr(comp, openErr)
		}
		var st unix.Stat_t
		if err := unix.Fstat(lfd, &st); err != nil {
			_ = unix.Close(lfd)
			return -1, comp, r.sysErr(comp, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			// EACCES of something else than a link; or, for ELOOP, the
			// link was replaced between the two opens by someone racing us.
			_ = unix.Close(lfd)
			return -1, comp, r.sysErr(comp, openErr)
		}
		target, err := r.follow(lfd, &st, comp)
		_ = unix.Close(lfd)
		if err != nil {
			return -1, comp, err
		}
		rest = components(target)
		if strings.HasPrefix(target, "/") {
			if err := restart(); err != nil {
				return -1, comp, err
			}
		}
	}
}

// openRoot opens and checks "/".
func (r *resolver) openRoot() (int, error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, r.sysErr("/", err)
	}
	if err := r.checkDirFD(fd, "/"); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// follow checks the symbolic link open at fd and returns its target.
func (r *resolver) follow(fd int, st *unix.Stat_t, comp string) (string, error) {
	if !r.pol.trusts(st.Uid) {
		return "", r.refuse(comp, ErrUntrustedOwner, "symbolic link owned by uid %d, not a trusted owner", st.Uid)
	}
	r.links++
	if r.links > maxLinks {
		return "", r.refuse(comp, ErrTooManyLinks, "more than %d symbolic links", maxLinks)
	}
	buf := make([]byte, unix.PathMax)
	// An empty name reads the link the O_PATH descriptor refers to
	// (Linux 2.6.39).
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", r.sysErr(comp, err)
	}
	switch {
	case n == 0:
		return "", r.sysErr(comp, unix.ENOENT)
	case n >= len(buf):
		return "", r.sysErr(comp, unix.ENAMETOOLONG)
	}
	return string(buf[:n]), nil
}

func (r *resolver) checkDirFD(fd int, comp string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return r.sysErr(comp, err)
	}
	return r.checkDir(&st, comp)
}

// checkDir applies the rules for a directory: a trusted owner, and not
// writable by others unless sticky. Group write is accepted (see the
// package documentation).
func (r *resolver) checkDir(st *unix.Stat_t, comp string) error {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return r.sysErr(comp, unix.ENOTDIR)
	}
	if !r.pol.trusts(st.Uid) {
		return r.refuse(comp, ErrUntrustedOwner, "owned by uid %d, not a trusted owner", st.Uid)
	}
	if st.Mode&0o002 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return r.refuse(comp, ErrWritableByOthers, "writable by others (mode %04o) and not sticky", st.Mode&0o7777)
	}
	return nil
}

// finish checks the object open at fd, puts it in blocking mode, applies a
// requested truncation and wraps it. It closes fd on failure.
func (r *resolver) finish(fd int, comp string, trunc bool) (*os.File, error) {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if err != nil {
		err = r.sysErr(comp, err)
	} else {
		err = r.checkFile(&st, comp)
	}
	if err == nil {
		var fl int
		if fl, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
		}
		if err == nil && trunc && st.Mode&unix.S_IFMT == unix.S_IFREG {
			err = unix.Ftruncate(fd, 0)
		}
		if err != nil {
			err = r.sysErr(comp, err)
		}
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), r.path), nil
}

// checkFile applies the rules for the object opened: an allowed type, one
// link for a regular file, a trusted owner.
func (r *resolver) checkFile(st *unix.Stat_t, comp string) error {
	switch t := st.Mode & unix.S_IFMT; {
	case t == unix.S_IFREG:
		if st.Nlink != 1 {
			return r.refuse(comp, ErrHardLink, "regular file with %d links, not 1", uint64(st.Nlink))
		}
	case t == unix.S_IFCHR && r.pol.CharDevices:
	default:
		return r.refuse(comp, ErrNotRegular, "is a %s, not a regular file", typeName(t))
	}
	if !r.pol.trusts(st.Uid) {
		return r.refuse(comp, ErrUntrustedOwner, "owned by uid %d, not a trusted owner", st.Uid)
	}
	return nil
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return fmt.Sprintf("file of type %#o", t)
}

// components splits a path into its names, dropping empty ones and ".".
func components(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// join names a component for messages: dir and name, with ".." and "."
// applied lexically (the walk itself opens them physically).
func join(dir, name string) string {
	switch name {
	case ".":
		return dir
	case "..":
		if i := strings.LastIndexByte(dir, '/'); i > 0 {
			return dir[:i]
		}
		return "/"
	}
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
