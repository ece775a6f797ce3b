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
	"time"
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

// ListenSocket creates the control socket at path (its directory is created
// with mode 0755 if missing). A stale socket left by a respawnd that died is
// replaced; a socket some process still listens on is an error.
func ListenSocket(path string, h http.Handler, logger *slog.Logger) (*Socket, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
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
