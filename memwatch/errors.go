package memwatch

import "errors"

var (
	// ErrUnsupported is returned by New outside Linux: the Watcher needs
	// epoll and cgroup files.
	ErrUnsupported = errors.New("memwatch: not supported on this system")
	// ErrStopped is returned by Add and Update once Run has returned.
	ErrStopped = errors.New("memwatch: watcher stopped")
	// ErrNotWatched is returned by Update for a program that is not watched.
	ErrNotWatched = errors.New("memwatch: program not watched")
	// ErrInvalid is wrapped by the errors of a Spec, Target or Config that
	// cannot be used; the message says which field and why.
	ErrInvalid = errors.New("memwatch: invalid")
	// ErrNoMemAvailable is returned by ReadHost when /proc/meminfo has no
	// MemAvailable or MemTotal line (MemAvailable is Linux 3.14 and later).
	ErrNoMemAvailable = errors.New("memwatch: /proc/meminfo has no MemAvailable or MemTotal")
)
