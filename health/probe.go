package health

import (
	"context"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/restart"
)

// prober returns the probe of h for one watch of program.
func (c *Checker) prober(program string, h *config.Health, base restart.Command) probeFunc {
	switch {
	case h.HTTP != nil:
		return newHTTPProbe(c.client, h.HTTP).run
	case h.TCP != nil:
		return (&tcpProbe{address: h.TCP.Address}).run
	case h.Exec != nil:
		return newExecProbe(c.launcher, program, h.Exec, base).run
	}
	return func(ctx context.Context, _ time.Duration, _ *watch) (Result, string, bool) {
		return ResultFailure, "no probe configured", ctx.Err() == nil
	}
}
