package restart_test

import (
	"errors"
	"os"
	"testing"

	"github.com/respawnd/respawnd/restart"
)

func TestStartExtraFiles(t *testing.T) {
	verifyNoLeaks(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.WriteString("given as fd 3\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	l, out := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "fd3", Argv: localHelperArgv("fd3"), ExtraFiles: []*os.File{r}})
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit status %+v\n%s", st, out)
	}
	waitOutput(t, p)
	if got, want := out.String(), "fd3 | given as fd 3\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}

	// The cgroup v1 shim takes fd 3 for itself.
	_, err = l.Start(restart.Command{Name: "fd3", Argv: localHelperArgv("fd3"), ExtraFiles: []*os.File{r}, CgroupProcs: []string{"/nonexistent/cgroup.procs"}})
	var se *restart.StartError
	if !errors.As(err, &se) || se.Op != restart.OpExec || !errors.Is(err, restart.ErrExtraFiles) {
		t.Errorf("Start with ExtraFiles and CgroupProcs = %v, want %s: %v", err, restart.OpExec, restart.ErrExtraFiles)
	}
}
