package restart_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// benchmarkStart measures Start until the program has exec'd. Killing and
// collecting each instance is left out of the time.
func benchmarkStart(b *testing.B, cmd restart.Command) {
	l := restart.NewLauncher(restart.LauncherConfig{Stdout: io.Discard, Stderr: io.Discard})
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Start(cmd)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = p.Kill()
		<-p.Done()
		<-p.OutputDone()
		b.StartTimer()
	}
}

func BenchmarkStart(b *testing.B) {
	sleep := testenv.HelperArgv("sleep")
	b.Run("direct", func(b *testing.B) {
		benchmarkStart(b, restart.Command{Name: "bench", Argv: sleep})
	})
	b.Run("output-file", func(b *testing.B) {
		benchmarkStart(b, restart.Command{Name: "bench", Argv: sleep, OutputFile: filepath.Join(b.TempDir(), "log")})
	})
	b.Run("shim-file", func(b *testing.B) {
		// The shim protocol against a plain file: the shim's cost without
		// the cgroup migration.
		procs := filepath.Join(b.TempDir(), "procs")
		if err := os.WriteFile(procs, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		benchmarkStart(b, restart.Command{Name: "bench", Argv: sleep, CgroupProcs: []string{procs}})
	})
	b.Run("shim-v1", func(b *testing.B) {
		testenv.RequireCgroupV1(b, "the v1 shim")
		cg := testenv.NewMemoryCgroup(b, 256<<20)
		benchmarkStart(b, restart.Command{Name: "bench", Argv: sleep, CgroupProcs: []string{cg.Procs()}})
	})
}
