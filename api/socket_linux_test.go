package api_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/internal/testenv"
)

// serveSocket serves the fake daemon with control enabled on a socket in
// a directory everyone may enter, and stops it in t.Cleanup.
func serveSocket(t *testing.T) (*api.Socket, *fakeDaemon) {
	t.Helper()
	dir, err := os.MkdirTemp("", "respawnd-api-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The daemon creates its state directory (watch.OpenStateDir) before
	// the socket; 0755 so that another user can reach the socket.
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFake()
	s, err := api.ListenSocket(api.SocketPath(state), api.NewHandler(api.Config{Source: f, Controller: f}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, f
}

// asNobody runs the test binary as uid/gid 65534, as a client of path.
func asNobody(t *testing.T, path string) string {
	t.Helper()
	// The test binary may sit in a directory only root can enter: run a
	// copy from a directory everyone can.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "respawnd-api-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "api.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), clientEnv+"="+path)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid 65534: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestSocketMode(t *testing.T) {
	testenv.RequireRoot(t, "a control socket owned by root")
	s, _ := serveSocket(t)
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
		t.Errorf("socket owned by uid %d, want 0", st.Uid)
	}
	// Root gets through and may control programs.
	c := api.NewClient(s.Path())
	ps, err := c.Programs(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("programs as root: %v %v", ps, err)
	}
	if err := c.Control(context.Background(), "api", "restart"); err != nil {
		t.Errorf("restart as root: %v", err)
	}
	if err := c.Control(context.Background(), "nope", "restart"); !errors.Is(err, api.ErrUnknownProgram) {
		t.Errorf("restart of an unknown program: %v, want ErrUnknownProgram", err)
	}
	// The mode alone keeps others out.
	if got := asNobody(t, s.Path()); !strings.HasPrefix(got, "permission:") {
		t.Errorf("uid 65534 through a 0600 socket: %q, want a permission error", got)
	}
}

func TestSocketRefusesNonRootPeer(t *testing.T) {
	testenv.RequireRoot(t, "connecting to the control socket as another user")
	s, _ := serveSocket(t)
	// Open the mode up so that only the peer-credential check stands.
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	got := asNobody(t, s.Path())
	if !strings.HasPrefix(got, "permission:") || !strings.Contains(got, "uid 65534") {
		t.Errorf("uid 65534 through an open socket: %q, want refusal by peer credentials", got)
	}
}

func TestSocketNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "respawnd.sock")
	_, err := api.NewClient(path).Programs(context.Background())
	if !errors.Is(err, api.ErrNotRunning) {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}
}

func TestSocketStaleAndBusy(t *testing.T) {
	testenv.RequireRoot(t, "a control socket owned by root")
	s, _ := serveSocket(t)
	// A second daemon on the same socket is refused.
	if _, err := api.ListenSocket(s.Path(), api.NewHandler(api.Config{Source: newFake()}), nil); err == nil || !strings.Contains(err.Error(), "another respawnd") {
		t.Errorf("second listener: %v, want another respawnd is listening", err)
	}
}

func TestSocketRefusesDirectory(t *testing.T) {
	testenv.RequireRoot(t, "directories owned by other users")
	h := api.NewHandler(api.Config{Source: newFake()})
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"missing", func(t *testing.T, dir string) {}, "no such file or directory"},
		{"owned by nobody", func(t *testing.T, dir string) {
			mkdirMode(t, dir, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
		{"writable by others", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o777) }, "writable by others"},
		{"writable by the group", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o770) }, "writable by its group or others (mode 0770)"},
		{"sticky and writable by others", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o1777) }, "writable by its group or others"},
		{"link of nobody", func(t *testing.T, dir string) {
			mkdirMode(t, dir+".real", 0o700)
			if err := os.Symlink(dir+".real", dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link owned by uid 65534"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			tt.setup(t, dir)
			s, err := api.ListenSocket(api.SocketPath(dir), h, nil)
			if err == nil {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_ = s.Run(ctx) // removes the socket
				t.Fatalf("ListenSocket in %s succeeded", dir)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if _, err := os.Lstat(api.SocketPath(dir)); err == nil {
				t.Error("a socket was created")
			}
		})
	}
	// respawnd's own directory, 0700, is accepted.
	dir := filepath.Join(t.TempDir(), "state")
	mkdirMode(t, dir, 0o700)
	s, err := api.ListenSocket(api.SocketPath(dir), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Error(err)
	}
}

// mkdirMode creates a directory with exactly mode, sticky bit included.
func mkdirMode(t *testing.T, path string, mode uint32) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
