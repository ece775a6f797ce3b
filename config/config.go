package config

import (
	"math"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// Config is a whole respawnd configuration file after defaults are applied.
type Config struct {
	// File is the path the configuration was read from ("" when built in code).
	File string `yaml:"-"`
	// Limits are host-wide limits that apply across all programs.
	Limits Limits `yaml:"limits"`
	// Hooks holds the default hooks of programs that set none.
	Hooks Hooks `yaml:"hooks"`
	// Programs are the supervised programs, in file order.
	Programs []Program `yaml:"programs"`
}

// Limits caps restarts across all programs, so that an OOM storm that kills
// hundreds of programs at once does not become a fork bomb, and holds the
// host-wide defaults of the restart hold after a host-wide OOM.
type Limits struct {
	// RestartsPerSecond is the refill rate of the global token bucket.
	RestartsPerSecond float64 `yaml:"restarts_per_second"`
	// RestartBurst is the size of the global token bucket.
	RestartBurst int `yaml:"restart_burst"`
	// OOMHold is the default of every program's restart.oom_hold; see
	// Program.OOMHold.
	OOMHold bool `yaml:"oom_hold"`
	// OOMHoldMax is the default of every program's restart.oom_hold_max,
	// from 0 to MaxOOMHoldMax; see Program.OOMHoldMax.
	OOMHoldMax time.Duration `yaml:"oom_hold_max"`
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
	// OnExit is the command run after the program exited, or nil to use
	// the Config's Hooks.OnExit; an OnExit whose Command is empty turns
	// that default off. Program.OnExitHook gives the hook in force. It is
	// not part of Hash.
	OnExit *Hook `yaml:"on_exit"`
	// Health is nil when the program has no liveness check.
	Health *Health `yaml:"health"`
	// Notify is nil when the program does not speak sd_notify.
	Notify *Notify `yaml:"notify"`
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
	// OOMHold overrides Limits.OOMHold for this program; nil inherits it.
	// Program.OOMHold gives the value in force.
	OOMHold *bool `yaml:"oom_hold"`
	// OOMHoldMax overrides Limits.OOMHoldMax for this program; nil
	// inherits it. Program.OOMHoldMax gives the value in force.
	OOMHoldMax *time.Duration `yaml:"oom_hold_max"`
	// OOMLoop is how many OOM kills within ResetAfter put the program in
	// the oom_loop state, from 0 to MaxOOMLoop; 0 turns the state off.
	OOMLoop int `yaml:"oom_loop"`
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
	// MaxSize is the size in bytes past which File, when it is a regular
	// file, is rotated: renamed File.1 and opened anew. 0 never rotates;
	// otherwise it is MinOutputMaxSize to MaxOutputMaxSize. Default
	// DefaultOutputMaxSize. Setting it needs File.
	MaxSize int64 `yaml:"max_size"`
	// MaxFiles is how many rotated files are kept (File.1 … File.N, the
	// oldest removed), 1 to MaxOutputFiles. Default DefaultOutputMaxFiles.
	// Setting it needs File.
	MaxFiles int `yaml:"max_files"`
	// Timestamps starts every line with the time respawnd read it (RFC
	// 3339 with milliseconds and the offset), in File or after the prefix
	// on respawnd's own output.
	Timestamps bool `yaml:"timestamps"`
}

// Memory holds a program's cgroup memory limits in bytes and the settings
// of its memory watchdog; nil fields are unset.
type Memory struct {
	// Max is the hard limit (cgroup v2 memory.max); at least MinMemory.
	Max *int64 `yaml:"max"`
	// High is the throttling limit (cgroup v2 memory.high); at least
	// MinMemory and not above Max.
	High *int64 `yaml:"high"`
	// SwapMax is the swap limit (cgroup v2 memory.swap.max); 0 means no
	// swap.
	SwapMax *int64 `yaml:"swap_max"`
	// Recycle is nil unless the program is to be stopped and started again
	// before it reaches its limit.
	Recycle *Recycle `yaml:"recycle"`
	// WarnAbove is the usage above which respawnd reports the program near
	// its limit, with an event and a metric, and takes no action. It is
	// at least MinMemory, not above Max, and below Recycle.Above.
	// Program.WarnAbove gives it in bytes.
	WarnAbove *Threshold `yaml:"warn_above"`
}

// Recycle says when a program is recycled: stopped as usual (Stop) and
// started again at once, before the kernel's OOM killer acts on it.
type Recycle struct {
	// Above is the usage the program must stay above to be recycled; it is
	// required, at least MinMemory and not above Memory.Max.
	// Program.RecycleAbove gives it in bytes.
	Above Threshold `yaml:"above"`
	// For is how long the usage must stay above Above, from 0 (the first
	// reading above it) to MaxRecycleFor.
	For time.Duration `yaml:"for"`
	// Measure says which usage is compared with Above.
	Measure Measure `yaml:"measure"`
}

// Measure names the memory usage that the watchdog compares with
// Recycle.Above and Memory.WarnAbove.
type Measure string

// The measures.
const (
	// MeasureWorkingSet is the cgroup's usage less its inactive file cache
	// (memory.current minus inactive_file), as kubelet computes it: what
	// the kernel cannot simply drop when the cgroup reaches memory.max.
	MeasureWorkingSet Measure = "working_set"
	// MeasureRSS is the resident set size of the program's processes.
	MeasureRSS Measure = "rss"
	// MeasureAnon is the program's anonymous memory (heap and stacks) alone,
	// which is where a leak grows.
	MeasureAnon Measure = "anon"
)

// String returns the measure as it is written in the configuration file.
func (m Measure) String() string { return string(m) }

// valid reports whether m is one of the known measures.
func (m Measure) valid() bool {
	switch m {
	case MeasureWorkingSet, MeasureRSS, MeasureAnon:
		return true
	}
	return false
}

// Threshold is an amount of memory written either as a size (Bytes) or as a
// percentage of memory.max (Percent): "460MiB" or "90%". At most one of
// the fields is non-zero, and the zero Threshold is unset. ParseThreshold
// reads one as the file writes it.
type Threshold struct {
	// Bytes is the threshold in bytes when it is given as a size.
	Bytes int64
	// Percent is the threshold as a percentage of memory.max, above 0 and
	// at most 100, when it is given as one: 90 for "90%".
	Percent float64
}

// Resolve returns the threshold in bytes for a program whose memory.max is
// max. A size is returned as it is, whatever max is. A percentage is that
// share of max, rounded down; ok is false when max is not positive or the
// percentage is not above 0 and at most 100. ok is also false for the zero
// Threshold and for one with both fields set.
func (t Threshold) Resolve(max int64) (bytes int64, ok bool) {
	switch {
	case t.Percent == 0 && t.Bytes == 0, t.Percent != 0 && t.Bytes != 0:
		return 0, false
	case t.Percent == 0:
		return t.Bytes, true
	case max <= 0 || !(t.Percent > 0 && t.Percent <= 100): // NaN fails too
		return 0, false
	}
	f := math.Floor(float64(max) * t.Percent / 100)
	if f >= float64(max) {
		// float64 cannot hold every int64; 100% is max itself.
		return max, true
	}
	return int64(f), true
}

// String returns the threshold as the file writes it, so that
// ParseThreshold reads it back: "90%", "460MiB" (the largest IEC unit that
// divides the size), or plain bytes. The zero Threshold is "0". A
// Threshold with both fields set, which Validate refuses, reads
// "5 and 3%", for messages only.
func (t Threshold) String() string {
	p := strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	switch {
	case t.Percent == 0:
		return sizeText(t.Bytes)
	case t.Bytes == 0:
		return p
	}
	return strconv.FormatInt(t.Bytes, 10) + " and " + p
}

// The defaults, applied by Parse to every optional setting the file leaves
// out, and returned by DefaultProgram and DefaultLimits. DefaultRecycleFor
// and DefaultMeasure apply within a memory.recycle section that the file
// gives; without one the program is not recycled.
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
	DefaultOOMHold           = true
	DefaultOOMHoldMax        = 2 * time.Minute
	DefaultOOMLoop           = 3
	DefaultRecycleFor        = 30 * time.Second
	DefaultMeasure           = MeasureWorkingSet
	DefaultOutputMaxSize     = 100 << 20
	DefaultOutputMaxFiles    = 5
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
			OOMLoop: DefaultOOMLoop,
		},
		Stop: Stop{
			Signal:  DefaultStopSignal,
			Timeout: DefaultStopTimeout,
		},
		Output: Output{
			MaxSize:  DefaultOutputMaxSize,
			MaxFiles: DefaultOutputMaxFiles,
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
		OOMHold:           DefaultOOMHold,
		OOMHoldMax:        DefaultOOMHoldMax,
	}
}

