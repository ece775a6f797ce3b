package pseudofs

import (
	"errors"
	"io"
	"io/fs"

	"golang.org/x/sys/unix"
)

// initialSize is the first buffer for a read: a /proc/PID/stat line or a
// cgroup counter fits, /proc/PID/status and memory.stat take one growth.
const initialSize = 1024

// Read returns the content of the file at path, at most limit bytes of it:
// a file that is longer is cut at limit without an error, as
// io.LimitReader would cut it.
func Read(path string, limit int) ([]byte, error) {
	fd, err := open(path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, min(initialSize, max(limit, 1)))
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):min(cap(buf), limit)])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// Write writes data to the existing file at path in one write, as the
// kernel's control files expect a value: a write of part of data is an
// error (io.ErrShortWrite). Like os.WriteFile it truncates the file, which
// control files ignore and regular files (a test's fake tree) need; unlike
// it, it never creates one.
func Write(path string, data []byte) error {
	fd, err := open(path, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		return err
	}
	n, err := unix.Write(fd, data)
	for errors.Is(err, unix.EINTR) {
		n, err = unix.Write(fd, data)
	}
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	cerr := unix.Close(fd)
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if cerr != nil {
		return &fs.PathError{Op: "close", Path: path, Err: cerr}
	}
	return nil
}

func open(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
