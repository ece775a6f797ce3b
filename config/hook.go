package config

import (
	"slices"
	"time"
)

// ExitReasons are the reasons respawnd gives for a program's exit, exactly
// as logs, the API and the reason label of respawnd_program_exits_total
// write them. An on_exit hook's reasons name some of them. health_check is
// an instance respawnd stopped after its health check failed; watchdog is
// one that missed its sd_notify watchdog. Do not modify.
var ExitReasons = []string{"oom_kill", "signal", "exit_error", "exit_success", "start_failure", "memory_recycle", "health_check", "watchdog", "unknown"}

// DefaultHookReasons are the exits an on_exit hook runs after when it sets
// no reasons: every reason but exit_success (the program did its job) and
// memory_recycle (respawnd stopped it on purpose, as memory.recycle asks).
// health_check and watchdog are in: respawnd stopped the program, but
// because it hung, which is a failure. Do not modify.
var DefaultHookReasons = []string{"oom_kill", "signal", "exit_error", "start_failure", "health_check", "watchdog", "unknown"}

// DefaultHookTimeout is an on_exit hook's timeout when the file sets none.
const DefaultHookTimeout = 10 * time.Second

// Hooks holds the host-wide defaults of the programs' hooks (the top-level
// hooks section).
type Hooks struct {
	// OnExit is the hook of every program without an on_exit of its own;
	// nil when there is none. Its Command is never empty.
	OnExit *Hook `yaml:"on_exit"`
}

// Hook is a command respawnd runs after a program exited (on_exit): at
// most one at a time per program, never delaying the restart. See
// docs/config.md.
type Hook struct {
	// Command is the argv, executed directly, never through a shell.
	// Command[0] is an absolute path or a name without a slash, looked up
	// in respawnd's PATH. In a program's on_exit, an empty (but present)
	// Command turns the hook off, the default of the hooks section
	// included; the hook's other fields are then unset.
	Command []string `yaml:"command"`
	// Reasons are the exit reasons (ExitReasons) the hook runs after; nil
	// means DefaultHookReasons.
	Reasons []string `yaml:"reasons"`
	// Timeout is how long the hook may run before its process group is
	// killed, from MinHookTimeout to MaxHookTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// User is the user name or numeric uid the hook runs as; "" means the
	// program's user (Program.User).
	User string `yaml:"user"`
	// Group is the group name or numeric gid the hook runs as; "" means
	// the program's group when User is "" too, else User's primary group.
	Group string `yaml:"group"`
}

// Off reports whether h turns the hook off: a program's on_exit with an
// empty command.
func (h *Hook) Off() bool { return len(h.Command) == 0 }

// OnExitHook returns the on_exit hook in force for p, given the Hooks of
// the Config that holds p, or nil when p has none: p.OnExit when set (nil
// when it is turned off), else hooks.OnExit. The result is a copy with
// every default filled in: Reasons (DefaultHookReasons when unset), User
// and Group (the program's when the hook names no user; with only a group
// given, the program's user in that group).
//
// Hooks are not part of Program.Hash: changing one on reload restarts no
// program.
func (p Program) OnExitHook(hooks Hooks) *Hook {
	h := p.OnExit
	if h == nil {
		h = hooks.OnExit
	}
	if h == nil || h.Off() {
		return nil
	}
	out := &Hook{
		Command: slices.Clone(h.Command),
		Reasons: slices.Clone(h.Reasons),
		Timeout: h.Timeout,
		User:    h.User,
		Group:   h.Group,
	}
	if out.Reasons == nil {
		out.Reasons = slices.Clone(DefaultHookReasons)
	}
	if out.User == "" {
		out.User = p.User
		if out.Group == "" {
			out.Group = p.Group
		}
	}
	return out
}
