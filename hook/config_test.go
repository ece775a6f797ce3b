package hook_test

import (
	"slices"
	"testing"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/hook"
)

// Specs gives each program the hook in force: its own, the default, or
// none when it turned the default off; with the program's user unless the
// hook names one.
func TestSpecs(t *testing.T) {
	cfg, err := config.Parse("respawnd.yaml", []byte(`hooks:
  on_exit: {command: [/usr/local/bin/notify], timeout: 5s}
programs:
  - {name: api, command: [/usr/bin/api], user: www-data}
  - {name: web, command: [/usr/bin/web], on_exit: {command: [/usr/local/bin/page, web], reasons: [oom_kill], user: root}}
  - {name: batch, command: [/usr/bin/batch], on_exit: {command: []}}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := hook.Specs(cfg)
	if len(s) != 3 || s["batch"] != nil {
		t.Fatalf("specs %v: want three entries, batch without a hook", s)
	}
	if api := s["api"]; api == nil || !slices.Equal(api.Argv, []string{"/usr/local/bin/notify"}) || api.User != "www-data" || api.Timeout.Seconds() != 5 || len(api.Reasons) == 0 {
		t.Errorf("api: %+v, want the default hook as www-data with the default reasons", api)
	}
	if web := s["web"]; web == nil || !slices.Equal(web.Argv, []string{"/usr/local/bin/page", "web"}) || web.User != "root" || !slices.Equal(web.Reasons, []string{"oom_kill"}) {
		t.Errorf("web: %+v, want its own hook as root for oom_kill only", web)
	}
}
