package config

import "time"

// Health is a program's liveness check (the health section): a probe run
// every Period, and a restart after Failures consecutive failures. Exactly
// one of HTTP, TCP and Exec is set. See docs/config.md.
type Health struct {
	// HTTP probes an HTTP endpoint: a GET whose status must fall within
	// ExpectStatus.
	HTTP *HTTPProbe `yaml:"http"`
	// TCP probes a listening socket: the connection must be accepted.
	TCP *TCPProbe `yaml:"tcp"`
	// Exec runs a command that must exit 0.
	Exec *ExecProbe `yaml:"exec"`
	// Period is the time from the start of one probe to the start of the
	// next, from MinHealthPeriod to MaxHealthPeriod.
	Period time.Duration `yaml:"period"`
	// Timeout is how long one probe may take before it counts as failed
	// (and an exec probe is killed with its process group): above 0 and at
	// most Period.
	Timeout time.Duration `yaml:"timeout"`
	// Failures is how many consecutive failures restart the program, from 1
	// to MaxHealthFailures.
	Failures int `yaml:"failures"`
	// StartupGrace is how long after a start failures do not count; the
	// first probe that passes ends it early. At most MaxStartupGrace.
	StartupGrace time.Duration `yaml:"startup_grace"`
}

// HTTPProbe is an HTTP GET. Redirects are not followed: a 3xx answer is
// judged by its status like any other.
type HTTPProbe struct {
	// URL is an absolute http:// or https:// URL with a host.
	URL string `yaml:"url"`
	// ExpectStatus is the range of statuses that pass, written "200-399"
	// or "204" in the file.
	ExpectStatus StatusRange `yaml:"expect_status"`
	// Headers are sent with the request; Host among them sets the Host
	// header.
	Headers map[string]string `yaml:"headers"`
}

// StatusRange is an inclusive range of HTTP statuses, 100 ≤ Min ≤ Max ≤ 599.
type StatusRange struct {
	Min, Max int
}

// Contains reports whether status is in r.
func (r StatusRange) Contains(status int) bool { return status >= r.Min && status <= r.Max }

// TCPProbe connects to Address.
type TCPProbe struct {
	// Address is host:port, as net.Dial takes it.
	Address string `yaml:"address"`
}

// ExecProbe runs Command as the program's user and group, in a process
// group of its own, with the program's environment and directory.
type ExecProbe struct {
	// Command is the argv, executed directly, never through a shell.
	Command []string `yaml:"command"`
}

// Notify turns on systemd's sd_notify protocol for a program (the notify
// section): respawnd gives it a NOTIFY_SOCKET.
type Notify struct {
	// Ready says the program is starting until it sends READY=1; one that
	// has not within StartTimeout is stopped, and its start counts as
	// failed.
	Ready bool `yaml:"ready"`
	// StartTimeout bounds the wait for READY=1, from MinStartTimeout to
	// MaxStartTimeout; EXTEND_TIMEOUT_USEC= extends it.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// Watchdog, when above 0, is how often the program must send
	// WATCHDOG=1 (WATCHDOG_USEC is set for it); a program that misses it is
	// sent SIGABRT, then stopped and restarted. From MinWatchdog to
	// MaxWatchdog, or 0 for none.
	Watchdog time.Duration `yaml:"watchdog"`
}

// The defaults and bounds of the health and notify sections.
const (
	DefaultHealthPeriod   = 10 * time.Second
	DefaultHealthTimeout  = time.Second
	DefaultHealthFailures = 3
	DefaultStartTimeout   = 90 * time.Second

	MinHealthPeriod   = 100 * time.Millisecond
	MaxHealthPeriod   = 24 * time.Hour
	MaxHealthFailures = 100
	MaxStartupGrace   = time.Hour
	MaxHealthHeaders  = 32
	MinStartTimeout   = 100 * time.Millisecond
	MaxStartTimeout   = time.Hour
	MinWatchdog       = 100 * time.Millisecond
	MaxWatchdog       = 24 * time.Hour
)

// DefaultStatusRange is an HTTP probe's ExpectStatus when the file sets
// none: 200 to 399, as Kubernetes judges HTTP probes.
var DefaultStatusRange = StatusRange{Min: 200, Max: 399}

// Probe names the kind of h's probe: "http", "tcp" or "exec".
func (h *Health) Probe() string {
	switch {
	case h.HTTP != nil:
		return "http"
	case h.TCP != nil:
		return "tcp"
	case h.Exec != nil:
		return "exec"
	}
	return ""
}
