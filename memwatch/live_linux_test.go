package memwatch

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

var captureDir = flag.String("memwatch.capture", "", "write the live cgroup files of TestReadCgroupLive under this directory, as fixtures (see testdata/README.md)")

// ReadCgroup parses the files of a live memory cgroup holding a grower
// with 24 MiB of anonymous memory, on this kernel: the figures are
// consistent with each other and with what the grower holds.
func TestReadCgroupLive(t *testing.T) {
	cg := testenv.NewMemoryCgroup(t, 256*mib)
	g := startGrower(t, growerParams{cgroup: cg, measure: Anon, threshold: 1 << 40,
		fast: 24 * mib, step: mib, period: time.Millisecond, max: 24 * mib})
	g.send("grow")
	g.expect("max", 30*time.Second)
	s, err := ReadCgroup(cg.Dir, cg.V2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s)
	if s.Anon < 24*mib || s.RSS < s.Anon || s.WorkingSet < s.Anon || s.Usage < s.WorkingSet || s.Usage < s.RSS {
		t.Errorf("inconsistent sample %+v for 24 MiB of anonymous memory", s)
	}
	if *captureDir == "" {
		return
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	mm := strings.Join(strings.SplitN(release, ".", 3)[:2], ".")
	version := "v1-"
	files := []string{"memory.usage_in_bytes", "memory.stat", "memory.oom_control"}
	root := filepath.Dir(cg.Dir)
	if cg.V2 {
		version = "v2-"
		files = []string{"memory.current", "memory.stat", "memory.events", "memory.pressure"}
	}
	// The test's own cgroup too: it holds page cache (the test binary),
	// which the grower's does not.
	own, err := testenv.OwnCgroupDir(root, cg.V2)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{version + mm + "-grower": cg.Dir, version + mm + "-own": own} {
		dir := filepath.Join(*captureDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Logf("not captured: %v", err)
				continue
			}
			t.Logf("captured %s/%s (kernel %s):\n%s", name, f, release, b)
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
