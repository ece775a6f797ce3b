package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// The output section reaches the launcher: a file is rotated at max_size
// keeping max_files, its lines are stamped, and lines a full disk drops are
// counted in respawnd_program_output_dropped_lines_total while the program
// keeps running.
func TestOutputSettingsReachTheLauncher(t *testing.T) {
	testenv.RequireRoot(t, "mounting a small tmpfs to fill")
	dir := t.TempDir()
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=256k,mode=0755"); err != nil {
		if errors.Is(err, unix.EPERM) {
			testenv.Skip(t, "mounting a tmpfs: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	rot := filepath.Join(dir, "rot.log")
	full := filepath.Join(mnt, "full.log")
	cfg := writeFile(t, dir, "respawnd.yaml", fmt.Sprintf(`programs:
  - name: rot
    command: %s
    output: {file: %s, max_size: 64KiB, max_files: 2, timestamps: true}
  - name: full
    command: %s
    output: {file: %s, max_size: 0}
`, yamlList(localHelperArgv("spew", "3000", "100")), rot, yamlList(localHelperArgv("spew", "10000", "100")), full))
	d := startRespawnd(t, "--config", cfg)
	l, _ := d.waitLog(0, map[string]any{"msg": "Listening on"})
	addr, _ := l["address"].(string)
	pids := runningPIDs(d, 0, "rot", "full")

	waitFor(t, "dropped lines of full counted", func() bool {
		return scrape(t, addr)["respawnd_program_output_dropped_lines_total"][`program="full"`] > 0
	})
	d.waitLog(0, map[string]any{"msg": "writing the output file failed; lines are dropped until it works again", "program": "full"})
	waitFor(t, "rot.log rotated twice", func() bool {
		_, err := os.Stat(rot + ".2")
		return err == nil
	})
	waitFor(t, "all of rot's lines written", func() bool {
		b, _ := os.ReadFile(rot)
		return strings.HasSuffix(string(b), " 2999 "+strings.Repeat("x", 100)+"\n")
	})
	if _, err := os.Stat(rot + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.3 exists (%v), want 2 rotated files kept", rot, err)
	}
	stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) \d+ x{100}$`)
	for _, f := range []string{rot, rot + ".1", rot + ".2"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(f); fi.Size() > 64<<10 {
			t.Errorf("%s holds %d bytes, more than max_size", f, fi.Size())
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !stamped.MatchString(line) {
				t.Fatalf("%s: line %.60q not stamped", f, line)
			}
		}
	}
	if v := scrape(t, addr)["respawnd_program_output_dropped_lines_total"][`program="rot"`]; v != 0 {
		t.Errorf("rot dropped %v lines, want 0", v)
	}
	for name, pid := range pids {
		if p, ok := identify(pid); !ok || !p.alive() {
			t.Errorf("%s (pid %d) no longer runs", name, pid)
		}
	}
}
