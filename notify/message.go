package notify

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of what a program may send.
const (
	// MaxDatagram is the largest datagram accepted, in bytes: systemd's
	// NOTIFY_BUFFER_MAX (PIPE_BUF). A longer one is dropped as
	// RejectTruncated.
	MaxDatagram = 4096
	// MaxStatus bounds Message.Status in bytes; a longer STATUS= is cut at
	// a character boundary.
	MaxStatus = 256
	// maxPID is the kernel's PID_MAX_LIMIT (4M, include/linux/threads.h):
	// no pid is larger on any configuration.
	maxPID = 4 << 20
	// maxErrno is the largest errno value, as systemd's ERRNO_MAX.
	maxErrno = 4095
)

// The reasons passed to Config.Rejected, exactly as they appear in the
// reason label of respawnd_notify_rejected_total.
const (
	// RejectForeignSender: the credentials name a process that the
	// program's member function does not claim.
	RejectForeignSender = "foreign_sender"
	// RejectNoCredentials: the datagram carried no SCM_CREDENTIALS, or
	// their pid was 0 (a sender whose pid namespace is not visible to
	// respawnd's). With SO_PASSCRED on the receiving socket the kernel
	// attaches credentials to every datagram sent to it, so from user space
	// only the second case can be produced.
	RejectNoCredentials = "no_credentials"
	// RejectMalformed: the datagram is empty, holds a NUL byte or is not
	// valid UTF-8.
	RejectMalformed = "malformed"
	// RejectTruncated: the datagram was longer than MaxDatagram, or its
	// control data did not fit respawnd's buffer (MSG_TRUNC, MSG_CTRUNC).
	RejectTruncated = "truncated"
	// RejectForeignMainPID: a MAINPID= named a process that the program's
	// member function does not claim. Only that field is dropped; the rest
	// of the datagram is delivered.
	RejectForeignMainPID = "foreign_mainpid"
)

// Message is one accepted datagram: what a program said, and who sent it.
// Fields the datagram did not set are zero.
type Message struct {
	// PID and UID are the sender's, from SCM_CREDENTIALS, as seen in
	// respawnd's pid and user namespaces.
	PID int
	UID int
	// Ready is READY=1: start-up, or a reload, is complete.
	Ready bool
	// Reloading is RELOADING=1: the program is reloading its configuration.
	Reloading bool
	// Stopping is STOPPING=1: the program is shutting down.
	Stopping bool
	// Status is STATUS=, at most MaxStatus bytes, every character that is
	// not printable replaced by '?'; "" if absent, and HasStatus says
	// whether it was present (an empty STATUS= clears the status).
	Status    string
	HasStatus bool
	// MainPID is MAINPID=: the program's main process is now this one. It
	// is 0 when absent, when it is not a positive pid, and (set by the
	// Server) when member does not claim that pid.
	MainPID int
	// Watchdog is WATCHDOG=1, a keep-alive ping.
	Watchdog bool
	// WatchdogTrigger is WATCHDOG=trigger: the program asks to be treated
	// as if its watchdog had expired.
	WatchdogTrigger bool
	// WatchdogUsec is WATCHDOG_USEC=, the program setting its own watchdog
	// period in microseconds; 0 if absent or not a positive number.
	WatchdogUsec uint64
	// ExtendTimeout is EXTEND_TIMEOUT_USEC=: the program asks for this much
	// more time, counted from now, for the start, reload or stop in
	// progress; 0 if absent or not a positive number.
	ExtendTimeout time.Duration
	// Errno is ERRNO=, the program's failure as an errno value (0 to 4095);
	// HasErrno says whether one was given.
	Errno    int
	HasErrno bool
}

// Parse reads the text of one datagram: assignments KEY=VALUE, one per
// line (newline-separated, as sd_notify(3) writes them). It returns false
// only for a datagram that is not text: empty, holding a NUL byte, or not
// valid UTF-8. Anything else is accepted: lines with unknown keys, and
// lines without '=', are ignored, as systemd ignores them (sd_notify keeps
// adding keys, and a program may send some for other managers); so is a
// known key with a value that does not parse. When a key appears more than
// once, its first line counts, as in systemd. PID and UID are left 0.
func Parse(b []byte) (Message, bool) {
	var m Message
	if len(b) == 0 || bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b) {
		return m, false
	}
	var seenMainPID, seenWatchdogUsec, seenExtend bool
	for rest := b; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		key, value, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			continue
		}
		switch string(key) {
		case "READY":
			m.Ready = m.Ready || string(value) == "1"
		case "RELOADING":
			m.Reloading = m.Reloading || string(value) == "1"
		case "STOPPING":
			m.Stopping = m.Stopping || string(value) == "1"
		case "WATCHDOG":
			switch string(value) {
			case "1":
				m.Watchdog = true
			case "trigger":
				m.WatchdogTrigger = true
			}
		case "STATUS":
			if !m.HasStatus {
				m.Status, m.HasStatus = cleanStatus(value), true
			}
		case "MAINPID":
			if !seenMainPID {
				seenMainPID = true
				if pid, err := strconv.Atoi(string(value)); err == nil && pid > 0 && pid <= maxPID {
					m.MainPID = pid
				}
			}
		case "WATCHDOG_USEC":
			if !seenWatchdogUsec {
				seenWatchdogUsec = true
				m.WatchdogUsec, _ = strconv.ParseUint(string(value), 10, 64)
			}
		case "EXTEND_TIMEOUT_USEC":
			if !seenExtend {
				seenExtend = true
				if us, err := strconv.ParseUint(string(value), 10, 64); err == nil {
					m.ExtendTimeout = usec(us)
				}
			}
		case "ERRNO":
			if !m.HasErrno {
				if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 && n <= maxErrno {
					m.Errno, m.HasErrno = n, true
				}
			}
		}
	}
	return m, true
}

// usec converts microseconds to a Duration, saturating where it would
// overflow (about 292 years).
func usec(us uint64) time.Duration {
	if us > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(us) * time.Microsecond
}

// cleanStatus makes a STATUS= value safe to log and show: every
// non-printable character (controls, including tabs and escapes; format
// characters) becomes '?', and the result is cut to MaxStatus bytes at a
// character boundary. v is valid UTF-8.
func cleanStatus(v []byte) string {
	var sb strings.Builder
	sb.Grow(min(len(v), MaxStatus))
	for _, r := range string(v) {
		if !unicode.IsPrint(r) {
			r = '?'
		}
		if sb.Len()+utf8.RuneLen(r) > MaxStatus {
			break
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
