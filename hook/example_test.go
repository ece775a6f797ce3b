package hook_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/hook"
	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/restart"
)

// Example shows how the daemon wires a Runner: the launcher that starts
// programs starts hooks too, the metrics Recorder counts their results,
// SetAll follows every (re)load of the configuration, and the supervisor's
// exits are fired once their record is written.
func Example() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	launcher := restart.NewLauncher(restart.LauncherConfig{Logger: logger})
	rec := metrics.NewRecorder()
	runner := hook.New(hook.Config{
		Launcher: launcher,
		Logger:   logger,
		Outcome:  rec.HookRun, // respawnd_hook_runs_total{program,result}
		Env:      []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
	})

	cfg, err := config.Parse("respawnd.yaml", []byte(`hooks:
  on_exit: {command: [/usr/local/bin/notify, --channel, ops]}
programs:
  - name: api
    command: [/usr/bin/api]
    user: www-data
  - name: batch
    command: [/usr/bin/batch]
    on_exit: {command: []}
`))
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return
	}
	runner.SetAll(hook.Specs(cfg)) // at start, and again on every reload

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }() // in the daemon's errgroup

	// From the supervisor's exit, after the record is written; never blocks.
	runner.Fire(hook.Exit{
		Program: "api", Reason: "oom_kill", Signal: "SIGKILL", PID: 4242, Generation: 3,
		Record:     []byte(`{"program":"api","reason":"oom_kill"}`),
		RecordPath: "/run/respawnd/exits/api-3.json",
	})

	cancel() // shutting down: running hooks are killed, Run returns
	<-done
}
