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
	stampSyslog               // "24 02:11:03" or " 4 02:11:03.123456" after the month word (no year)
	stampISO                  // "2026-11-24T02:11:03.123456+00:00", "...+0000" or dmesg's "...,123456+00:00"
	stampDmesgCtime           // " 2 08:03:27 2026" after dmesg -T's weekday and month words
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
	month    time.Month // of stampSyslog and stampDmesgCtime, from a month word

	seq    uint64 // kmsg sequence number
	hasSeq bool

	// userFacility is set for kmsg records whose syslog facility is not
	// LOG_KERN. Since Linux 3.5 a write(2) to /dev/kmsg may not claim facility
	// 0 (the kernel rewrites it to LOG_USER), so such records were written by
	// a program and can never be kernel OOM reports.
	userFacility bool

	// bare is set for a message with no prefix at all (dmesg -t, journalctl
	// -o cat, text quoted in a mail): nothing says the kernel wrote it, so
	// the assembler accepts only lines in the kernel's exact formats.
	bare bool
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
		c, n, ok := parseDayClock(r.wallText)
		if !ok || n != len(r.wallText) {
			return time.Time{}, false
		}
		y := now.In(loc).Year()
		w := c.in(y, r.month, loc)
		if w.After(now.Add(24 * time.Hour)) {
			w = c.in(y-1, r.month, loc)
		}
		return w, true
	case stampISO:
		s := string(r.wallText)
		if len(s) > 19 && s[19] == ',' {
			// dmesg --time-format=iso writes a decimal comma.
			s = s[:19] + "." + s[20:]
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	case stampDmesgCtime:
		c, n, ok := parseDayClock(r.wallText)
		if !ok || n+5 != len(r.wallText) || r.wallText[n] != ' ' {
			return time.Time{}, false
		}
		y, ok := parseUint(r.wallText[n+1:])
		if !ok {
			return time.Time{}, false
		}
		return c.in(int(y), r.month, loc), true
	}
	return time.Time{}, false
}

// dayClock is "_2 15:04:05.999999999" decoded.
type dayClock struct {
	day, hour, min, sec, nsec int
}

func (c dayClock) in(year int, m time.Month, loc *time.Location) time.Time {
	return time.Date(year, m, c.day, c.hour, c.min, c.sec, c.nsec, loc)
}

// parseDayClock reads a day of the month (" 4", "04" or "4"), a space and
// "15:04:05" with an optional fraction, and returns the bytes consumed.
func parseDayClock(b []byte) (dayClock, int, bool) {
	var c dayClock
	i := 0
	if i < len(b) && b[i] == ' ' {
		i++
	}
	d, n := leadingInt(b[i:min(len(b), i+2)])
	if n == 0 || d < 1 || d > 31 || i+n >= len(b) || b[i+n] != ' ' {
		return c, 0, false
	}
	c.day = d
	i += n + 1
	if len(b) < i+8 || b[i+2] != ':' || b[i+5] != ':' {
		return c, 0, false
	}
	var ok [3]bool
	c.hour, ok[0] = twoDigits(b[i:], 23)
	c.min, ok[1] = twoDigits(b[i+3:], 59)
	c.sec, ok[2] = twoDigits(b[i+6:], 60)
	if !ok[0] || !ok[1] || !ok[2] {
		return c, 0, false
	}
	i += 8
	if i < len(b) && b[i] == '.' {
		j := i + 1
		for j < len(b) && j-i <= 9 && b[j] >= '0' && b[j] <= '9' {
			c.nsec = c.nsec*10 + int(b[j]-'0')
			j++
		}
		if j == i+1 || (j < len(b) && b[j] >= '0' && b[j] <= '9') {
			return c, 0, false
		}
		for k := j - i - 1; k < 9; k++ {
			c.nsec *= 10
		}
		i = j
	}
	return c, i, true
}

func twoDigits(b []byte, max int) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	v := int(b[0]-'0')*10 + int(b[1]-'0')
	return v, v <= max
}

// parseLine splits one line (without its newline) into a record. It returns
// false for lines that carry no kernel message: kmsg continuation lines
// (" KEY=value", Documentation/ABI/testing/dev-kmsg), syslog lines from
// programs other than the kernel, dmesg -x lines of another facility, blank
// lines and comments. A line with no known prefix is a bare message.
func parseLine(line []byte) (record, bool) {
	var r record
	line = unquote(line)
	if len(line) == 0 || line[0] == '#' {
		return r, false
	}
	c := line[0]
	switch {
	case c >= '0' && c <= '9':
		if r, ok := parseKmsg(line); ok {
			return r, true
		}
		if len(line) > 20 && line[4] == '-' && line[7] == '-' && line[10] == 'T' {
			return parseISO(line)
		}
		return bareRecord(line)
	case c == '[':
		return parseDmesg(line)
	case c == '<':
		// dmesg -r and console captures prefix the level: "<4>[  79.7] msg".
		i := bytes.IndexByte(line, '>')
		if i < 0 || i > 4 || i+1 >= len(line) || line[i+1] != '[' {
			return bareRecord(line)
		}
		return parseDmesg(line[i+1:])
	}
	if c >= 'a' && c <= 'u' {
		if r, ok, known := parseDmesgX(line); known {
			return r, ok
		}
	}
	if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= 0xc0 {
		if r, ok, stamped := parseSyslog(line); stamped {
			return r, ok
		}
	}
	return bareRecord(line)
}

