// Package notify is the receiving side of systemd's sd_notify protocol
// (sd_notify(3)) for respawnd's programs: each program gets a datagram
// socket in the abstract namespace, named in its NOTIFY_SOCKET, and the
// messages it sends there (READY=1, STATUS=, WATCHDOG=1, MAINPID= and the
// rest) come back to the supervisor as Messages.
//
// # One goroutine
//
// A Server serves every program's socket from one goroutine (Run) and one
// epoll set. Each round reads at most MaxPerRound datagrams from each ready
// socket, so a program that floods its socket delays nobody else's
// messages by more than a round.
//
// # What is accepted
//
// A datagram is accepted when the kernel's credentials (SCM_CREDENTIALS)
// name a process that the program's member function claims, it fits in
// MaxDatagram bytes, and it is UTF-8 text without NUL bytes. Every other
// datagram is dropped and reported through Config.Rejected with one of the
// Reject reasons. File descriptors passed with SCM_RIGHTS (sd_notify's
// FDSTORE=1, or systemd-notify's barrier) are closed as soon as they
// arrive: respawnd keeps no descriptor store. See Parse for how the text
// is read.
//
// An abstract socket has no file permissions: any process in respawnd's
// network namespace can send to it. That is why every datagram is judged
// by its sender's pid, never by where it arrived.
//
// The credentials are the kernel's: an unprivileged sender cannot claim
// another pid or uid, but a sender with CAP_SYS_ADMIN (or CAP_SETUID for
// the uid) can. A program that runs as root is trusted to that extent, as
// it is by systemd.
//
// # What it does not do
//
// The package knows nothing of states, timeouts or watchdogs: it reports
// what a program said, and the supervisor decides what follows. It never
// signals a process. MAINPID= is reported only when member claims the
// named process, but the supervisor still owns the decision to adopt it.
//
// The Server needs Linux (New returns ErrUnsupported elsewhere); Parse and
// Address work everywhere.
package notify
