package restart

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// BenchmarkOpenOutput measures opening a program's output file, which
// happens on every start: the plain open respawnd used to do, the checked
// open with respawnd's credentials, and the checked open with a program
// user's credentials on a thread of its own.
func BenchmarkOpenOutput(b *testing.B) {
	dir := b.TempDir()
	for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	logs := filepath.Join(dir, "srv", "app", "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(logs, "app.log")
	run := func(b *testing.B, open func() (*os.File, error)) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := open()
			if err != nil {
				b.Fatal(err)
			}
			_ = f.Close()
		}
	}
	b.Run("os.OpenFile", func(b *testing.B) {
		run(b, func() (*os.File, error) { return os.OpenFile(path, outputFlags, outputPerm) })
	})
	b.Run("own-credentials", func(b *testing.B) {
		run(b, func() (*os.File, error) { return openOutput(path, nil) })
	})
	b.Run("as-nobody", func(b *testing.B) {
		testenv.RequireRoot(b, "opening a file as another user")
		cred, _, serr := lookupCredential("nobody", "")
		if serr != nil {
			testenv.Skip(b, "no user nobody: %v", serr)
		}
		if err := os.Chown(logs, int(cred.Uid), int(cred.Gid)); err != nil {
			b.Fatal(err)
		}
		userPath := filepath.Join(logs, "nobody.log")
		run(b, func() (*os.File, error) { return openOutput(userPath, cred) })
	})
}

// threadStatus returns the Uid, Gid, Groups and CapEff lines of a
// /proc/…/status file.
func threadStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "Uid" || k == "Gid" || k == "Groups" || k == "CapEff") {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// TestAsFilesystemUser checks that the switch reaches the thread that runs
// fn, takes CAP_DAC_OVERRIDE away there, and leaves every thread of the
// process with respawnd's credentials afterwards.
func TestAsFilesystemUser(t *testing.T) {
	testenv.RequireRoot(t, "switching a thread's filesystem credentials")
	cred, _, serr := lookupCredential("nobody", "")
	if serr != nil {
		testenv.Skip(t, "no user nobody: %v", serr)
	}
	cred.Groups = []uint32{4242, 4243}
	before := threadStatus(t, "/proc/thread-self/status")
	var inside map[string]string
	var others []string // threads other than the switched one whose credentials changed
	for range 20 {
		if err := asFilesystemUser(cred, func() error {
			inside = threadStatus(t, "/proc/thread-self/status")
			self := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/status"
			tasks, _ := filepath.Glob("/proc/self/task/*/status")
			for _, task := range tasks {
				if st := threadStatus(t, task); task != self && (st["Uid"] != before["Uid"] || st["Gid"] != before["Gid"] || st["Groups"] != before["Groups"]) {
					others = append(others, task)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(others) > 0 {
		t.Errorf("the switch reached other threads: %v", others)
	}
	// Uid and Gid: real, effective, saved, filesystem.
	if uid := strings.Fields(inside["Uid"]); len(uid) != 4 || uid[0] != "0" || uid[1] != "0" || uid[3] != strconv.Itoa(int(cred.Uid)) {
		t.Errorf("Uid inside %q, want the filesystem uid %d only", inside["Uid"], cred.Uid)
	}
	if gid := strings.Fields(inside["Gid"]); len(gid) != 4 || gid[3] != strconv.Itoa(int(cred.Gid)) {
		t.Errorf("Gid inside %q, want the filesystem gid %d", inside["Gid"], cred.Gid)
	}
	if inside["Groups"] != "4242 4243" {
		t.Errorf("Groups inside %q, want 4242 4243", inside["Groups"])
	}
	capEff, err := strconv.ParseUint(inside["CapEff"], 16, 64)
	if err != nil || capEff&(1<<unix.CAP_DAC_OVERRIDE) != 0 {
		t.Errorf("CapEff inside %q: CAP_DAC_OVERRIDE not dropped", inside["CapEff"])
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Fatal(tasks, err)
	}
	for _, task := range tasks {
		st := threadStatus(t, task)
		for _, k := range []string{"Uid", "Gid", "Groups", "CapEff"} {
			if st[k] != before[k] {
				t.Errorf("%s after the switches: %s %q, want %q", task, k, st[k], before[k])
			}
		}
	}
}
