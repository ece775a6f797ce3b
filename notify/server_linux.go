//go:build linux

package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/epoll"
)

// scmMaxFD is the kernel's SCM_MAX_FD (include/net/scm.h): no datagram
// carries more descriptors, so the control buffer holds them all and every
// one can be closed. Any the buffer could not hold would be closed by the
// kernel itself (scm_detach_fds), never installed.
const scmMaxFD = 253

// recvFlags: never block (the socket is non-blocking too); descriptors
// passed with SCM_RIGHTS are close-on-exec from the moment they are
// installed, so a child started before they are closed cannot inherit
// them; MSG_TRUNC makes recvmsg return a datagram's real length, so that
// an oversized one is seen as such.
const recvFlags = unix.MSG_DONTWAIT | unix.MSG_CMSG_CLOEXEC | unix.MSG_TRUNC

// Kinds of log line spaced by foreignLogEvery, per program.
const (
	logForeign = iota
	logForeignMainPID
	logNoCredentials
	logBadDatagram
	logKinds
)

// Server serves the notify sockets of many programs from one goroutine
// (Run) and one epoll set. Open and the close functions are safe for
// concurrent use, with each other and with Run. Run must be called once;
// when it returns it has closed every socket and the epoll set.
type Server struct {
	cfg     Config
	log     *slog.Logger
	set     *epoll.Set
	running atomic.Bool

	// mu guards the maps and stopped. Lock order: mu, then a socket's mu;
	// Run never takes mu while it holds a socket's.
	mu        sync.Mutex
	stopped   bool
	nextID    uint64
	byID      map[uint64]*socket
	byProgram map[string]*socket

	// The receive buffers, used by Run's goroutine only. msg points into
	// buf and oob through iov; all live as long as the Server, so recvmsg
	// allocates nothing.
	buf []byte
	oob []byte
	iov unix.Iovec
	msg unix.Msghdr
}

// socket is one program's bound socket.
type socket struct {
	id      uint64 // the key in the epoll set, never reused
	program string
	addr    string

	// mu is held by Run while it reads the socket and calls back, so that
	// the descriptor is not closed under it and no callback runs after a
	// close function returns. It guards everything below.
	mu      sync.Mutex
	fd      int    // -1 once closed
	gen     uint64 // counts Opens of the program; a close function holds its own
	member  func(pid int) bool
	deliver func(Message)
	lastLog [logKinds]time.Time
	quiet   [logKinds]int // lines not logged since lastLog
}

// New makes a Server; Run starts it. Sockets may be opened before Run:
// datagrams wait in them until it starts (the kernel queues
// net.unix.max_dgram_qlen of them, then senders wait or get EAGAIN).
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	set, err := epoll.New("notify")
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "notify"), set: set,
		byID: map[uint64]*socket{}, byProgram: map[string]*socket{},
		buf: make([]byte, MaxDatagram),
		oob: make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*scmMaxFD)),
	}
	s.iov.Base = &s.buf[0]
	s.iov.SetLen(len(s.buf))
	s.msg.Iov = &s.iov
	s.msg.SetIovlen(1)
	return s, nil
}

