package restart_test

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// outputTree is a directory tree for the attacks of a program's user on
// the program's output file. Everything in it is reachable by every user
// unless said otherwise.
type outputTree struct {
	dir       string
	exe       string // the test binary, runnable by nobody
	nobody    int    // uid of nobody
	nobodyGID int
	// logs is nobody's own directory (0755), where a program running as
	// nobody may write its output.
	logs string
	// shared is a sticky directory every user may write, like /tmp.
	shared string
	// secret is root's file in root's directory of mode 0700.
	secret string
	// rootLog is root's file (0644) in root's directory (0755): nobody may
	// read it but not write it.
	rootLog string
	// protected maps files the attacks aim at to their content, which
	// must never change.
	protected map[string]string
}

func newOutputTree(t *testing.T) *outputTree {
	t.Helper()
	testenv.RequireRoot(t, "attacks of a less-privileged user on a program's output file")
	verifyNoLeaks(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		testenv.Skip(t, "no user nobody: %v", err)
	}
	exe, dir := testenv.ExeForOthers(t, "prog")
	tr := &outputTree{dir: dir, exe: exe, logs: dir + "/logs", shared: dir + "/shared", protected: map[string]string{}}
	tr.nobody, _ = strconv.Atoi(u.Uid)
	tr.nobodyGID, _ = strconv.Atoi(u.Gid)
	mkdirMode(t, tr.logs, 0o755, tr.nobody)
	mkdirMode(t, tr.shared, 0o1777, 0)
	mkdirMode(t, dir+"/protected", 0o700, 0)
	mkdirMode(t, dir+"/rootdir", 0o755, 0)
	tr.secret = dir + "/protected/secret"
	tr.rootLog = dir + "/rootdir/app.log"
	tr.protect(t, tr.secret, "root's secret\n", 0o600, 0)
	tr.protect(t, tr.rootLog, "root's log\n", 0o644, 0)
	return tr
}

// mkdirMode creates a directory with exactly mode, owned by uid.
func mkdirMode(t *testing.T, path string, mode uint32, uid int) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// protect creates a file an attack aims at and records its content.
func (tr *outputTree) protect(t *testing.T, path, content string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	tr.protected[path] = content
}

// untouched fails the test if any protected file changed.
func (tr *outputTree) untouched(t *testing.T) {
	t.Helper()
	for path, want := range tr.protected {
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Errorf("protected file %s now holds %q (%v), want %q", path, b, err, want)
		}
	}
}

// argv runs a local helper mode from the copy of the test binary nobody
// may execute.
func (tr *outputTree) argv(mode string, args ...string) []string {
	argv := localHelperArgv(mode, args...)
	argv[0] = tr.exe
	return argv
}

