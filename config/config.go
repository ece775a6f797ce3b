package config

import (
	"regexp"
	"syscall"
	"time"
)

// Config is a whole respawnd configuration file after defaults are applied.
type Config struct {
	// File is the path the configuration was read from ("" when built in code).
	File string `yaml:"-"`
	// Limits are host-wide limits that apply across all programs.
	Limits Limits `yaml:"limits"`
	// Programs are the supervised programs, in file order.
	Programs []Program `yaml:"programs"`
}

// Limits caps restarts across all programs, so that an OOM storm that kills
// hundreds of programs at once does not become a fork bomb.
type Limits struct {
	// RestartsPerSecond is the refill rate of the global token bucket.
	RestartsPerSecond float64 `yaml:"restarts_per_second"`
	// RestartBurst is the size of the global token bucket.
	RestartBurst int `yaml:"restart_burst"`
}

// Policy says after which exits a program is started again.
type Policy string

// The restart policies.
const (
	// PolicyAlways restarts the program after every exit.
	PolicyAlways Policy = "always"
	// PolicyOnFailure restarts the program unless it exited with status 0.
	PolicyOnFailure Policy = "on-failure"
	// PolicyOnOOM restarts the program only when the kernel's OOM killer
	// killed it.
	PolicyOnOOM Policy = "on-oom"
	// PolicyNever starts the program once and never again.
	PolicyNever Policy = "never"
)

// String returns the policy as it is written in the configuration file.
func (p Policy) String() string { return string(p) }

// valid reports whether p is one of the known policies.
func (p Policy) valid() bool {
	switch p {
	case PolicyAlways, PolicyOnFailure, PolicyOnOOM, PolicyNever:
		return true
	}
	return false
}

// LimitAction says what happens when a program trips its start-rate limit.
type LimitAction string

// The limit actions.
const (
	// ActionBackoff keeps restarting the program, waiting backoff.max
	// between starts while the limit is tripped.
	ActionBackoff LimitAction = "backoff"
	// ActionGiveUp stops restarting the program.
	ActionGiveUp LimitAction = "give-up"
)

// String returns the action as it is written in the configuration file.
func (a LimitAction) String() string { return string(a) }

// valid reports whether a is one of the known actions.
func (a LimitAction) valid() bool {
	return a == ActionBackoff || a == ActionGiveUp
}

// Program is one supervised program.
type Program struct {
	// Line is the line of the program's entry in File, for messages. It is 0
	// for a program built in code and is not part of Hash.
	Line int `yaml:"-"`

	// Name identifies the program in logs, metrics and the API. It matches
	// [a-z0-9_.-]+, is not "." or "..", and is unique within a Config.
	Name string `yaml:"name"`
	// Command is the argv, executed directly and never through a shell.
	// Command[0] is not empty.
	Command []string `yaml:"command"`
	// Dir is the absolute working directory, or "" for respawnd's own.
	Dir string `yaml:"dir"`
	// Env holds variables added to the minimal environment the program
	// inherits.
	Env map[string]string `yaml:"env"`
	// User is the user name or numeric ID to run as, or "" for respawnd's
	// own.
	User string `yaml:"user"`
	// Group is the group name or numeric ID to run as, or "" for the
	// default.
	Group string `yaml:"group"`
	// Restart says when and how fast the program is started again.
	Restart Restart `yaml:"restart"`
	// Stop says how the program is stopped.
	Stop Stop `yaml:"stop"`
	// Output says where the program's stdout and stderr go.
	Output Output `yaml:"output"`
	// Memory is nil when the program has no memory limits.
	Memory *Memory `yaml:"memory"`
	// Match is nil for a program that respawnd always starts itself. When
	// set, a running process that matches it is adopted as the program
	// instead, and Command is how the program is started again after it
	// exits.
	Match *Match `yaml:"match"`
	// OnMissing says what respawnd does at start-up when Match is set and
	// no process matches it. It has no effect without Match: a file that
	// sets on_missing without match is refused, and in code it must be
	// DefaultOnMissing or "".
	OnMissing OnMissing `yaml:"on_missing"`
}

// Match selects an already running process to adopt as a program. Every
// field that is set must match; at least one of Comm, Exe, Cmdline and
// Pidfile is set, and User only narrows those down. When several processes
// match, the oldest is adopted.
type Match struct {
	// Comm is compared exactly with the process name (/proc/PID/comm). It
	// is at most 15 bytes, as the kernel keeps no more.
	Comm string `yaml:"comm"`
	// Exe is the absolute path of the process's executable.
	Exe string `yaml:"exe"`
	// Cmdline is a Go regular expression (RE2 syntax) that must match
	// somewhere in the process's arguments joined with single spaces; see
	// CmdlineRegexp.
	Cmdline string `yaml:"cmdline"`
	// Pidfile is the absolute path of a file holding the pid of the one
	// process to consider.
	Pidfile string `yaml:"pidfile"`
	// User is the user name or numeric uid the process runs as.
	User string `yaml:"user"`
}

// CmdlineRegexp compiles Cmdline. It returns nil and no error when Cmdline
// is empty. A Match accepted by Parse or Validate always compiles.
func (m *Match) CmdlineRegexp() (*regexp.Regexp, error) {
	if m.Cmdline == "" {
		return nil, nil
	}
	return regexp.Compile(m.Cmdline)
}

