package restart_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// readRotated returns the lines of FILE.n … FILE.1 and FILE, oldest
// first, and fails the test if a file is larger than limit (0: any) or
// ends in the middle of a line.
func readRotated(t *testing.T, path string, n int, limit int64) []string {
	t.Helper()
	var lines []string
	for i := n; i >= 0; i-- {
		name := path
		if i > 0 {
			name = path + "." + strconv.Itoa(i)
		}
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if limit > 0 && int64(len(b)) > limit {
			t.Errorf("%s holds %d bytes, more than max size %d", name, len(b), limit)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", name)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	return lines
}

// TestOutputRotation checks that rotation keeps exactly max_files rotated
// files besides the file itself, each at most max_size and cut between
// lines, and that what they hold is the end of the output, complete and
// in order.
func TestOutputRotation(t *testing.T) {
	verifyNoLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	const (
		maxSize  = 64 << 10
		maxFiles = 3
		lines    = 20000
		pad      = 40
	)
	l, out := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "rot", Argv: localHelperArgv("seq", strconv.Itoa(lines), strconv.Itoa(pad)),
		OutputFile: path, OutputMaxSize: maxSize, OutputMaxFiles: maxFiles})
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit %+v", st)
	}
	waitOutput(t, p)
	names, err := filepath.Glob(path + "*")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path, path + ".1", path + ".2", path + ".3"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("files %v, want %v", names, want)
	}
	got := readRotated(t, path, maxFiles+1, maxSize)
	if len(got) == 0 || len(got) >= lines {
		t.Fatalf("%d lines kept of %d: rotation dropped nothing or everything", len(got), lines)
	}
	first := lines - len(got)
	for i, line := range got {
		if want := fmt.Sprintf("%d %s", first+i, strings.Repeat("x", pad)); line != want {
			t.Fatalf("line %d of the kept output is %.30q, want %.30q (complete and in order)", i, line, want)
		}
	}
	// Files are full: the rotated ones hold more than max size less a line.
	for i := 1; i <= maxFiles; i++ {
		fi, err := os.Stat(path + "." + strconv.Itoa(i))
		if err != nil || fi.Size() < maxSize-100 {
			t.Errorf("%s.%d: %v, %v: rotated early", path, i, fi, err)
		}
	}
	if n := l.OutputDroppedLines("rot"); n != 0 {
		t.Errorf("%d lines dropped, want none", n)
	}
	if out.String() != "" {
		t.Errorf("launcher output %q, want none", out)
	}
}

// TestOutputRotationOneLongLine checks that a line longer than max_size
// gets a file of its own rather than being cut.
func TestOutputRotationOneLongLine(t *testing.T) {
	verifyNoLeaks(t)
	path := filepath.Join(t.TempDir(), "app.log")
	l, _ := newTestLauncher(restart.LauncherConfig{})
	// Three lines of 60,000 bytes into files of 50,000.
	p := start(t, l, restart.Command{Name: "long", Argv: localHelperArgv("seq", "3", "60000"),
		OutputFile: path, OutputMaxSize: 50000, OutputMaxFiles: 5})
	waitDone(t, p)
	waitOutput(t, p)
	got := readRotated(t, path, 5, 0)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3", len(got))
	}
	for i := range 3 {
		b, err := os.ReadFile(map[int]string{0: path + ".2", 1: path + ".1", 2: path}[i])
		if err != nil || string(b) != fmt.Sprintf("%d %s\n", i, strings.Repeat("x", 60000)) {
			t.Errorf("file %d holds %d bytes (%v), want line %d alone", i, len(b), err, i)
		}
	}
}

// TestOutputNotRotated checks that a character device (what /dev/stdout
// is on a terminal, and /dev/null) is written and never renamed however
// much is written, and that a FIFO is refused at start and left alone.
func TestOutputNotRotated(t *testing.T) {
	testenv.RequireRoot(t, "making a character device node")
	verifyNoLeaks(t)
	dir := t.TempDir()
	dev := filepath.Join(dir, "null")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	paths := []string{dev, os.DevNull}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err == nil && sfs.Flags&unix.ST_NODEV != 0 {
		// A nodev mount (the VM guests' /tmp) refuses to open device
		// nodes; /dev/null is still one.
		t.Logf("%s is mounted nodev: testing %s only", dir, os.DevNull)
		paths = paths[1:]
	}
	l, _ := newTestLauncher(restart.LauncherConfig{})
	for _, path := range paths {
		p := start(t, l, restart.Command{Name: "dev", Argv: localHelperArgv("seq", "5000", "100"),
			OutputFile: path, OutputMaxSize: 64 << 10, OutputMaxFiles: 2})
		waitDone(t, p)
		waitOutput(t, p)
		if _, err := os.Lstat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s.1 exists (%v): a character device was rotated", path, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("%s is now %v (%v), want the character device", path, fi, err)
		}
		if tail := p.Tail(); len(tail) == 0 || tail[len(tail)-1].Text != "4999 "+strings.Repeat("x", 100) {
			t.Errorf("tail of %s ends wrong: %d lines", path, len(tail))
		}
	}
	if n := l.OutputDroppedLines("dev"); n != 0 {
		t.Errorf("%d lines dropped writing to character devices", n)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = l.Start(restart.Command{Name: "fifo", Argv: localHelperArgv("seq", "10", "1"),
		OutputFile: fifo, OutputMaxSize: 64 << 10, OutputMaxFiles: 2})
	if !errors.Is(err, securefs.ErrNotRegular) {
		t.Errorf("start with a FIFO: %v, want %v", err, securefs.ErrNotRegular)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("%s is now %v (%v), want the FIFO", fifo, fi, err)
	}
	if _, err := os.Lstat(fifo + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.1 exists (%v): a FIFO was rotated", fifo, err)
	}
}

