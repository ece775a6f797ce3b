package oom

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxLine bounds one line of log text. Kernel messages are at most 1 KiB
// (PRINTK_MESSAGE_MAX) plus prefixes; longer lines are skipped.
const maxLine = 64 << 10

// Scan reads kernel log text in any common form (raw /dev/kmsg records,
// dmesg, dmesg -T, journalctl -k, syslog) and calls emit once per OOM kill,
// in order, merging split lines of one event and dropping duplicates. The
// form is detected per line. Year-less syslog stamps are read in the local
// time zone, in the current year or the previous one. Kills from text
// without a wall clock (dmesg, raw kmsg) have Boot set and Time zero.
func Scan(r io.Reader, emit func(Kill)) error {
	return scan(r, newAssembler(time.Now, time.Local), emit)
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
				return nil
			}
			return fmt.Errorf("reading kernel log: %w", err)
		}
	}
}

func scanLine(a *assembler, line []byte, emit func(Kill)) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	rec, ok := parseLine(line)
	if !ok {
		return
	}
	if k, ok := a.add(&rec); ok {
		emit(k)
	}
}