// plant creates a symbolic link owned by uid, as that user would.
func plant(t *testing.T, target, path string, uid int) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// startWithin starts cmd, failing the test if Start does not return within
// a few seconds; unblock is then called to let the blocked Start return.
func startWithin(t *testing.T, l *restart.Launcher, cmd restart.Command, unblock func()) (*restart.Process, error) {
	t.Helper()
	type result struct {
		p   *restart.Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := l.Start(cmd)
		done <- result{p, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("Start of %s hung", cmd.Name)
		if unblock != nil {
			unblock()
		}
		r = <-done
	}
	if r.p != nil {
		p := r.p
		t.Cleanup(func() {
			_ = p.Kill()
			<-p.Done()
		})
	}
	return r.p, r.err
}

// wantOpenOutputError checks that err is the launcher's refusal to open
// the output file, wrapping want and naming comp.
func wantOpenOutputError(t *testing.T, err, want error, comp string) {
	t.Helper()
	var se *restart.StartError
	if !errors.As(err, &se) || se.Op != restart.OpOpenOutput {
		t.Fatalf("error %v, want a StartError of %q", err, restart.OpOpenOutput)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v does not wrap %v", err, want)
	}
	if !strings.Contains(err.Error(), comp+": ") {
		t.Errorf("error %q does not name %s", err, comp)
	}
}

// TestOutputFileSymlinkAttack is the attack the security review
// reproduced: a program running as nobody, whose log directory is
// nobody's, replaces its log by a link to root's file and exits; the
// restart must not append its output to root's file.
func TestOutputFileSymlinkAttack(t *testing.T) {
	tr := newOutputTree(t)
	l, out := newTestLauncher(restart.LauncherConfig{})
	log := tr.logs + "/app.log"
	cmd := restart.Command{Name: "victim", Argv: tr.argv("symlink", tr.secret, log), User: "nobody", OutputFile: log}
	p := start(t, l, cmd)
	if st := waitDone(t, p); st.Code != 1 {
		t.Fatalf("first run: exit status %+v, want 1\n%s", st, out)
	}
	if fi, err := os.Lstat(log); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the program did not plant its link: %v, %v", fi, err)
	}
	p, err := startWithin(t, l, cmd, nil)
	if err == nil {
		waitDone(t, p)
		t.Errorf("the restart opened the output through the program user's link to %s", tr.secret)
	} else {
		// The link is nobody's and so followed, but nobody may not enter
		// root's directory.
		wantOpenOutputError(t, err, fs.ErrPermission, tr.secret)
	}
	tr.untouched(t)
}

// TestOutputFileAttacks plants what a less-privileged user can plant on
// the way to a program's output file, for programs running as that user
// and as respawnd's own user.
func TestOutputFileAttacks(t *testing.T) {
	tests := []struct {
		name string
		user string
		// setup plants the attack and returns the output file of the
		// program.
		setup func(t *testing.T, tr *outputTree) string
		want  error
		comp  func(tr *outputTree) string
	}{
		{
			name: "link in the middle to root's directory",
			user: "nobody",
			setup: func(t *testing.T, tr *outputTree) string {
				plant(t, tr.dir+"/rootdir", tr.logs+"/sub", tr.nobody)
				return tr.logs + "/sub/app.log"
			},
			want: fs.ErrPermission,
			comp: func(tr *outputTree) string { return tr.rootLog },
		},
		{
			name: "link of another user in the middle, respawnd's user",
			setup: func(t *testing.T, tr *outputTree) string {
				plant(t, tr.dir+"/rootdir", tr.shared+"/sub", tr.nobody)
				return tr.shared + "/sub/app.log"
			},
			want: securefs.ErrUntrustedOwner,
			comp: func(tr *outputTree) string { return tr.shared + "/sub" },
		},
		{
			name: "link of another user last, respawnd's user",
			setup: func(t *testing.T, tr *outputTree) string {
				plant(t, tr.rootLog, tr.shared+"/app.log", tr.nobody)
				return tr.shared + "/app.log"
			},
			want: securefs.ErrUntrustedOwner,
			comp: func(tr *outputTree) string { return tr.shared + "/app.log" },
		},
		{
			// Planted by root here: fs.protected_hardlinks=1 stops nobody,
			// but hosts without it let anyone link another's file.
			name: "hard link to root's file",
			user: "nobody",
			setup: func(t *testing.T, tr *outputTree) string {
				if err := os.Link(tr.rootLog, tr.logs+"/app.log"); err != nil {
					t.Fatal(err)
				}
				return tr.logs + "/app.log"
			},
			want: fs.ErrPermission,
			comp: func(tr *outputTree) string { return tr.logs + "/app.log" },
		},
		{
			name: "hard link to root's file, respawnd's user",
			setup: func(t *testing.T, tr *outputTree) string {
				if err := os.Link(tr.rootLog, tr.shared+"/app.log"); err != nil {
					t.Fatal(err)
				}
				return tr.shared + "/app.log"
			},
			want: securefs.ErrHardLink,
			comp: func(tr *outputTree) string { return tr.shared + "/app.log" },
		},
		{
			name: "file of another user",
			user: "nobody",
			setup: func(t *testing.T, tr *outputTree) string {
				tr.protect(t, tr.shared+"/app.log", "uid 4242's log\n", 0o666, 4242)
				return tr.shared + "/app.log"
			},
			want: securefs.ErrUntrustedOwner,
			comp: func(tr *outputTree) string { return tr.shared + "/app.log" },
		},
		{
			name: "directory of another user",
			setup: func(t *testing.T, tr *outputTree) string {
				return tr.logs + "/app.log"
			},
			want: securefs.ErrUntrustedOwner,
			comp: func(tr *outputTree) string { return tr.logs },
		},
		{
			// Not an attack, least privilege: root's directory is not the
			// program user's to write in.
			name: "directory the user may not write",
			user: "nobody",
			setup: func(t *testing.T, tr *outputTree) string {
				t.Cleanup(func() {
					if _, err := os.Lstat(tr.dir + "/rootdir/new.log"); err == nil {
						t.Error("a file was created in root's directory")
					}
				})
				return tr.dir + "/rootdir/new.log"
			},
			want: fs.ErrPermission,
			comp: func(tr *outputTree) string { return tr.dir + "/rootdir/new.log" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newOutputTree(t)
			l, _ := newTestLauncher(restart.LauncherConfig{})
			log := tt.setup(t, tr)
			cmd := restart.Command{Name: "victim", Argv: tr.argv("args", "written by the program"), User: tt.user, OutputFile: log}
			p, err := startWithin(t, l, cmd, nil)
			if err == nil {
				waitDone(t, p)
				t.Errorf("Start succeeded, want a refusal wrapping %v", tt.want)
			} else {
				wantOpenOutputError(t, err, tt.want, tt.comp(tr))
			}
			tr.untouched(t)
		})
	}
}

