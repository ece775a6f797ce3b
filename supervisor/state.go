package supervisor

import "fmt"

// State is where a program is in its life cycle.
type State int

// The program states. Their String values are used in logs, the API and the
// state metric label.
const (
	StateStarting State = iota
	StateRunning
	StateBackoff
	StateStopping
	StateStopped
	StateExited
	StateFatal
	// StateHeld is a program whose restart after a host-wide OOM kill
	// waits for the host's memory to recover (see Gate).
	StateHeld
	// StateOOMLoop is a program waiting out its crash backoff after
	// OOM kills that came too close together (restart.oom_loop within
	// restart.reset_after): its limit is too low or it leaks.
	StateOOMLoop
)

// States lists every state in order, for metrics that export one series per
// state.
var States = []State{StateStarting, StateRunning, StateBackoff, StateStopping, StateStopped, StateExited, StateFatal, StateHeld, StateOOMLoop}

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateBackoff:
		return "backoff"
	case StateStopping:
		return "stopping"
	case StateStopped:
		return "stopped"
	case StateExited:
		return "exited"
	case StateFatal:
		return "fatal"
	case StateHeld:
		return "held_for_memory"
	case StateOOMLoop:
		return "oom_loop"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText makes a State appear by name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reason is the one final reason of an exit.
type Reason int

// The exit reasons. Their String values are the reason metric label values.
const (
	ReasonUnknown Reason = iota
	ReasonOOMKill
	ReasonSignal
	ReasonExitError
	ReasonExitSuccess
	ReasonStartFailure
	// ReasonMemoryRecycle is an instance respawnd stopped because its
	// memory stayed above the program's recycle threshold.
	ReasonMemoryRecycle
	// ReasonHealthCheck is an instance respawnd stopped because its health
	// check failed the configured number of times in a row.
	ReasonHealthCheck
	// ReasonWatchdog is an instance respawnd stopped because it missed its
	// sd_notify watchdog (or asked for it with WATCHDOG=trigger).
	ReasonWatchdog
)

// Reasons lists every reason, for metrics that start each series at zero.
var Reasons = []Reason{ReasonOOMKill, ReasonSignal, ReasonExitError, ReasonExitSuccess, ReasonStartFailure, ReasonMemoryRecycle, ReasonHealthCheck, ReasonWatchdog, ReasonUnknown}

func (r Reason) String() string {
	switch r {
	case ReasonOOMKill:
		return "oom_kill"
	case ReasonSignal:
		return "signal"
	case ReasonExitError:
		return "exit_error"
	case ReasonExitSuccess:
		return "exit_success"
	case ReasonStartFailure:
		return "start_failure"
	case ReasonMemoryRecycle:
		return "memory_recycle"
	case ReasonHealthCheck:
		return "health_check"
	case ReasonWatchdog:
		return "watchdog"
	}
	return "unknown"
}

// MarshalText makes a Reason appear by name in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
