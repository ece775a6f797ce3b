//go:build !linux

package restart

import (
	"context"
	"syscall"
	"time"
)

// Start returns a StartError wrapping ErrUnsupported: the launcher needs
// Linux.
func (l *Launcher) Start(cmd Command) (*Process, error) {
	return nil, &StartError{Program: cmd.Name, Op: OpExec, Err: ErrUnsupported}
}

// Run waits for ctx when no reaping was asked for and returns nil; with
// LauncherConfig.Subreaper it returns ErrUnsupported at once.
func (l *Launcher) Run(ctx context.Context) error {
	if l.subreaper {
		return ErrUnsupported
	}
	<-ctx.Done()
	return nil
}

// Signal returns ErrUnsupported.
func (p *Process) Signal(syscall.Signal) error { return ErrUnsupported }

// RunShimIfRequested returns at once: there is no shim outside Linux.
func RunShimIfRequested() {}

// DrainOrphans returns ErrUnsupported.
func (l *Launcher) DrainOrphans(context.Context, time.Duration) error { return ErrUnsupported }