// stampRE is a line stamped by OutputTimestamps.
var stampRE = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) `

// TestOutputTimestamps checks the RFC 3339 stamp with milliseconds at the
// start of each line of a file, and after the prefix on respawnd's output.
func TestOutputTimestamps(t *testing.T) {
	verifyNoLeaks(t)
	path := filepath.Join(t.TempDir(), "app.log")
	l, out := newTestLauncher(restart.LauncherConfig{})
	p := start(t, l, restart.Command{Name: "ts", Argv: localHelperArgv("seq", "3", "2"), OutputFile: path, OutputTimestamps: true})
	waitDone(t, p)
	waitOutput(t, p)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if re := regexp.MustCompile(`^(` + stampRE + `\d xx\n){3}$`); !re.Match(b) {
		t.Errorf("file holds %q, want 3 stamped lines", b)
	}
	p = start(t, l, restart.Command{Name: "ts", Argv: localHelperArgv("seq", "3", "2"), OutputTimestamps: true})
	waitDone(t, p)
	waitOutput(t, p)
	if re := regexp.MustCompile(`^(ts \| ` + stampRE + `\d xx\n){3}$`); !re.MatchString(out.String()) {
		t.Errorf("launcher output %q, want 3 prefixed, stamped lines", out)
	}
	// The stamp is the time kept in the tail, to the millisecond.
	tail := p.Tail()
	if len(tail) != 3 {
		t.Fatalf("tail %v, want 3 lines", tail)
	}
	first := strings.SplitN(out.String(), " ", 4)[2]
	if want := tail[0].Time.Format("2006-01-02T15:04:05.000Z07:00"); first != want {
		t.Errorf("stamp %q, want the tail's time %q", first, want)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	testenv.RequireRoot(t, "mounting a small tmpfs to fill")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.Itoa(size)+",mode=0755"); err != nil {
		if errors.Is(err, unix.EPERM) {
			testenv.Skip(t, "mounting a tmpfs: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// TestOutputFullDisk fills a 1 MiB filesystem: the program must keep
// running and finish its output while lines are dropped and counted, and
// writing must resume once space is freed.
func TestOutputFullDisk(t *testing.T) {
	verifyNoLeaks(t)
	mnt := mountTmpfs(t, 1<<20)
	ctl := t.TempDir()
	path := filepath.Join(mnt, "app.log")
	l, _ := newTestLauncher(restart.LauncherConfig{})
	// 4 MiB of output into 1 MiB, rotated in files of 256 KiB with 8 kept:
	// the disk is full long before rotation would remove anything.
	p := start(t, l, restart.Command{Name: "full", Argv: localHelperArgv("flood", ctl, "40000", "100", "100"),
		OutputFile: path, OutputMaxSize: 256 << 10, OutputMaxFiles: 8})
	testenv.Eventually(t, "the program wrote all its output onto a full disk", func() bool {
		_, err := os.Stat(ctl + "/flooded")
		return err == nil
	})
	testenv.Eventually(t, "lines counted as dropped", func() bool { return l.OutputDroppedLines("full") > 0 })
	select {
	case <-p.Done():
		t.Fatalf("the program ended early: %+v", p.Exit())
	default:
	}
	// Free the space: remove the rotated files.
	rotated, _ := filepath.Glob(path + ".*")
	if len(rotated) == 0 {
		t.Fatal("no rotated files to remove")
	}
	removed := 0
	for _, f := range rotated {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		removed += strings.Count(string(b), "\n")
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ctl+"/go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, p); st.Code != 0 {
		t.Fatalf("exit %+v, want 0", st)
	}
	waitOutput(t, p)
	// Lines read before the space was freed may be dropped, not the ones
	// the program wrote after.
	dropped := l.OutputDroppedLines("full")
	got := readRotated(t, path, 8, 256<<10)
	if len(got) < 100 {
		t.Fatalf("%d lines kept", len(got))
	}
	for i, line := range got[len(got)-100:] {
		if want := fmt.Sprintf("after %d", i); line != want {
			t.Fatalf("line %q, want %q: writing did not resume whole", line, want)
		}
	}
	lineRE := regexp.MustCompile(`^(flood \d+ x{100}|after \d+)$`)
	for _, line := range got {
		if !lineRE.MatchString(line) {
			t.Fatalf("line %.40q is cut or mangled", line)
		}
	}
	if n := dropped + uint64(removed+len(got)); n != 40100 {
		t.Errorf("%d lines kept, %d removed and %d dropped, %d in all of 40,100: lines lost uncounted", len(got), removed, dropped, n)
	}
}

// TestOutputRotationAttack has nobody, who may write in the group-writable
// log directory of a program running as root, swap the names rotation
// works on for its own links to root's files between two bursts of output:
// rotation must never write, rename or remove anything outside the
// directory, nor write through a link.
func TestOutputRotationAttack(t *testing.T) {
	tr := newOutputTree(t)
	logs := filepath.Join(tr.dir, "grouplogs")
	mkdirMode(t, logs, 0o775, 0)
	if err := os.Chown(logs, 0, tr.nobodyGID); err != nil {
		t.Fatal(err)
	}
	ctl := t.TempDir()
	path := filepath.Join(logs, "app.log")
	asNobody := func(args ...string) {
		t.Helper()
		c := exec.Command(tr.exe, append([]string{localHelperArg}, args...)...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(tr.nobody), Gid: uint32(tr.nobodyGID)}}
		if out, err := c.CombinedOutput(); err != nil && c.ProcessState.ExitCode() != 1 {
			t.Fatalf("nobody's %v: %v\n%s", args, err, out)
		}
	}
	l, _ := newTestLauncher(restart.LauncherConfig{})
	// A program running as root may not put its output in nobody's own
	// directory: nobody could rename anything there.
	if _, err := l.Start(restart.Command{Name: "victim", Argv: tr.argv("args"), OutputFile: tr.logs + "/app.log",
		OutputMaxSize: 64 << 10, OutputMaxFiles: 2}); !errors.Is(err, securefs.ErrUntrustedOwner) {
		t.Errorf("start with output in nobody's directory: %v, want %v", err, securefs.ErrUntrustedOwner)
	}
	p := start(t, l, restart.Command{Name: "victim", Argv: tr.argv("flood", ctl, "100", "100", "20000"),
		OutputFile: path, OutputMaxSize: 64 << 10, OutputMaxFiles: 3})
	testenv.Eventually(t, "the first burst", func() bool {
		_, err := os.Stat(ctl + "/flooded")
		return err == nil
	})
	// nobody plants links where rotated files go, and replaces the file
	// itself by a link.
	asNobody("symlink", tr.rootLog, path+".1")
	asNobody("symlink", tr.secret, path+".2")
	// A hard link to root's file, as nobody could plant one without
	// fs.protected_hardlinks.
	if err := os.Link(tr.rootLog, path+".3"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, filepath.Join(tr.logs, "moved")); err != nil { // as nobody could, in its group's directory
		t.Fatal(err)
	}
	asNobody("symlink", tr.secret, path)
	if err := os.WriteFile(ctl+"/go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	waitOutput(t, p)
	tr.untouched(t)
	for _, f := range []string{tr.rootLog, tr.secret} {
		if fi, err := os.Lstat(f); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is now %v (%v)", f, fi, err)
		}
	}
	if names, _ := filepath.Glob(filepath.Dir(tr.secret) + "/*"); len(names) != 1 {
		t.Errorf("root's directory now holds %v", names)
	}
	if names, _ := filepath.Glob(filepath.Dir(tr.rootLog) + "/*"); len(names) != 1 {
		t.Errorf("root's directory now holds %v", names)
	}
	if l.OutputDroppedLines("victim") == 0 {
		t.Error("no line dropped: the output went somewhere past nobody's link")
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is %v (%v), want nobody's link left alone", path, fi, err)
	}
}

// TestOutputRotationAfterCopytruncate checks that a file truncated by
// someone else (logrotate's copytruncate) is not rotated on the size
// respawnd believed it had.
func TestOutputRotationAfterCopytruncate(t *testing.T) {
	verifyNoLeaks(t)
	ctl := t.TempDir()
	path := filepath.Join(t.TempDir(), "app.log")
	l, _ := newTestLauncher(restart.LauncherConfig{})
	// 500 lines of 106 bytes, truncated, then 2000 of some 10: past 64 KiB
	// together, far below it after the truncation.
	p := start(t, l, restart.Command{Name: "ct", Argv: localHelperArgv("flood", ctl, "500", "100", "2000"),
		OutputFile: path, OutputMaxSize: 64 << 10, OutputMaxFiles: 2})
	var burst int64
	for i := range 500 {
		burst += int64(len(fmt.Sprintf("flood %d %s\n", i, strings.Repeat("x", 100))))
	}
	testenv.Eventually(t, "the first burst written", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() == burst
	})
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ctl+"/go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	waitOutput(t, p)
	if _, err := os.Stat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.1 exists (%v): rotated on a size from before the truncation", path, err)
	}
	got := readRotated(t, path, 0, 64<<10)
	if len(got) != 2000 || got[0] != "after 0" || got[1999] != "after 1999" {
		t.Errorf("file holds %d lines after the truncation, want the 2000 written since", len(got))
	}
}
