// Package hook runs the commands configured to follow a program's exit
// (on_exit): one Runner for the daemon, told each program's Spec with Set
// and each exit with Fire.
//
// It owns when a hook runs (the reasons filter, at most one run per
// program at a time, coalescing of exits that come while one runs, the
// timeout that kills the hook's process group), the hook's environment
// (RESPAWND_PROGRAM, RESPAWND_REASON, …) and how the exit record reaches a
// hook that cannot read respawnd's state directory (a sealed memfd as fd
// 3). It deliberately does not start processes itself (the caller's
// Launcher does, restart.Launcher in the daemon), decide exit reasons (the
// supervisor does), write the exit record (the caller gives it), or export
// metrics (Config.Outcome reports each result).
package hook