// Open binds program's socket (SOCK_DGRAM, close-on-exec, non-blocking,
// SO_PASSCRED) at Address(Config.Namespace, program) and returns that
// address, the program's NOTIFY_SOCKET value.
//
// member reports whether a sender pid belongs to the program (its main
// process, or a process in its cgroup or tree); it also decides whether
// a MAINPID= is reported. deliver gets each accepted message. Both are
// called on the goroutine of Run and must be quick, must not block, and
// must not call Open or a close function (that would deadlock).
//
// close closes the socket and unbinds its name; once it returns, member
// and deliver are not called again. It may be called more than once.
// Opening a program that is open keeps its socket (and address) and
// replaces member and deliver, and the earlier close function then does
// nothing. Open fails with an error wrapping ErrStopped once Run has
// returned, and with one wrapping unix.EADDRINUSE when another process
// holds the name (another respawnd with the same Namespace).
func (s *Server) Open(program string, member func(pid int) bool, deliver func(Message)) (addr string, close func(), err error) {
	if member == nil || deliver == nil {
		return "", nil, fmt.Errorf("opening notify socket of %q: %w: nil member or deliver function", program, ErrInvalid)
	}
	addr, err = Address(s.cfg.Namespace, program)
	if err != nil {
		return "", nil, fmt.Errorf("opening notify socket of %q: %w", program, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return "", nil, fmt.Errorf("opening notify socket of %q: %w", program, ErrStopped)
	}
	if so := s.byProgram[program]; so != nil {
		so.mu.Lock()
		so.gen++
		gen := so.gen
		so.member, so.deliver = member, deliver
		so.mu.Unlock()
		return so.addr, func() { s.close(so, gen) }, nil
	}
	fd, err := bind(addr)
	if err != nil {
		return "", nil, fmt.Errorf("opening notify socket of %q: %w", program, err)
	}
	s.nextID++
	so := &socket{id: s.nextID, program: program, addr: addr, fd: fd, gen: 1, member: member, deliver: deliver}
	if err := s.set.Add(fd, unix.EPOLLIN, so.id); err != nil {
		_ = unix.Close(fd)
		return "", nil, fmt.Errorf("opening notify socket of %q: adding it to the epoll set: %w", program, err)
	}
	s.byID[so.id], s.byProgram[program] = so, so
	s.log.Debug("notify socket open", "program", program, "address", addr)
	return addr, func() { s.close(so, 1) }, nil
}

// bind makes a datagram socket bound to the abstract name addr.
func bind(addr string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("creating socket: %w", err)
	}
	// Before bind: from the moment the name exists, every datagram sent to
	// it carries the sender's credentials (the kernel attaches them when
	// the receiving socket has SO_PASSCRED, unix_dgram_sendmsg ->
	// maybe_add_creds), whether the sender asked for it or not.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("setting SO_PASSCRED: %w", err)
	}
	// A name starting with '@' is abstract: SockaddrUnix puts a NUL in its
	// place and passes the length without a terminating NUL, as sd_notify
	// clients address it.
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("binding %s: %w", addr, err)
	}
	return fd, nil
}

// close closes so if the Open that returned gen is still its latest.
func (s *Server) close(so *socket, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.fd < 0 || so.gen != gen {
		return
	}
	s.drop(so)
}

// drop forgets so and closes its descriptor; s.mu and so.mu are held.
func (s *Server) drop(so *socket) {
	delete(s.byID, so.id)
	if s.byProgram[so.program] == so {
		delete(s.byProgram, so.program)
	}
	_ = s.set.Del(so.fd)
	_ = unix.Close(so.fd)
	so.fd = -1
	so.member, so.deliver = nil, nil
	s.log.Debug("notify socket closed", "program", so.program, "address", so.addr)
}

// Run serves every open socket from one goroutine until ctx is done, then
// closes them and returns nil. Later calls of Open return ErrStopped.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	defer s.shutdown()
	stop := context.AfterFunc(ctx, func() { _ = s.set.Wake() })
	defer stop()
	// Sockets are level-triggered: one that still holds datagrams after
	// its MaxPerRound is reported again by the next epoll_wait, after the
	// others that were ready (the kernel requeues a level-triggered
	// descriptor at the tail of its ready list). 128 events take a burst
	// of many programs in few calls; more wait for the next call.
	events := make([]unix.EpollEvent, 128)
	err := s.set.Wait(events, s.handle, func() bool { return false })
	if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("serving notify sockets: %w", err)
}

// shutdown closes every socket and the epoll set.
func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, so := range s.byID {
		so.mu.Lock()
		s.drop(so)
		so.mu.Unlock()
	}
	_ = s.set.Close()
}

// handle serves one batch of ready sockets, up to MaxPerRound datagrams
// each.
func (s *Server) handle(ready []unix.EpollEvent) {
	for _, ev := range ready {
		s.mu.Lock()
		so := s.byID[epoll.Key(ev)]
		s.mu.Unlock()
		if so != nil {
			s.serve(so)
		}
	}
}