// TestOutputFileFIFO checks that a FIFO planted as the output file can
// neither hang the start nor receive the output.
func TestOutputFileFIFO(t *testing.T) {
	for _, reader := range []bool{false, true} {
		name := "no reader"
		if reader {
			name = "with a reader"
		}
		t.Run(name, func(t *testing.T) {
			tr := newOutputTree(t)
			l, _ := newTestLauncher(restart.LauncherConfig{})
			fifo := tr.logs + "/app.log"
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(fifo, tr.nobody, tr.nobody); err != nil {
				t.Fatal(err)
			}
			if reader {
				r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
			}
			unblock := func() {
				if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					t.Cleanup(func() { r.Close() })
				}
			}
			cmd := restart.Command{Name: "victim", Argv: tr.argv("args", "x"), User: "nobody", OutputFile: fifo}
			p, err := startWithin(t, l, cmd, unblock)
			if err == nil {
				waitDone(t, p)
				t.Fatal("Start succeeded with a FIFO as output file")
			}
			want := error(syscall.ENXIO)
			if reader {
				want = securefs.ErrNotRegular
			}
			wantOpenOutputError(t, err, want, fifo)
		})
	}
}

// TestOutputFileRace has nobody swap, as fast as it can, its own log
// directory with its own link to root's directory while the program is
// started over and over: each start writes to nobody's file or fails,
// root's file never changes.
func TestOutputFileRace(t *testing.T) {
	tr := newOutputTree(t)
	l, _ := newTestLauncher(restart.LauncherConfig{})
	mkdirMode(t, tr.logs+"/sub", 0o755, tr.nobody)
	plant(t, tr.dir+"/rootdir", tr.logs+"/sub.alt", tr.nobody)
	start(t, l, restart.Command{Name: "attacker", Argv: tr.argv("exchange", tr.logs+"/sub", tr.logs+"/sub.alt"), User: "nobody"})

	cmd := restart.Command{Name: "victim", Argv: tr.argv("args", "written by the program"), User: "nobody", OutputFile: tr.logs + "/sub/app.log"}
	var started, refused int
	for range 100 {
		p, err := startWithin(t, l, cmd, nil)
		if err != nil {
			var se *restart.StartError
			if !errors.As(err, &se) || se.Op != restart.OpOpenOutput {
				t.Fatalf("unexpected error: %v", err)
			}
			refused++
			continue
		}
		started++
		waitDone(t, p)
	}
	t.Logf("%d starts, %d refusals", started, refused)
	tr.untouched(t)
	if refused == 0 {
		t.Error("no start met the link: the race was not run")
	}
}