// unquote strips what quoting adds in front of pasted log text: "> " of
// mail replies (nested, with or without the space) and the indentation of
// issue trackers and code blocks.
func unquote(line []byte) []byte {
	for len(line) > 0 && (line[0] == ' ' || line[0] == '\t' || line[0] == '>') {
		line = line[1:]
	}
	return line
}

func bareRecord(line []byte) (record, bool) {
	return record{msg: line, bare: true}, true
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

// parseDmesg reads "[  79.728476] msg" (dmesg, and the kernel console),
// "[Tue Nov 24 02:11:03 2026] msg" (dmesg -T, in any locale of the month
// table) and, after the stamp, the caller id of CONFIG_PRINTK_CALLER
// kernels and the "host kernel: " of journalctl -o short-monotonic.
func parseDmesg(line []byte) (record, bool) {
	var r record
	end := bytes.IndexByte(line, ']')
	if end < 2 {
		return r, false
	}
	inner := line[1:end]
	msg := skipSpace(line[end+1:])
	t := bytes.TrimLeft(inner, " ")
	switch {
	case len(t) > 0 && t[0] >= '0' && t[0] <= '9':
		if _, ok := parseSeconds(t); !ok {
			return r, false
		}
		r.bootText = t
	case !parseCtime(&r, inner):
		return r, false
	}
	r.msg = skipHostKernel(skipCaller(msg))
	return r, true
}

// parseCtime reads dmesg -T's "Tue Nov 24 02:11:03 2026": strftime's
// "%a %b %e %H:%M:%S %Y", so weekday and month are words of the reader's
// locale.
func parseCtime(r *record, b []byte) bool {
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 || !isWeekday(b[:sp]) {
		return false
	}
	b = b[sp+1:]
	sp = bytes.IndexByte(b, ' ')
	if sp < 0 {
		return false
	}
	m := monthOf(b[:sp])
	if m == 0 {
		return false
	}
	rest := b[sp+1:]
	_, n, ok := parseDayClock(rest)
	if !ok || n+5 != len(rest) || rest[n] != ' ' {
		return false
	}
	if _, ok := parseUint(rest[n+1:]); !ok {
		return false
	}
	r.wallText, r.wallKind, r.month = rest, stampDmesgCtime, m
	return true
}

// skipCaller skips the caller id that kernels built with
// CONFIG_PRINTK_CALLER (Linux 5.1+) print after the time stamp: "[T1234]"
// for a task, "[C1]" for a CPU in interrupt context, padded to six
// characters ("[ T123]"). The console and syslog(2) write it right after the
// stamp, "[   12.345678][ T1234] msg"; other readers put a space before it.
func skipCaller(msg []byte) []byte {
	if len(msg) < 4 || msg[0] != '[' {
		return msg
	}
	i := 1
	for i < len(msg) && msg[i] == ' ' {
		i++
	}
	if i >= len(msg) || (msg[i] != 'T' && msg[i] != 'C') {
		return msg
	}
	i++
	_, n := leadingInt(msg[i:])
	if n == 0 || i+n >= len(msg) || msg[i+n] != ']' {
		return msg
	}
	return skipSpace(msg[i+n+1:])
}

// skipHostKernel skips the "host kernel: " of journalctl -o
// short-monotonic, "[ 79.728476] host kernel: msg".
func skipHostKernel(msg []byte) []byte {
	sp := bytes.IndexByte(msg[:min(len(msg), 65)], ' ')
	if sp > 0 && bytes.HasPrefix(msg[sp+1:], []byte("kernel: ")) {
		return msg[sp+9:]
	}
	return msg
}

func skipSpace(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}

// parseDmesgX reads dmesg -x (--decode): "kern  :warn  : " before the
// usual dmesg line or, with -t, the bare message. The facility tells
// kernel messages apart from records that programs wrote to /dev/kmsg
// (LOG_USER): only "kern" is kept. known is false when the line is not in
// this form at all.
func parseDmesgX(line []byte) (r record, ok, known bool) {
	c := bytes.IndexByte(line[:min(len(line), 10)], ':')
	if c < 3 || len(line) < 16 || !isFacility(bytes.TrimRight(line[:c], " ")) {
		return r, false, false
	}
	rest := line[c+1:]
	l := bytes.IndexByte(rest[:min(len(rest), 8)], ':')
	if l < 0 || !isLevel(bytes.TrimRight(rest[:l], " ")) || len(rest) < l+2 || rest[l+1] != ' ' {
		return r, false, false
	}
	if !bytes.HasPrefix(line, []byte("kern ")) {
		return r, false, true // a program's record
	}
	rest = rest[l+2:]
	if len(rest) > 0 && rest[0] == '[' {
		r, ok = parseDmesg(rest)
		return r, ok, true
	}
	return record{msg: rest}, true, true
}

// isFacility reports whether b is a facility name of dmesg -x (util-linux,
// the syslog(3) names).
func isFacility(b []byte) bool {
	switch string(b) {
	case "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
		"res0", "res1", "res2", "res3", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7":
		return true
	}
	return false
}

func isLevel(b []byte) bool {
	switch string(b) {
	case "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug":
		return true
	}
	return false
}

// parseSyslog reads "Nov 24 02:11:03[.123456] host kernel: msg", the form of
// classic syslog files and journalctl -k (short, short-precise), whose month
// is strftime's %b in the reader's locale. stamped is false when the line
// does not start with such a stamp (and may be a bare message).
func parseSyslog(line []byte) (r record, ok, stamped bool) {
	sp := bytes.IndexByte(line[:min(len(line), 12)], ' ')
	if sp < 2 {
		return r, false, false
	}
	m := monthOf(line[:sp])
	if m == 0 {
		return r, false, false
	}
	rest := line[sp+1:]
	_, n, ok := parseDayClock(rest)
	if !ok || n >= len(rest) || rest[n] != ' ' {
		return r, false, false
	}
	r.wallText, r.wallKind, r.month = rest[:n], stampSyslog, m
	r, ok = kernelTag(r, rest[n+1:])
	return r, ok, true
}

// parseISO reads "2026-11-24T02:11:03.123456+00:00 host kernel: msg"
// (RFC 3339 syslog, rsyslog's default on current distributions),
// journalctl -o short-iso ("...+0000") and dmesg --time-format=iso
// ("2026-11-24T02:11:03,123456+00:00 msg": a decimal comma, no host or tag).
func parseISO(line []byte) (record, bool) {
	var r record
	sp := bytes.IndexByte(line, ' ')
	if sp < 19 {
		return r, false
	}
	r.wallText, r.wallKind = line[:sp], stampISO
	if line[19] == ',' {
		r.msg = line[sp+1:]
		return r, true
	}
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
				rest = skipCaller(skipSpace(rest[end+1:]))
			}
		}
	}
	r.msg = rest
	return r, true
}

