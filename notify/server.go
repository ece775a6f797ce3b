package notify

import (
	"fmt"
	"log/slog"
	"time"
)

// MaxPerRound is how many datagrams a Server reads from one socket before
// it turns to the other ready sockets: a program flooding its socket
// delays the others by at most this many datagrams each round.
const MaxPerRound = 64

// foreignLogEvery spaces the log lines about one program's rejected
// senders (foreign senders, foreign MAINPID=): a flood of them is counted
// through Config.Rejected, not logged.
const foreignLogEvery = time.Minute

// DefaultNamespace is the namespace of a Config that sets none.
const DefaultNamespace = "default"

// Config configures a Server. Zero values mean defaults.
type Config struct {
	// Namespace makes the abstract socket names unique per respawnd (two
	// daemons on one host, tests): sockets are
	// "@respawnd/<Namespace>/<program>" (see Address). It must not contain
	// a NUL or '/'; default DefaultNamespace. It should be stable across
	// restarts of respawnd, so that adopted programs keep a valid
	// NOTIFY_SOCKET.
	Namespace string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Rejected is called for each datagram dropped, with the program and
	// why: one of RejectForeignSender, RejectForeignMainPID (the MAINPID=
	// field alone is dropped), RejectNoCredentials,
	// RejectMalformed, RejectTruncated (for the metric
	// respawnd_notify_rejected_total{program,reason}). It is called on
	// the goroutine of Run and must not block, nor call Open or a close
	// function. nil drops the reports.
	Rejected func(program, why string)
	// Now is the clock that spaces the log lines about foreign senders;
	// default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if err := checkName("namespace", c.Namespace); err != nil {
		return c, fmt.Errorf("notify config: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rejected == nil {
		c.Rejected = func(string, string) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
