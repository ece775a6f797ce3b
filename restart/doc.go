// Package restart decides when a supervised program starts again and starts
// it.
//
// It owns two things. The policy half is pure code without build tags:
// [Policy] is one program's backoff with jitter, reset_after and burst
// limit, and [Limiter] is the global token bucket for restarts across all
// programs. Both take the time from their caller, so they are deterministic
// under test.
//
// The launcher half is Linux code: [Launcher.Start] starts one instance
// through os/exec in its own session and process group, with the program's
// user, group, directory, environment, output and cgroup, and returns only
// once the program has exec'd or with a [StartError] naming the step that
// failed. A cgroup v2 directory is joined with clone3(CLONE_INTO_CGROUP);
// cgroup v1 hierarchies are joined by a small shim (respawnd itself,
// re-executed) that writes its pid to each cgroup.procs file before it execs
// the program, so no allocation of the program is charged elsewhere.
// An output file is opened with the program's own filesystem credentials,
// switched on one thread for the open, and resolved by the owner-checked
// rules of internal/securefs, so a program's user cannot redirect
// respawnd's open to another file (see Command.OutputFile). Every program's
// output goes through pipes that one goroutine reads (one epoll set for
// all), and that writes whole lines to the output file, rotating it by size
// relative to its checked directory, or to respawnd's own output; a failed
// write drops lines and counts them ([Launcher.OutputDroppedLines]) and
// never blocks a program. The last lines of each instance stay in memory
// ([Process.Tail]).
// [Launcher.Run] makes respawnd the child subreaper and reaps orphaned
// descendants without ever taking the exit status of a supervised child.
//
// The package deliberately knows nothing about OOM evidence, /proc matching,
// configuration files, logging policy or the supervisor's states; stopping a
// program (signal, timeout, SIGKILL) is the supervisor's sequence built on
// [Process.Signal] and [Process.Kill].
//
// respawnd is the only binary that may import os/exec, and it does so here.
package restart
