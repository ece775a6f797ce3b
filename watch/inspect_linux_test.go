package watch

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InspectUntagged gives what Inspect gives but the tag, which it does not
// read.
func TestInspectUntaggedLeavesOnlyTheTag(t *testing.T) {
	s := liveScanner(t)
	cmd := exec.Command("/bin/sleep", "60")
	cmd.Env = []string{TagKey + "=p.1.abc"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	full, err := s.Inspect(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if full.Tag != "p.1.abc" {
		t.Fatalf("Inspect: tag %q, want p.1.abc", full.Tag)
	}
	untagged, err := s.InspectUntagged(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	want := full
	want.Tag = ""
	if untagged != want {
		t.Errorf("InspectUntagged = %+v, want %+v (Inspect's details without the tag)", untagged, want)
	}
}

// A process whose environment cannot be read (here a /proc whose environ
// is no file) is inspected without it; Inspect, which needs the tag, fails.
func TestInspectUntaggedReadsNoEnvironment(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	fields := make([]string, 50) // after the command: state, ppid, … (starttime is the 20th)
	for i := range fields {
		fields[i] = "0"
	}
	fields[0], fields[1], fields[2], fields[3], fields[19] = "S", "1", "4242", "4242", "777"
	files := map[string]string{
		"stat":   "4242 (sleep) " + strings.Join(fields, " ") + "\n",
		"status": "Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\n",
	}
	if err := os.MkdirAll(filepath.Join(dir, "environ"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.InspectUntagged(4242)
	if err != nil {
		t.Fatalf("InspectUntagged: %v", err)
	}
	if d.StartTime != 777 || d.EUID != 1000 || d.PGID != 4242 || d.Tag != "" {
		t.Errorf("InspectUntagged = %+v, want start time 777, euid 1000, group 4242, no tag", d)
	}
	if _, err := s.Inspect(4242); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Inspect with an unreadable environ: %v, want a read error", err)
	}
}
