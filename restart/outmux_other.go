//go:build !linux

package restart

// outputMux copies program output; it is Linux's (see outmux_linux.go).
type outputMux struct{ l *Launcher }

// childWaiter waits for children; it is Linux's (see childwait_linux.go).
type childWaiter struct{}
