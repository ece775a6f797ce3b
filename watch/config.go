package watch

import (
	"log/slog"
	"time"
)

// Mechanism is how a Watcher learns that a process died.
type Mechanism int

const (
	// MechanismAuto picks the best mechanism the kernel offers: pidfd when
	// pidfd_open works, else rescan.
	MechanismAuto Mechanism = iota
	// MechanismPidfd watches each process through a pidfd in one epoll set
	// (Linux 5.3+). It is event-driven and exact.
	MechanismPidfd
	// MechanismRescan checks every watched identity in /proc each
	// Config.RescanInterval: the last resort, with a delay of up to one
	// interval and a CPU cost that grows with the number of processes.
	MechanismRescan
)

// String returns the name used in logs and in Config: "auto", "pidfd" or
// "rescan".
func (m Mechanism) String() string {
	switch m {
	case MechanismAuto:
		return "auto"
	case MechanismPidfd:
		return "pidfd"
	case MechanismRescan:
		return "rescan"
	}
	return "unknown"
}

// DefaultRescanInterval is the rescan mechanism's interval when
// Config.RescanInterval is zero.
const DefaultRescanInterval = 250 * time.Millisecond

// Config configures a Scanner (New) or a Watcher (NewWatcher). The zero
// value reads /proc and picks the best death-detection mechanism.
type Config struct {
	// ProcRoot is where procfs is mounted; "" means "/proc".
	ProcRoot string
	// Mechanism selects how a Watcher detects deaths; the zero value is
	// MechanismAuto. Tests select MechanismRescan to exercise the fallback.
	Mechanism Mechanism
	// RescanInterval is the rescan mechanism's interval; zero means
	// DefaultRescanInterval.
	RescanInterval time.Duration
	// Logger receives debug messages about processes that vanished mid-read
	// and the like; nil discards them.
	Logger *slog.Logger
}

func (c Config) procRoot() string {
	if c.ProcRoot == "" {
		return "/proc"
	}
	return c.ProcRoot
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger.With("component", "watch")
}
