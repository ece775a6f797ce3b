package restart

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"sync"
)

// maxLine is the longest line written in one piece; longer lines are split
// so that one program cannot make respawnd buffer without bound.
const maxLine = 64 << 10

// lineWriter writes prefixed lines of one program's stream to a writer
// shared with other programs.
type lineWriter struct {
	w      io.Writer
	mu     *sync.Mutex // shared by every lineWriter of a Launcher
	name   string
	prefix string // "NAME | "
	logger *slog.Logger
	failed bool // a write failed and was logged
}

// copyLines copies r to lw line by line until r reaches end of file or
// fails. Every line (or piece of an overlong line) becomes one Write of
// prefix, line and "\n" under the shared mutex, so lines of different
// programs never interleave.
func (lw *lineWriter) copyLines(r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	buf := make([]byte, 0, 256)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf = append(append(buf[:0], lw.prefix...), line...)
			if buf[len(buf)-1] != '\n' {
				buf = append(buf, '\n')
			}
			lw.write(buf)
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		default:
			// io.EOF, or the pipe failed: either way nothing more will come.
			return
		}
	}
}

func (lw *lineWriter) write(b []byte) {
	lw.mu.Lock()
	_, err := lw.w.Write(b)
	lw.mu.Unlock()
	if err != nil && !lw.failed {
		// Keep draining the pipe so the program never blocks on a full
		// pipe; say so once.
		lw.failed = true
		lw.logger.Debug("writing program output failed", "program", lw.name, "err", err)
	}
}
