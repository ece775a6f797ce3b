package restart_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

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

// BenchmarkOutputCapture measures the cost per line of a program's output
// through respawnd (program → pipe → output mux → file, the tail kept)
// against the program writing to the file itself. Each op is one line of
// 100 bytes; the program writes b.N of them, buffered as most programs do,
// and the time runs from its start until every line is in the file. The
// start of the program is included in both, and amortised over b.N.
// Besides the time, it reports the CPU respawnd's side spends per line
// (respawnd-cpu-ns/line: the test process, which runs the mux) and the
// program's own (program-cpu-ns/line), which a busy machine disturbs less
// than the time.
func BenchmarkOutputCapture(b *testing.B) {
	run := func(b *testing.B, stamps bool, tailLines int) {
		path := filepath.Join(b.TempDir(), "out.log")
		l := restart.NewLauncher(restart.LauncherConfig{Stdout: io.Discard, Stderr: io.Discard, TailLines: tailLines})
		b.ResetTimer()
		defer cpuPerLine(b)()
		p, err := l.Start(restart.Command{Name: "bench", Argv: localHelperArgv("seq", strconv.Itoa(b.N), "100"),
			OutputFile: path, OutputMaxSize: 100 << 20, OutputMaxFiles: 2, OutputTimestamps: stamps})
		if err != nil {
			b.Fatal(err)
		}
		<-p.Done()
		<-p.OutputDone()
		b.StopTimer()
		if p.Exit().Code != 0 {
			b.Fatalf("exit %+v", p.Exit())
		}
	}
	b.Run("capture", func(b *testing.B) { run(b, false, 0) })
	b.Run("capture-timestamps", func(b *testing.B) { run(b, true, 0) })
	b.Run("capture-no-tail", func(b *testing.B) { run(b, false, -1) })
	b.Run("pass-through", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "out.log")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		argv := localHelperArgv("seq", strconv.Itoa(b.N), "100")
		b.ResetTimer()
		defer cpuPerLine(b)()
		c := exec.Command(argv[0], argv[1:]...)
		c.Stdout, c.Stderr = f, f
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
	})
}

// cpuPerLine starts measuring the CPU time of the test process and of its
// reaped children; the function it returns reports both per op.
func cpuPerLine(b *testing.B) func() {
	var self0, child0 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self0)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &child0)
	return func() {
		var self1, child1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &self1)
		_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &child1)
		cpu := func(r0, r1 *unix.Rusage) float64 {
			return float64(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) / float64(b.N)
		}
		b.ReportMetric(cpu(&self0, &self1), "respawnd-cpu-ns/line")
		b.ReportMetric(cpu(&child0, &child1), "program-cpu-ns/line")
	}
}
