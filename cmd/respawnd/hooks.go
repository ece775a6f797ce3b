package main

import (
	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/postmortem"
)

// hookSpecs turns a configuration's on_exit hooks into the runner's: one
// entry per program, nil for a program without one.
func hookSpecs(cfg *config.Config) map[string]*hook.Spec {
	out := make(map[string]*hook.Spec, len(cfg.Programs))
	for _, p := range cfg.Programs {
		h := p.OnExitHook(cfg.Hooks)
		if h == nil {
			out[p.Name] = nil
			continue
		}
		out[p.Name] = &hook.Spec{Argv: h.Command, Reasons: h.Reasons, Timeout: h.Timeout, User: h.User, Group: h.Group}
	}
	return out
}

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
