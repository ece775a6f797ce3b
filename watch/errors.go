package watch

import "errors"

var (
	// ErrUnsupported is returned where the kernel interfaces the package
	// needs do not exist (any platform but Linux, or a mechanism the running
	// kernel lacks).
	ErrUnsupported = errors.New("watch: not supported on this platform")
	// ErrNotFound means the process is gone (or never existed): its pid is
	// absent from /proc, it is a zombie, or the kernel answered ESRCH.
	ErrNotFound = errors.New("watch: process not found")
	// ErrPIDReused means the pid exists but belongs to another process than
	// the Identity names: its start time differs. For a caller it means the
	// same as ErrNotFound: the process it knew is gone.
	ErrPIDReused = errors.New("watch: pid reused by another process")
	// ErrInvalidMatcher is returned by Scanner.Match for a Matcher that sets
	// no key, or whose user cannot be resolved.
	ErrInvalidMatcher = errors.New("watch: invalid matcher")
	// ErrClosed is returned by Watcher.Watch once Watcher.Run has returned.
	ErrClosed = errors.New("watch: watcher stopped")
	// ErrCorruptState wraps every error of StateDir.Load about the content
	// of the state file (bad JSON, unknown version, impossible entries). The
	// caller logs a warning and starts with no state.
	ErrCorruptState = errors.New("watch: corrupt state file")
	// ErrBadTag means a process's instance tag is not one this daemon made
	// for it: malformed, another daemon's or boot's, forged, made for
	// another program, or inherited by a process started later.
	ErrBadTag = errors.New("watch: invalid instance tag")
	// ErrNotProven means a process could not be shown to be the one
	// respawnd recorded or would adopt: its boot, executable, user or tag
	// differ. respawnd never adopts or signals such a process.
	ErrNotProven = errors.New("watch: process identity not proven")
)
