// Package health runs the liveness probes of the health section: an HTTP
// GET, a TCP connect or a command, every period, against one instance of a
// program at a time.
//
// A Checker serves every program. Watch starts probing one instance and
// reports two events through the caller's function: Ready on the first
// probe that passes, Unhealthy once the configured number of consecutive
// failures is reached (after which the watch ends). The supervisor stops
// the old watch and starts a new one for each new instance.
//
// It owns the schedule (one probe in flight per watch at most, the next at
// the following period boundary), the timeout of each probe (an exec
// probe's whole process group is killed at it), the counting of
// consecutive failures and the startup grace.
//
// It deliberately does not start processes itself (the caller's Launcher
// does, restart.Launcher in the daemon), stop or restart programs (the
// supervisor does on Unhealthy), export metrics (Config.Observe reports
// each probe) or validate the configuration (package config does).
package health
