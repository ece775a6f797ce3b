package notify

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Message
		bad  bool
	}{
		{name: "ready", in: "READY=1", want: Message{Ready: true}},
		{name: "ready with newline", in: "READY=1\n", want: Message{Ready: true}},
		{name: "ready status", in: "READY=1\nSTATUS=serving 3 clients", want: Message{Ready: true, Status: "serving 3 clients", HasStatus: true}},
		{name: "empty status clears", in: "STATUS=", want: Message{HasStatus: true}},
		{name: "status keeps equals", in: "STATUS=a=b", want: Message{Status: "a=b", HasStatus: true}},
		{name: "first status wins", in: "STATUS=one\nSTATUS=two", want: Message{Status: "one", HasStatus: true}},
		{name: "status controls", in: "STATUS=a\tb\x1b[31mc\u200bd\r", want: Message{Status: "a?b?[31mc?d?", HasStatus: true}},
		{name: "status non-ascii", in: "STATUS=prêt ✓", want: Message{Status: "prêt ✓", HasStatus: true}},
		{name: "reloading stopping", in: "RELOADING=1\nSTOPPING=1", want: Message{Reloading: true, Stopping: true}},
		{name: "ready 0 ignored", in: "READY=0", want: Message{}},
		{name: "ready then 0", in: "READY=1\nREADY=0", want: Message{Ready: true}},
		{name: "watchdog", in: "WATCHDOG=1", want: Message{Watchdog: true}},
		{name: "watchdog trigger", in: "WATCHDOG=trigger", want: Message{WatchdogTrigger: true}},
		{name: "watchdog other", in: "WATCHDOG=2", want: Message{}},
		{name: "watchdog usec", in: "WATCHDOG_USEC=5000000", want: Message{WatchdogUsec: 5000000}},
		{name: "watchdog usec bad", in: "WATCHDOG_USEC=-1", want: Message{}},
		{name: "mainpid", in: "MAINPID=4242", want: Message{MainPID: 4242}},
		{name: "mainpid zero", in: "MAINPID=0", want: Message{}},
		{name: "mainpid negative", in: "MAINPID=-5", want: Message{}},
		{name: "mainpid junk", in: "MAINPID=12ab", want: Message{}},
		{name: "mainpid huge", in: "MAINPID=99999999999", want: Message{}},
		{name: "mainpid space", in: "MAINPID= 12", want: Message{}},
		{name: "mainpid first counts", in: "MAINPID=x\nMAINPID=7", want: Message{}},
		{name: "extend", in: "EXTEND_TIMEOUT_USEC=1500000", want: Message{ExtendTimeout: 1500 * time.Millisecond}},
		{name: "extend saturates", in: "EXTEND_TIMEOUT_USEC=18446744073709551615", want: Message{ExtendTimeout: math.MaxInt64}},
		{name: "extend bad", in: "EXTEND_TIMEOUT_USEC=1.5", want: Message{}},
		{name: "errno", in: "ERRNO=2", want: Message{Errno: 2, HasErrno: true}},
		{name: "errno zero", in: "ERRNO=0", want: Message{HasErrno: true}},
		{name: "errno out of range", in: "ERRNO=4096", want: Message{}},
		{name: "errno negative", in: "ERRNO=-1", want: Message{}},
		{name: "unknown keys", in: "FDSTORE=1\nBARRIER=1\nX_CUSTOM=yes", want: Message{}},
		{name: "no equals", in: "hello\nREADY=1", want: Message{Ready: true}},
		{name: "blank lines", in: "\n\nREADY=1\n\n", want: Message{Ready: true}},
		{name: "lower case keys", in: "ready=1", want: Message{}},
		{name: "crlf", in: "READY=1\r\nWATCHDOG=1", want: Message{Watchdog: true}},
		{name: "everything", in: "READY=1\nSTATUS=ok\nMAINPID=9\nWATCHDOG=1\nWATCHDOG_USEC=1\nEXTEND_TIMEOUT_USEC=1\nERRNO=5",
			want: Message{Ready: true, Status: "ok", HasStatus: true, MainPID: 9, Watchdog: true, WatchdogUsec: 1, ExtendTimeout: time.Microsecond, Errno: 5, HasErrno: true}},
		{name: "empty", in: "", bad: true},
		{name: "nul", in: "READY=1\x00", bad: true},
		{name: "nul inside", in: "STATUS=a\x00b\nREADY=1", bad: true},
		{name: "not utf-8", in: "READY=1\nSTATUS=\xff\xfe", bad: true},
		{name: "only newline", in: "\n", want: Message{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Parse([]byte(tc.in))
			if ok == tc.bad {
				t.Fatalf("Parse(%q) ok = %v, want %v", tc.in, ok, !tc.bad)
			}
			if !tc.bad && got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseStatusBound(t *testing.T) {
	long := strings.Repeat("é", MaxStatus) // 2 bytes each
	m, ok := Parse([]byte("STATUS=" + long))
	if !ok || !m.HasStatus {
		t.Fatalf("Parse: ok %v, HasStatus %v", ok, m.HasStatus)
	}
	if len(m.Status) != MaxStatus || !utf8.ValidString(m.Status) {
		t.Errorf("status of %d bytes (valid UTF-8: %v), want %d bytes cut at a character boundary",
			len(m.Status), utf8.ValidString(m.Status), MaxStatus)
	}
	m, _ = Parse([]byte("STATUS=x" + strings.Repeat("€", MaxStatus))) // 3 bytes each
	if len(m.Status) > MaxStatus || len(m.Status) < MaxStatus-2 || !utf8.ValidString(m.Status) {
		t.Errorf("status of %d bytes (valid UTF-8: %v), want at most %d cut at a character boundary",
			len(m.Status), utf8.ValidString(m.Status), MaxStatus)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"READY=1\nSTATUS=x", "MAINPID=1", "STATUS=\t\xff", "EXTEND_TIMEOUT_USEC=99999999999999999", "ERRNO=4095\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := Parse(b)
		if !ok {
			return
		}
		if !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8 %q", b)
		}
		if len(m.Status) > MaxStatus || !utf8.ValidString(m.Status) || strings.ContainsFunc(m.Status, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("status %q from %q", m.Status, b)
		}
		if m.MainPID < 0 || m.MainPID > maxPID || m.ExtendTimeout < 0 || m.Errno < 0 || m.Errno > maxErrno {
			t.Fatalf("out of range: %+v from %q", m, b)
		}
		if m.Status != "" && !m.HasStatus || m.Errno != 0 && !m.HasErrno {
			t.Fatalf("value without its Has flag: %+v", m)
		}
	})
}
