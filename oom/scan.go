package oom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxLine bounds one line of log text. Kernel messages are at most 1 KiB
// (PRINTK_MESSAGE_MAX) plus prefixes; longer lines are skipped.
const maxLine = 64 << 10

// Scan reads kernel log text in any common form and calls emit once per OOM
// kill, in order, merging split lines of one event and dropping duplicates.
// The form is detected per line:
//
//   - raw /dev/kmsg records ("6,499,546785459,-;msg");
//   - dmesg, with -r, -x (only facility kern is read), -T, --time-format=iso,
//     and the caller id of CONFIG_PRINTK_CALLER kernels ("[ 12.3][ T42] msg");
//   - journalctl -k (short, short-precise, short-iso, short-monotonic) and
//     syslog files, with month names in the C, de, fr, es, ru, it, pt and pl
//     locales of journalctl and dmesg -T;
//   - bare messages (dmesg -t, journalctl -o cat), accepted only in the
//     kernel's exact formats since nothing marks them as the kernel's;
//   - any of these quoted with "> " or indented.
//
// A kill known only from its oom-kill: summary line (grep output, for
// example) is reported with Confirmed false, once it is clear that no
// Killed process line follows. Year-less syslog stamps are read in the local
// time zone, in the current year or the previous one. Kills from text
// without a wall clock (dmesg, raw kmsg) have Boot set and Time zero.
func Scan(r io.Reader, emit func(Kill)) error {
	a := newAssembler(time.Now, time.Local)
	a.unconfirmed = true
	return scan(r, a, emit)
}

func scan(r io.Reader, a *assembler, emit func(Kill)) error {
	br := bufio.NewReaderSize(r, maxLine)
	skipping := false
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
			continue
		case skipping:
			// The tail of an overlong line.
			skipping = err != nil && !errors.Is(err, io.EOF)
		default:
			scanLine(a, line, emit)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				for _, k := range a.finish() {
					emit(k)
				}
				return nil
			}
			return fmt.Errorf("reading kernel log: %w", err)
		}
	}
}

func scanLine(a *assembler, line []byte, emit func(Kill)) {
	// Byte checks: bytes.TrimSuffix costs a call to memeqbody per line.
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	rec, ok := parseLine(line)
	if !ok {
		return
	}
	for _, k := range a.add(&rec) {
		emit(k)
	}
}
