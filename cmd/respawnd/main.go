// Command respawnd keeps named programs alive: it restarts them the moment
// they die, tells an OOM kill apart from every other death and exports
// Prometheus metrics for every crash.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/respawnd/respawnd/restart"
)

// flags holds what every subcommand may use.
type flags struct {
	configFile  string
	keepOrphans bool
	// deathsSize caps the death records in --state.dir.
	deathsSize units.Base2Bytes
	procfs     string
	sysfs      string
	kmsg       string
	log        promslog.Config
	web        *webFlags
}

func main() {
	// A re-execution of respawnd as the launcher's cgroup-joining shim must
	// do nothing else.
	restart.RunShimIfRequested()
	closeOnExecInherited()
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var f flags
	app := kingpin.New("respawnd", "Keeps named programs alive, tells OOM kills apart from every other death, and exports metrics for every crash.")
	app.Version(version.Print("respawnd"))
	app.HelpFlag.Short('h')
	promslogflag.AddFlags(app, &f.log)
	app.Flag("path.procfs", "procfs mountpoint.").Default("/proc").StringVar(&f.procfs)
	app.Flag("path.sysfs", "sysfs mountpoint.").Default("/sys").StringVar(&f.sysfs)
	app.Flag("path.kmsg", "Kernel log device followed for OOM reports.").Default("/dev/kmsg").StringVar(&f.kmsg)
	f.web = addWebFlags(app)

	runCmd := app.Command("run", "Run the daemon in the foreground (the default).").Default()
	runCmd.Flag("config", "Configuration file (YAML). Without it respawnd runs with no programs.").Short('c').StringVar(&f.configFile)
	var orphans string
	runCmd.Flag("state.orphans", "What to do at start-up with the running instances, recorded in --state.dir, of programs that are no longer in the configuration: "+
		"stop them (with their recorded stop signal and timeout) or keep them running, listed by `respawnd status` as orphaned.").
		Default("stop").EnumVar(&orphans, "stop", "keep")

	runCmd.Flag("state.deaths-size", "Size cap of the death records kept in --state.dir/deaths (respawnd why): the oldest are removed first, except each program's first since start-up.").
		Default("32MiB").BytesVar(&f.deathsSize)

	checkCmd := app.Command("check", "Validate a configuration file and list every error.")
	checkCmd.Flag("config", "Configuration file (YAML).").Short('c').Required().StringVar(&f.configFile)

	ex := newExecCmd(app)
	sc := newScanCmd(app)
	ctl := newCtlCmds(app)
	ctl.why = newWhyCmd(app)
	versionCmd := app.Command("version", "Print version information.")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "respawnd: %v\n", err)
		return 2
	}
	f.keepOrphans = orphans == "keep"
	if ctl.has(cmd) {
		return ctl.run(cmd, &f, os.Stdout, os.Stderr)
	}
	logger := promslog.New(&f.log)
	switch cmd {
	case runCmd.FullCommand():
		return runDaemon(&f, logger)
	case checkCmd.FullCommand():
		return runCheck(f.configFile, os.Stdout, os.Stderr)
	case ex.cmd.FullCommand():
		return ex.run(&f, logger)
	case sc.cmd.FullCommand():
		return sc.run(&f, os.Stdout, os.Stderr)
	case versionCmd.FullCommand():
		fmt.Println(version.Print("respawnd"))
		return 0
	}
	return 2
}

func logStart(logger *slog.Logger, what string) {
	logger.Info("starting respawnd", append([]any{"mode", what}, version.Slog()...)...)
}
