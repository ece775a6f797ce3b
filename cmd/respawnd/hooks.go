package main

import (
	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/postmortem"
)

// fireHook hands a written death record to the program's hook. Exits that
// respawnd was asked for (stops, reloads, its own shutdown) run none.
func fireHook(r *hook.Runner) func(rec *postmortem.Record, path string, data []byte) {
	return func(rec *postmortem.Record, path string, data []byte) {
		if rec.Stopped {
			return
		}
		r.Fire(hook.Exit{
			Program:    rec.Program,
			Reason:     rec.Reason,
			ExitCode:   rec.ExitCode,
			Signal:     rec.Signal,
			PID:        rec.PID,
			Generation: rec.Generation,
			Record:     data,
			RecordPath: path,
		})
	}
}
