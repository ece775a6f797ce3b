package restart

import "errors"

var (
	// ErrUnsupported is returned by the launcher on platforms other than
	// Linux.
	ErrUnsupported = errors.New("restart: not supported on this platform")
	// ErrNoCommand is the cause of a StartError when a Command has an empty
	// Argv.
	ErrNoCommand = errors.New("restart: empty argv")
	// ErrProcessDone is returned by Process.Signal and Process.Kill once the
	// program's leader has been reaped: its pid, and with it the process group
	// id, may then belong to an unrelated process.
	ErrProcessDone = errors.New("restart: process already reaped")
	// ErrShimReport is the cause of a StartError when the cgroup v1 shim
	// sent a report the launcher could not decode.
	ErrShimReport = errors.New("restart: malformed shim report")
	// ErrExtraFiles is the cause of a StartError when a Command has both
	// ExtraFiles and CgroupProcs.
	ErrExtraFiles = errors.New("restart: extra files cannot be passed with cgroup v1 groups")
)
