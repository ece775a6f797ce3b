package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/internal/securefs"
)

// SocketName is the control socket's file name in the state directory.
const SocketName = "respawnd.sock"

// SocketPath is the control socket's path in stateDir.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

type peerKey struct{}

// Socket is the control socket: the API over HTTP on a unix socket of mode
// 0600 that also refuses, by its SO_PEERCRED credentials, every peer whose
// uid is neither 0 nor respawnd's own.
type Socket struct {
	path string
	ln   net.Listener
	srv  *http.Server
	log  *slog.Logger
}

// ListenSocket creates the control socket at path. Its directory must exist
// (the daemon opens its state directory with watch.OpenStateDir first) and
// be respawnd's alone: owned by the effective uid and not writable by its
// group or others, reached through directories that only root or the
// effective uid can change (internal/securefs rules); otherwise
// ListenSocket refuses. A stale socket left by a respawnd that died is
// replaced; a socket some process still listens on is an error.
func ListenSocket(path string, h http.Handler, logger *slog.Logger) (*Socket, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Once the directory and its parents are checked, nobody but root and
	// respawnd can change what the paths below name.
	if err := checkSocketDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// Bound under a temporary name, restricted, then renamed into place, so
	// the socket is never reachable at path with a wider mode.
	tmp := path + "." + strconv.Itoa(os.Getpid()) + ".tmp"
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("creating control socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("restricting control socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("creating control socket %s: %w", path, err)
	}
	s := &Socket{path: path, ln: ln, log: logger}
	s.srv = &http.Server{
		Handler:           requirePrivilegedPeer(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uid, err := peerUID(c)
			if err != nil {
				logger.Warn("reading control socket peer credentials", "err", err)
				uid = -1
			}
			return context.WithValue(ctx, peerKey{}, uid)
		},
	}
	return s, nil
}

// checkSocketDir refuses a directory for the control socket that is not
// respawnd's alone.
func checkSocketDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	euid := os.Geteuid()
	trusted := []int{0}
	if euid != 0 {
		trusted = append(trusted, euid)
	}
	d, err := securefs.OpenDir(abs, securefs.Policy{Trusted: trusted})
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", abs, err)
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", abs, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return fmt.Errorf("control socket directory %s: %w", abs, errUnsupported)
	case int(st.Uid) != euid:
		return fmt.Errorf("control socket directory %s is owned by uid %d, not by respawnd's uid %d", abs, st.Uid, euid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("control socket directory %s is writable by its group or others (mode %04o)", abs, fi.Mode().Perm())
	}
	return nil
}

// removeStale removes a socket at path that no process listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("control socket %s: another respawnd is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale control socket %s: %w", path, err)
	}
	return nil
}

// Path is the socket's path.
func (s *Socket) Path() string { return s.path }

// Run serves until ctx is done, then stops (ending open event streams),
// removes the socket and returns nil.
func (s *Socket) Run(ctx context.Context) error {
	// Requests, event streams included, end with ctx.
	s.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.srv.Shutdown(sctx)
		cancel()
		<-errc
	case err = <-errc:
	}
	_ = os.Remove(s.path)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serving control socket %s: %w", s.path, err)
	}
	return nil
}

// requirePrivilegedPeer refuses every request whose peer is not root or
// respawnd's own user.
func requirePrivilegedPeer(h http.Handler) http.Handler {
	self := os.Geteuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, _ := r.Context().Value(peerKey{}).(int)
		if uid != 0 && uid != self {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = fmt.Fprintf(w, "{\"error\":\"control socket: uid %d is not allowed (root only)\"}\n", uid)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// peerUID reads the uid of the process at the other end of a unix socket
// connection.
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, fmt.Errorf("peer credentials: %T is not a unix connection", c)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	uid := -1
	var credErr error
	if err := rc.Control(func(fd uintptr) { uid, credErr = peerUIDOf(int(fd)) }); err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return -1, fmt.Errorf("peer credentials: %w", credErr)
	}
	return uid, nil
}

// Close closes the listener and removes the socket without serving; it is
// for a daemon that fails to start after the socket was created. Do not
// call it after Run.
func (s *Socket) Close() error {
	err := s.ln.Close()
	_ = os.Remove(s.path)
	return err
}