// TestOutputFileOfUser checks the legitimate case: a path through root's
// link into nobody's directory works, and the file created belongs to
// nobody.
func TestOutputFileOfUser(t *testing.T) {
	tr := newOutputTree(t)
	l, out := newTestLauncher(restart.LauncherConfig{})
	if err := os.Symlink(tr.logs, tr.dir+"/link"); err != nil {
		t.Fatal(err)
	}
	cmd := restart.Command{Name: "app", Argv: tr.argv("args", "hello"), User: "nobody", OutputFile: tr.dir + "/link/app.log"}
	for range 2 {
		p := start(t, l, cmd)
		if st := waitDone(t, p); st.Code != 0 {
			t.Fatalf("exit status %+v\n%s", st, out)
		}
	}
	b, err := os.ReadFile(tr.logs + "/app.log")
	if err != nil || string(b) != "hello\nhello\n" {
		t.Errorf("output %q, %v; want two lines hello", b, err)
	}
	fi, err := os.Stat(tr.logs + "/app.log")
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != tr.nobody || int(st.Gid) != tr.nobodyGID || fi.Mode().Perm() != 0o640 {
		t.Errorf("output file owned by %d:%d, mode %v; want %d:%d, 0640", st.Uid, st.Gid, fi.Mode(), tr.nobody, tr.nobodyGID)
	}
	// /dev/null is root's and a character device: accepted.
	cmd.OutputFile = os.DevNull
	if st := waitDone(t, start(t, l, cmd)); st.Code != 0 {
		t.Errorf("output to /dev/null: exit status %+v", st)
	}
	// respawnd's thread credentials are its own again: root may still
	// create files in root's directory.
	f, err := os.OpenFile(tr.dir+"/rootdir/after", os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// passwdField returns field i of name's entry in /etc/passwd.
func passwdField(t *testing.T, name string, i int) string {
	t.Helper()
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Split(sc.Text(), ":"); len(fs) == 7 && fs[0] == name {
			return fs[i]
		}
	}
	t.Fatalf("no %s in /etc/passwd", name)
	return ""
}

func TestLoginEnv(t *testing.T) {
	testenv.RequireRoot(t, "starting programs as another user")
	verifyNoLeaks(t)
	if _, err := user.Lookup("nobody"); err != nil {
		testenv.Skip(t, "no user nobody: %v", err)
	}
	exe, _ := testenv.ExeForOthers(t, "prog")
	argv := localHelperArgv("env")
	argv[0] = exe
	tests := []struct {
		name, user string
		env        []string
		want       []string
	}{
		{"user", "nobody", []string{"PATH=/usr/bin"}, []string{"PATH=/usr/bin", "HOME=" + passwdField(t, "nobody", 5), "USER=nobody", "LOGNAME=nobody", "SHELL=" + passwdField(t, "nobody", 6)}},
		{"config wins", "nobody", []string{"HOME=/srv/app", "SHELL=/bin/false"}, []string{"HOME=/srv/app", "SHELL=/bin/false", "USER=nobody", "LOGNAME=nobody"}},
		{"numeric uid without entry", "4242", nil, []string{"HOME=/", "USER=4242", "LOGNAME=4242"}},
		{"respawnd's user", "", []string{"A=b"}, []string{"A=b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, out := newTestLauncher(restart.LauncherConfig{})
			p := start(t, l, restart.Command{Name: "env", Argv: argv, Env: tt.env, User: tt.user})
			if st := waitDone(t, p); st.Code != 0 {
				t.Fatalf("exit status %+v\n%s", st, out)
			}
			waitOutput(t, p)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				got = append(got, strings.TrimPrefix(line, "env | "))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("environment\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
