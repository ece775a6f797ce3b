package config

import (
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