// OnMissing says what respawnd does at start-up when no running process
// matches a program's Match.
type OnMissing string

// The on_missing values.
const (
	// OnMissingStart starts the program with its Command.
	OnMissingStart OnMissing = "start"
	// OnMissingWait starts nothing and waits for a matching process to
	// appear.
	OnMissingWait OnMissing = "wait"
)

// String returns the value as it is written in the configuration file.
func (o OnMissing) String() string { return string(o) }

// valid reports whether o is one of the known values.
func (o OnMissing) valid() bool {
	return o == OnMissingStart || o == OnMissingWait
}

// Restart is a program's restart policy.
type Restart struct {
	// Policy says after which exits the program is started again.
	Policy Policy `yaml:"policy"`
	// Backoff is the delay between consecutive crashes.
	Backoff Backoff `yaml:"backoff"`
	// ResetAfter is how long an instance must run for its exit to end the
	// streak of consecutive crashes, so that the delays start over.
	ResetAfter time.Duration `yaml:"reset_after"`
	// Limit caps how often the program may start.
	Limit Limit `yaml:"limit"`
}

// Backoff is the exponential delay between consecutive crashes.
type Backoff struct {
	// Initial is the smallest delay between consecutive crashes.
	Initial time.Duration `yaml:"initial"`
	// Max caps the delay.
	Max time.Duration `yaml:"max"`
	// Multiplier grows the delay with each further consecutive crash; at
	// least 1.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter is the fraction, in [0, 1], by which each delay is randomly
	// varied.
	Jitter float64 `yaml:"jitter"`
}

// Limit trips when more than Burst starts happen within Interval.
type Limit struct {
	// Burst is the number of starts allowed within Interval; at least 1.
	Burst int `yaml:"burst"`
	// Interval is the window in which starts are counted.
	Interval time.Duration `yaml:"interval"`
	// Action says what happens when the limit trips.
	Action LimitAction `yaml:"action"`
}

// Stop says how a program is stopped.
type Stop struct {
	// Signal is sent to the program's process group first.
	Signal syscall.Signal `yaml:"signal"`
	// Timeout is how long to wait after Signal before SIGKILL.
	Timeout time.Duration `yaml:"timeout"`
}

// Output says where a program's stdout and stderr go. With File empty, each
// line is copied to respawnd's own stdout or stderr prefixed with the program
// name.
type Output struct {
	// File is the absolute path of a file that both streams are appended
	// to, or "".
	File string `yaml:"file"`
}

// Memory holds a program's cgroup memory limits in bytes; nil fields are
// unset.
type Memory struct {
	// Max is the hard limit (cgroup v2 memory.max); at least MinMemory.
	Max *int64 `yaml:"max"`
	// High is the throttling limit (cgroup v2 memory.high); at least
	// MinMemory and not above Max.
	High *int64 `yaml:"high"`
	// SwapMax is the swap limit (cgroup v2 memory.swap.max); 0 means no
	// swap.
	SwapMax *int64 `yaml:"swap_max"`
}

// The defaults, applied by Parse to every optional setting the file leaves
// out, and returned by DefaultProgram and DefaultLimits.
const (
	DefaultPolicy            = PolicyAlways
	DefaultBackoffInitial    = 100 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffMultiplier = 2.0
	DefaultBackoffJitter     = 0.2
	DefaultResetAfter        = 60 * time.Second
	DefaultLimitBurst        = 5
	DefaultLimitInterval     = 60 * time.Second
	DefaultLimitAction       = ActionBackoff
	DefaultStopSignal        = syscall.SIGTERM
	DefaultStopTimeout       = 10 * time.Second
	DefaultRestartsPerSecond = 50.0
	DefaultRestartBurst      = 100
	DefaultOnMissing         = OnMissingStart
)

// MinMemory is the smallest memory.max or memory.high accepted, in bytes.
// Smaller limits leave a program no room to start.
const MinMemory = 1 << 20

// DefaultProgram returns a Program with every optional setting at its
// default and no name or command. Code that builds a Program (such as
// `respawnd exec`) starts from it, sets Name and Command, and calls Validate.
func DefaultProgram() Program {
	return Program{
		Restart: Restart{
			Policy: DefaultPolicy,
			Backoff: Backoff{
				Initial:    DefaultBackoffInitial,
				Max:        DefaultBackoffMax,
				Multiplier: DefaultBackoffMultiplier,
				Jitter:     DefaultBackoffJitter,
			},
			ResetAfter: DefaultResetAfter,
			Limit: Limit{
				Burst:    DefaultLimitBurst,
				Interval: DefaultLimitInterval,
				Action:   DefaultLimitAction,
			},
		},
		Stop: Stop{
			Signal:  DefaultStopSignal,
			Timeout: DefaultStopTimeout,
		},
		OnMissing: DefaultOnMissing,
	}
}

// DefaultLimits returns the host-wide limits used when the file has no
// limits section.
func DefaultLimits() Limits {
	return Limits{
		RestartsPerSecond: DefaultRestartsPerSecond,
		RestartBurst:      DefaultRestartBurst,
	}
}
