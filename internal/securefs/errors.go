package securefs

import "errors"

// Sentinel errors wrapped by *Error; test them with errors.Is.
var (
	// ErrUntrustedOwner says a directory, link or file is owned by a uid
	// the Policy does not trust.
	ErrUntrustedOwner = errors.New("securefs: not a trusted owner")
	// ErrWritableByOthers says a directory is writable by others and not
	// sticky.
	ErrWritableByOthers = errors.New("securefs: writable by others")
	// ErrNotRegular says the object opened is not of a type the Policy
	// allows (a FIFO, a socket, a directory, a device).
	ErrNotRegular = errors.New("securefs: not a regular file")
	// ErrHardLink says a regular file has more than one name.
	ErrHardLink = errors.New("securefs: hard link")
	// ErrTooManyLinks says more than 40 symbolic links were met.
	ErrTooManyLinks = errors.New("securefs: too many symbolic links")
	// ErrSymlink says OpenAt found a symbolic link, which it never follows.
	ErrSymlink = errors.New("securefs: symbolic link")
	// ErrNotAbsolute says a path to resolve is not absolute.
	ErrNotAbsolute = errors.New("securefs: path is not absolute")
	// ErrUnsupported is returned on platforms other than Linux.
	ErrUnsupported = errors.New("securefs: not supported on this platform")
)

// Error is a refused or failed resolution. It names the path asked for, the
// component at fault and why.
type Error struct {
	// Path is the path the caller asked for.
	Path string
	// Component is the object at fault: the path as resolved up to it, with
	// the links before it followed.
	Component string
	// Err is one of the sentinel errors of this package or the system's
	// error (a syscall.Errno such as EACCES or ENOENT).
	Err error
	// reason describes a refusal in words; "" shows Err instead.
	reason string
}

// Error implements error.
func (e *Error) Error() string {
	why := e.reason
	if why == "" {
		why = e.Err.Error()
	}
	msg := "securefs: " + e.Component + ": " + why
	if e.Path != e.Component {
		msg += " (resolving " + e.Path + ")"
	}
	return msg
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }
