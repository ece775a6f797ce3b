package oom

import (
	"bytes"
	"time"
)

// This file is the front-end layer: it turns one line of kernel log text into
// a record (timestamps plus the kernel's message). It knows nothing about OOM
// kills. The form is detected per line, so a stream may mix forms (a kmsg
// dump concatenated with a syslog file, for example).
//
// Timestamps are kept as raw bytes and decoded only for the few lines the
// assembler cares about: decoding is the expensive part and almost every line
// of a kernel log is chatter.

// stampKind says how a record's wall-clock text is written.
type stampKind uint8

const (
	stampNone       stampKind = iota
	stampSyslog               // "Nov 24 02:11:03" or "Nov 24 02:11:03.123456" (no year)
	stampISO                  // "2026-11-24T02:11:03.123456+00:00" or "...+0000"
	stampDmesgCtime           // "Tue Nov 24 02:11:03 2026" (dmesg -T)
)

// record is one kernel log message with whatever time evidence its line
// carried. Byte slices alias the caller's line buffer.
type record struct {
	msg []byte

	// Kernel time since boot: kmsg "usec" field (usecKmsg) or dmesg
	// "[  79.728476]" seconds (bootText).
	bootText []byte
	bootUsec bool

	wallText []byte
	wallKind stampKind

	seq    uint64 // kmsg sequence number
	hasSeq bool

	// userFacility is set for kmsg records whose syslog facility is not
	// LOG_KERN. Since Linux 3.5 a write(2) to /dev/kmsg may not claim facility
	// 0 (the kernel rewrites it to LOG_USER), so such records were written by
	// a program and can never be kernel OOM reports.
	userFacility bool
}

// boot decodes the time since boot, if the line had one.
func (r *record) boot() (time.Duration, bool) {
	if r.bootText == nil {
		return 0, false
	}
	if r.bootUsec {
		n, ok := parseUint(r.bootText)
		if !ok || n > uint64(1<<63-1)/uint64(time.Microsecond) {
			return 0, false
		}
		return time.Duration(n) * time.Microsecond, true
	}
	return parseSeconds(r.bootText)
}

