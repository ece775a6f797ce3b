package notify

import "errors"

var (
	// ErrUnsupported is returned by New outside Linux.
	ErrUnsupported = errors.New("notify: not supported on this system")
	// ErrStopped is returned by Open once Run has returned.
	ErrStopped = errors.New("notify: server stopped")
	// ErrInvalid is wrapped by the errors of a Config, namespace or program
	// name that cannot be used; the message says which and why.
	ErrInvalid = errors.New("notify: invalid")
)