// OOMHold reports whether a restart of p after a kill by a host-wide OOM
// waits until the host's memory has recovered: Restart.OOMHold when set,
// else l.OOMHold. l is the Limits of the Config that holds p.
func (p Program) OOMHold(l Limits) bool {
	if p.Restart.OOMHold != nil {
		return *p.Restart.OOMHold
	}
	return l.OOMHold
}

// OOMHoldMax returns how long a restart held by OOMHold waits at most
// before it goes ahead anyway: Restart.OOMHoldMax when set, else
// l.OOMHoldMax. l is the Limits of the Config that holds p.
func (p Program) OOMHoldMax(l Limits) time.Duration {
	if p.Restart.OOMHoldMax != nil {
		return *p.Restart.OOMHoldMax
	}
	return l.OOMHoldMax
}

// RecycleAbove returns the usage, in bytes, above which p is recycled
// (Memory.Recycle.Above resolved against Memory.Max), and false when p is
// not recycled. It is never false for a recycled program that passed
// validation.
func (p Program) RecycleAbove() (bytes int64, ok bool) {
	if p.Memory == nil || p.Memory.Recycle == nil {
		return 0, false
	}
	return p.Memory.Recycle.Above.Resolve(p.Memory.max())
}

// WarnAbove returns Memory.WarnAbove in bytes, resolved against Memory.Max,
// and false when it is unset. It is never false for a warn_above that
// passed validation.
func (p Program) WarnAbove() (bytes int64, ok bool) {
	if p.Memory == nil || p.Memory.WarnAbove == nil {
		return 0, false
	}
	return p.Memory.WarnAbove.Resolve(p.Memory.max())
}

// max returns Max, or 0 when it is unset.
func (m *Memory) max() int64 {
	if m.Max == nil {
		return 0
	}
	return *m.Max
}