// serve reads up to MaxPerRound datagrams from so, until it has none.
func (s *Server) serve(so *socket) {
	so.mu.Lock()
	defer so.mu.Unlock()
	for range MaxPerRound {
		if so.fd < 0 {
			return // closed between handle's lookup and the lock
		}
		n, flags, err := s.recv(so.fd)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// Not expected from a unix datagram socket (ENOMEM at worst);
			// the next round tries again.
			s.log.Error("reading notify socket", "program", so.program, "err", err)
			return
		}
		s.accept(so, n, flags)
	}
}

// recv reads one datagram into s.buf and its control data into s.oob. It
// returns the datagram's real length (which may exceed len(s.buf)) and
// the msg_flags.
func (s *Server) recv(fd int) (n, flags int, err error) {
	s.msg.Control = &s.oob[0]
	s.msg.SetControllen(len(s.oob))
	s.msg.Flags = 0
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.msg)), recvFlags)
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(s.msg.Flags), nil
}

// accept judges the datagram just read from so and hands it to deliver or
// Rejected. so.mu is held.
func (s *Server) accept(so *socket, n, flags int) {
	cred, ok := control(s.oob[:s.msg.Controllen])
	switch {
	case !ok:
		s.reject(so, RejectNoCredentials, logNoCredentials, "notify datagram without credentials dropped")
		return
	case !so.member(int(cred.Pid)):
		s.reject(so, RejectForeignSender, logForeign, "notify datagram from a process outside the program dropped",
			"pid", cred.Pid, "uid", cred.Uid)
		return
	case n > len(s.buf) || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		s.reject(so, RejectTruncated, logBadDatagram, "oversized notify datagram dropped",
			"pid", cred.Pid, "bytes", n, "max_bytes", MaxDatagram)
		return
	}
	m, ok := Parse(s.buf[:n])
	if !ok {
		s.reject(so, RejectMalformed, logBadDatagram, "notify datagram that is not text dropped", "pid", cred.Pid)
		return
	}
	m.PID, m.UID = int(cred.Pid), int(cred.Uid)
	if m.MainPID != 0 && !so.member(m.MainPID) {
		s.cfg.Rejected(so.program, RejectForeignMainPID)
		if s.may(so, logForeignMainPID) {
			s.log.Warn("MAINPID naming a process outside the program ignored",
				"program", so.program, "pid", m.PID, "main_pid", m.MainPID)
		}
		m.MainPID = 0
	}
	so.deliver(m)
}

// control closes every descriptor in the control data b and returns the
// credentials, if b holds them with a pid (0 when the sender's pid
// namespace is not visible from ours).
func control(b []byte) (cred unix.Ucred, ok bool) {
	for len(b) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			break // the kernel writes whole messages; cannot happen
		}
		b = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		switch h.Type {
		case unix.SCM_RIGHTS:
			for ; len(data) >= 4; data = data[4:] {
				_ = unix.Close(int(int32(binary.NativeEndian.Uint32(data))))
			}
		case unix.SCM_CREDENTIALS:
			if len(data) >= unix.SizeofUcred {
				cred = unix.Ucred{
					Pid: int32(binary.NativeEndian.Uint32(data[0:])),
					Uid: binary.NativeEndian.Uint32(data[4:]),
					Gid: binary.NativeEndian.Uint32(data[8:]),
				}
				ok = cred.Pid > 0
			}
		}
	}
	return cred, ok
}

// reject reports a dropped datagram and logs it, at most once per
// foreignLogEvery for each program and kind. so.mu is held.
func (s *Server) reject(so *socket, why string, kind int, msg string, args ...any) {
	if s.may(so, kind) {
		args = append(args, "program", so.program, "reason", why)
		if q := so.quiet[kind]; q > 0 {
			args = append(args, "not_logged", q)
		}
		so.quiet[kind] = 0
		s.log.Warn(msg, args...)
	}
	s.cfg.Rejected(so.program, why)
}

// may says whether a line of kind may be logged for so now, and counts it
// as not logged if not. so.mu is held.
func (s *Server) may(so *socket, kind int) bool {
	now := s.cfg.Now()
	if last := so.lastLog[kind]; !last.IsZero() && now.Sub(last) < foreignLogEvery {
		so.quiet[kind]++
		return false
	}
	so.lastLog[kind] = now
	return true
}
