package health

import (
	"context"
	"errors"
	"net"
	"time"
)

// tcpProbe connects to one address.
type tcpProbe struct {
	address string
	dialer  net.Dialer
}

// run connects within timeout and closes the connection at once.
func (tp *tcpProbe) run(ctx context.Context, timeout time.Duration, _ *watch) (Result, string, bool) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := tp.dialer.DialContext(pctx, "tcp", tp.address)
	switch {
	case ctx.Err() != nil:
		if conn != nil {
			_ = conn.Close()
		}
		return "", "", false
	case err == nil:
		_ = conn.Close()
		return ResultSuccess, "", true
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		return ResultTimeout, timedOut(timeout), true
	}
	// A *net.OpError: "dial tcp 127.0.0.1:9: connect: connection refused".
	return ResultFailure, err.Error(), true
}
