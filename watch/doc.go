// Package watch owns respawnd's view of processes in /proc: matching
// programs by comm, executable, command line, pidfile and user; process
// identity (pid plus start time, so that a reused pid is never mistaken for
// the process it replaced); death detection for processes respawnd did not
// start and so cannot wait for; per-process stats (the RSS of a process
// tree); and the small state file that lets a restarted respawnd adopt the
// programs it supervised before.
//
// It deliberately makes no restart decisions and knows nothing of the
// configuration, the supervisor or OOM evidence. It imports no other
// package of respawnd.
//
// # Reading /proc
//
// A Scanner reads a procfs mounted at Config.ProcRoot through
// github.com/prometheus/procfs, so tests point it at fixtures. Processes
// come and go while a scan runs: a pid that vanishes between listing /proc
// and reading its files (fs.ErrNotExist, ESRCH) is skipped, never reported
// as an error. Kernel threads and zombies never match.
//
// # Identity
//
// An Identity is a pid together with the process's start time (field 22 of
// /proc/PID/stat, in clock ticks since boot). The kernel reuses pids; it
// cannot give two processes the same pid and the same start time, as a pid
// is only reused after its previous owner has been reaped. Every API that
// acts on a process respawnd did not start takes an Identity, never a bare
// pid.
//
// # Death of a non-child
//
// A Watcher reports the death of processes that are not respawnd's
// children. The preferred mechanism is a pidfd (pidfd_open, Linux 5.3) per
// process, all of them in one epoll set that a single goroutine waits on
// through the Go runtime's network poller, so that watching a thousand idle
// processes costs no CPU and no thread. The exit status of a non-child comes
// from ioctl(PIDFD_GET_INFO) with PIDFD_INFO_EXIT (Linux 6.15) or, while the
// dead process is still an unreaped zombie, from field 52 of its
// /proc/PID/stat; when neither can tell, ExitInfo.Known is false. Where
// pidfd_open is missing the Watcher falls back to rescanning /proc at a
// short interval. The mechanism in use is reported by Watcher.Mechanism.
//
// The pidfd mechanism needs Config.ProcRoot to show respawnd's own pid
// namespace, since pidfd_open takes a pid of the caller's namespace.
//
// # State directory
//
// A StateDir (OpenStateDir) is respawnd's own directory, checked to be
// respawnd's alone (owned by its effective uid, writable by nobody else,
// reached through directories only root or respawnd can change; see
// internal/securefs) and held open: every file in it is opened, created,
// renamed and removed relative to the directory's descriptor. It keeps a
// versioned JSON file of the programs' identities (pid, start time, boot
// id, executable, uid), written atomically, so that a restarted respawnd
// can re-adopt running programs (StateDir.Load, then Scanner.Alive on each
// entry's Identity), and the per-daemon secret (StateDir.Secret). A file
// there that respawnd did not write (a link, another owner, a mode that
// lets others write) is refused, never read.
//
// # Pidfiles
//
// A pidfile (Matcher.Pidfile) is opened by the same rules, trusting root,
// respawnd's effective uid and the uid of Matcher.User. Its content is
// still only a hint: the daemon that writes it may write any pid, so a
// process found through a pidfile must be proved to be the program (its
// executable, user, tag) before it is adopted or signalled.
package watch