// monthOf returns the month that b abbreviates, or 0. journalctl and
// dmesg -T format with strftime's %b in the reader's LC_TIME, so the table
// holds glibc's abbreviations (abmon, glibc 2.36) for the locales users
// paste from most: C/en, de, fr, es, ru, it, pt, pl. Any other word is not a
// month, which keeps look-alike lines out.
func monthOf(b []byte) time.Month {
	switch string(b) {
	case "Jan", "jan", "janv.", "ene", "янв", "gen", "sty":
		return time.January
	case "Feb", "feb", "févr.", "фев", "fev", "lut":
		return time.February
	case "Mar", "Mär", "mars", "mar", "мар":
		return time.March
	case "Apr", "avril", "abr", "апр", "apr", "kwi":
		return time.April
	case "May", "Mai", "mai", "may", "мая", "mag", "maj":
		return time.May
	case "Jun", "juin", "jun", "июн", "giu", "cze":
		return time.June
	case "Jul", "juil.", "jul", "июл", "lug", "lip":
		return time.July
	case "Aug", "août", "ago", "авг", "sie":
		return time.August
	case "Sep", "sept.", "sep", "сен", "set", "wrz":
		return time.September
	case "Oct", "Okt", "oct.", "oct", "окт", "ott", "out", "paź":
		return time.October
	case "Nov", "nov.", "nov", "ноя", "lis":
		return time.November
	case "Dec", "Dez", "déc.", "dic", "дек", "dez", "gru":
		return time.December
	}
	return 0
}

// isWeekday reports whether b is a weekday abbreviation (strftime's %a,
// glibc abday) of the locales in monthOf.
func isWeekday(b []byte) bool {
	switch string(b) {
	case "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
		"So", "Mo", "Di", "Mi", "Do", "Fr", "Sa",
		"dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam.",
		"dom", "lun", "mar", "mié", "jue", "vie", "sáb",
		"Вс", "Пн", "Вт", "Ср", "Чт", "Пт", "Сб",
		"mer", "gio", "ven", "sab",
		"seg", "ter", "qua", "qui", "sex",
		"nie", "pon", "wto", "śro", "czw", "pią", "sob":
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