// wall decodes the wall-clock time, if the line had one. Year-less syslog
// stamps take now's year, or the previous year if that would put the stamp
// more than a day in the future (a log read just after New Year).
func (r *record) wall(now time.Time, loc *time.Location) (time.Time, bool) {
	switch r.wallKind {
	case stampSyslog:
		t, err := time.ParseInLocation("Jan _2 15:04:05.999999999", string(r.wallText), loc)
		if err != nil {
			return time.Time{}, false
		}
		y := now.In(loc).Year()
		w := time.Date(y, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
		if w.After(now.Add(24 * time.Hour)) {
			w = time.Date(y-1, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
		}
		return w, true
	case stampISO:
		s := string(r.wallText)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	case stampDmesgCtime:
		t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", string(r.wallText), loc)
		if err != nil {
			return time.Time{}, false
		}
		return t, true
	}
	return time.Time{}, false
}

// parseLine splits one line (without its newline) into a record. It returns
// false for lines that carry no kernel message: kmsg continuation lines
// (" KEY=value", Documentation/ABI/testing/dev-kmsg), syslog lines from
// programs other than the kernel, blank lines and comments.
func parseLine(line []byte) (record, bool) {
	var r record
	if len(line) == 0 {
		return r, false
	}
	c := line[0]
	switch {
	case c >= '0' && c <= '9':
		if r, ok := parseKmsg(line); ok {
			return r, true
		}
		if len(line) > 10 && line[4] == '-' && line[7] == '-' {
			return parseISO(line)
		}
		return r, false
	case c == '[':
		return parseDmesg(line)
	case c == '<':
		// dmesg -r and console captures prefix the level: "<4>[  79.7] msg".
		i := bytes.IndexByte(line, '>')
		if i < 0 || i > 4 || i+1 >= len(line) || line[i+1] != '[' {
			return r, false
		}
		return parseDmesg(line[i+1:])
	case c >= 'A' && c <= 'Z':
		return parseSyslog(line)
	}
	return r, false
}

// parseKmsg reads a raw /dev/kmsg record "prio,seq,usec,flags[,...];msg"
// (Linux 3.5+, Documentation/ABI/testing/dev-kmsg). Fields after usec vary
// across versions (flags since 3.5, caller=T123 with CONFIG_PRINTK_CALLER
// since 5.1), so only the first three are read.
func parseKmsg(line []byte) (record, bool) {
	var r record
	semi := bytes.IndexByte(line, ';')
	if semi < 0 || semi > 96 {
		return r, false
	}
	hdr := line[:semi]
	f0, rest, ok := bytes.Cut(hdr, []byte{','})
	if !ok {
		return r, false
	}
	f1, rest, ok := bytes.Cut(rest, []byte{','})
	if !ok {
		return r, false
	}
	f2, _, _ := bytes.Cut(rest, []byte{','})
	prio, ok0 := parseUint(f0)
	seq, ok1 := parseUint(f1)
	if _, ok2 := parseUint(f2); !ok0 || !ok1 || !ok2 {
		return r, false
	}
	r.msg = line[semi+1:]
	r.seq, r.hasSeq = seq, true
	r.bootText, r.bootUsec = f2, true
	r.userFacility = prio>>3 != 0
	return r, true
}

// parseDmesg reads "[  79.728476] msg" (dmesg, and the kernel console) or
// "[Tue Nov 24 02:11:03 2026] msg" (dmesg -T).
func parseDmesg(line []byte) (record, bool) {
	var r record
	end := bytes.IndexByte(line, ']')
	if end < 2 {
		return r, false
	}
	inner := line[1:end]
	msg := line[end+1:]
	if len(msg) > 0 && msg[0] == ' ' {
		msg = msg[1:]
	}
	r.msg = msg
	t := bytes.TrimLeft(inner, " ")
	if len(t) > 0 && t[0] >= '0' && t[0] <= '9' {
		if _, ok := parseSeconds(t); !ok {
			return r, false
		}
		r.bootText = t
		return r, true
	}
	if len(inner) >= 24 && inner[3] == ' ' && isMonth(inner[4:7]) {
		r.wallText, r.wallKind = inner, stampDmesgCtime
		return r, true
	}
	return r, false
}

// parseSyslog reads "Nov 24 02:11:03[.123456] host kernel: msg", the form of
// classic syslog files and journalctl -k (short, short-precise).
func parseSyslog(line []byte) (record, bool) {
	var r record
	// "Jan _2 15:04:05" is 15 bytes; short-precise adds ".123456".
	if len(line) < 16 || !isMonth(line[:3]) || line[3] != ' ' || line[6] != ' ' || line[9] != ':' || line[12] != ':' {
		return r, false
	}
	end := 15
	if line[end] == '.' {
		end++
		for end < len(line) && line[end] >= '0' && line[end] <= '9' {
			end++
		}
	}
	if end >= len(line) || line[end] != ' ' {
		return r, false
	}
	r.wallText, r.wallKind = line[:end], stampSyslog
	return kernelTag(r, line[end+1:])
}

// parseISO reads "2026-11-24T02:11:03.123456+00:00 host kernel: msg"
// (RFC 3339 syslog, rsyslog's default on current distributions) and
// journalctl -o short-iso ("...+0000").
func parseISO(line []byte) (record, bool) {
	var r record
	sp := bytes.IndexByte(line, ' ')
	if sp < 19 || line[10] != 'T' {
		return r, false
	}
	r.wallText, r.wallKind = line[:sp], stampISO
	return kernelTag(r, line[sp+1:])
}

// kernelTag skips "host kernel: " and an optional "[  79.72] " boot stamp.
// Lines from any other program are dropped: a daemon that logs text such as
// "Killed process 1 (x)" through syslog is not the kernel.
func kernelTag(r record, rest []byte) (record, bool) {
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return r, false
	}
	rest = rest[sp+1:] // host name
	const tag = "kernel: "
	if !bytes.HasPrefix(rest, []byte(tag)) {
		return r, false
	}
	rest = rest[len(tag):]
	if len(rest) > 2 && rest[0] == '[' {
		if end := bytes.IndexByte(rest, ']'); end > 1 {
			t := bytes.TrimLeft(rest[1:end], " ")
			if _, ok := parseSeconds(t); ok {
				r.bootText = t
				rest = rest[end+1:]
				if len(rest) > 0 && rest[0] == ' ' {
					rest = rest[1:]
				}
			}
		}
	}
	r.msg = rest
	return r, true
}

func isMonth(b []byte) bool {
	if len(b) != 3 {
		return false
	}
	switch string(b) {
	case "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec":
		return true
	}
	return false
}

// parseUint parses a non-empty decimal number without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseSeconds parses "79.728476" (printk prints seconds and 6 digits of
// microseconds) into a duration.
func parseSeconds(b []byte) (time.Duration, bool) {
	ip, fp, _ := bytes.Cut(b, []byte{'.'})
	s, ok := parseUint(ip)
	if !ok || s > 1<<33 {
		return 0, false
	}
	d := time.Duration(s) * time.Second
	if len(fp) > 9 {
		return 0, false
	}
	if len(fp) > 0 {
		f, ok := parseUint(fp)
		if !ok {
			return 0, false
		}
		for i := len(fp); i < 9; i++ {
			f *= 10
		}
		d += time.Duration(f)
	}
	return d, true
}
