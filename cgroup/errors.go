package cgroup

import (
	"errors"
	"io/fs"
	"syscall"
)

var (
	// ErrUnsupported is returned on platforms without cgroups.
	ErrUnsupported = errors.New("cgroup: memory cgroups are not supported on this platform")
	// ErrNoMemoryController means no cgroup hierarchy with the memory
	// controller is usable; the wrapping error says why.
	ErrNoMemoryController = errors.New("cgroup: no usable memory controller")
	// ErrInvalidName is returned for a program name that is not a single,
	// plain path element.
	ErrInvalidName = errors.New("cgroup: invalid program name")
	// ErrInvalidLimit is returned for a negative limit.
	ErrInvalidLimit = errors.New("cgroup: invalid limit")
)

// permissionError marks err, which may be EROFS, as a permission problem:
// errors.Is(e, fs.ErrPermission) is true while errors.Is and errors.As still
// see the original os error.
type permissionError struct{ err error }

func (e permissionError) Error() string        { return e.err.Error() }
func (e permissionError) Unwrap() error        { return e.err }
func (e permissionError) Is(target error) bool { return target == fs.ErrPermission }

// asPermission returns err marked as a permission problem when it is EACCES,
// EPERM or EROFS (a read-only cgroup fs, as in a container without
// delegation), and err unchanged otherwise.
func asPermission(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return permissionError{err}
	}
	return err
}
