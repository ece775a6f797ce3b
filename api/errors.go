package api

import "errors"

// Errors the Client returns; test them with errors.Is.
var (
	// ErrNotRunning says no daemon is listening on the control socket.
	ErrNotRunning = errors.New("api: respawnd is not running")
	// ErrPermission says the socket or the daemon refused the caller.
	ErrPermission = errors.New("api: permission denied")
	// ErrUnknownProgram says the daemon has no program of that name.
	ErrUnknownProgram = errors.New("api: unknown program")
	// ErrLifecycleDisabled says control actions are not enabled.
	ErrLifecycleDisabled = errors.New("api: lifecycle API is not enabled")
)

// errUnsupported is returned where the platform lacks what a call needs.
var errUnsupported = errors.New("api: not supported on this platform")
