package hook

import "github.com/respawnd/respawnd/config"

// Specs turns a configuration's on_exit hooks into the Runner's, for
// SetAll: one entry per program, nil for a program without a hook (none
// configured, or turned off with on_exit: {command: []}). Defaults are
// filled in as config.Program.OnExitHook does: the reasons, the program's
// user.
func Specs(cfg *config.Config) map[string]*Spec {
	out := make(map[string]*Spec, len(cfg.Programs))
	for _, p := range cfg.Programs {
		h := p.OnExitHook(cfg.Hooks)
		if h == nil {
			out[p.Name] = nil
			continue
		}
		out[p.Name] = &Spec{Argv: h.Command, Reasons: h.Reasons, Timeout: h.Timeout, User: h.User, Group: h.Group}
	}
	return out
}
