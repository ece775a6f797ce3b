package watch

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

// Helper modes of this package's tests, on top of testenv's.
const (
	// daemonizeArg starts argv[3:] in a new session, writes its pid to the
	// file argv[2] and exits, so that the started process is reparented and
	// is no child of the test.
	daemonizeArg = "watch-test-daemonize"
	// exitOnEOFArg reads the FIFO argv[2] until EOF, then exits with code
	// argv[3]: a victim that exits when the test says so.
	exitOnEOFArg = "watch-test-exit-on-eof"
)

func TestMain(m *testing.M) {
	runWatchHelper()
	testenv.RunHelperIfRequested()
	os.Exit(m.Run())
}

func runWatchHelper() {
	if len(os.Args) < 3 {
		return
	}
	switch os.Args[1] {
	case daemonizeArg:
		if len(os.Args) < 4 {
			os.Exit(2)
		}
		p, err := os.StartProcess(os.Args[3], os.Args[3:], &os.ProcAttr{
			Files: []*os.File{nil, os.Stdout, os.Stderr},
			Sys:   &syscall.SysProcAttr{Setsid: true},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if err := os.WriteFile(os.Args[2], []byte(strconv.Itoa(p.Pid)), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0)
	case exitOnEOFArg:
		f, err := os.Open(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		_, _ = io.Copy(io.Discard, f)
		code, _ := strconv.Atoi(os.Args[3])
		os.Exit(code)
	}
}
