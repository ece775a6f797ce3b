//go:build !linux

package securefs

import "os"

// OpenFile returns ErrUnsupported: the resolver needs Linux.
func OpenFile(path string, flag int, perm os.FileMode, p Policy) (*os.File, error) {
	return nil, &Error{Path: path, Component: path, Err: ErrUnsupported}
}

// OpenDir returns ErrUnsupported: the resolver needs Linux.
func OpenDir(path string, p Policy) (*os.File, error) {
	return nil, &Error{Path: path, Component: path, Err: ErrUnsupported}
}

// MkdirOpen returns ErrUnsupported: the resolver needs Linux.
func MkdirOpen(path string, perm os.FileMode, p Policy) (*os.File, error) {
	return nil, &Error{Path: path, Component: path, Err: ErrUnsupported}
}

// OpenAt returns ErrUnsupported: the resolver needs Linux.
func OpenAt(dir *os.File, name string, flag int, perm os.FileMode, p Policy) (*os.File, error) {
	return nil, &Error{Path: name, Component: name, Err: ErrUnsupported}
}
