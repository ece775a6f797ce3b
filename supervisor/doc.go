// Package supervisor runs one loop per supervised program and owns its
// states (starting, running, backoff, stopping, stopped, exited, fatal). It
// joins the launcher and restart policy (package restart), kernel OOM
// evidence (package oom) and per-program memory cgroups, and settles the one
// final reason of every exit.
//
// Each program's state is owned by a single goroutine; everything else talks
// to it through messages. The restart path (death noticed, policy decision,
// new process started) does no logging, metrics or /proc reads before the new
// process runs; those follow the start.
//
// It deliberately knows nothing of metrics, flags or log set-up: events go
// out through the Recorder interface and a *slog.Logger it is given.
package supervisor
