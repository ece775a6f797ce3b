package restart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/epoll"
)

// outputMux copies the output pipes of every program without a file to
// respawnd's own stdout and stderr, line by line with the program's prefix.
// One goroutine and one epoll set serve all of them: an idle program's pipes
// cost no goroutine and no buffer (a partial line is kept only until its end
// comes, and a buffer grown for a long line is dropped once it is written).
// The goroutine runs while any pipe is open and ends with the last one.
//
// The epoll set is itself registered with the Go runtime's poller, so the
// goroutine parks without holding a thread.
type outputMux struct {
	l *Launcher

	mu      sync.Mutex // guards every field below
	set     *epoll.Set
	pipes   map[uint64]*outPipe
	next    uint64
	running bool
}

// outPipe is one program's stdout or stderr.
type outPipe struct {
	fd     int
	w      io.Writer
	name   string
	prefix string
	buf    []byte // the partial line read so far
	failed bool   // a write failed and was logged
	out    *outputDone
}

// outputDone closes done once every pipe of a process reached end of file.
type outputDone struct {
	left int
	done chan struct{}
}

// scratchSize is how much one read takes from a pipe; a line longer than
// maxLine is split, so no pipe keeps more than that.
const scratchSize = maxLine

// shrinkAbove is the capacity beyond which a pipe's line buffer is dropped
// once empty: idle programs hold no large buffers.
const shrinkAbove = 4 << 10

// readsPerWakeup bounds how much of one busy pipe is copied before the
// others get their turn.
const readsPerWakeup = 4

// add registers the read ends of a program's output pipes (they must be
// non-blocking) and starts the goroutine if it is not running; done is
// closed once both reach end of file.
func (m *outputMux) add(name string, stdout, stderr int, done chan struct{}) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		set, err := epoll.New("output")
		if err != nil {
			return err
		}
		m.set = set
		m.pipes = map[uint64]*outPipe{}
	}
	od := &outputDone{left: 2, done: done}
	prefix := name + " | "
	for _, p := range []*outPipe{
		{fd: stdout, w: m.l.stdout, name: name, prefix: prefix, out: od},
		{fd: stderr, w: m.l.stderr, name: name, prefix: prefix, out: od},
	} {
		m.next++
		key := m.next
		if err := m.set.Add(p.fd, unix.EPOLLIN|unix.EPOLLRDHUP, key); err != nil {
			return fmt.Errorf("watching output pipe: %w", err)
		}
		m.pipes[key] = p
	}
	if !m.running {
		m.running = true
		go m.run(m.set)
	}
	return nil
}

// run copies output until no pipe is left.
func (m *outputMux) run(set *epoll.Set) {
	scratch := make([]byte, scratchSize)
	var out []byte
	err := set.Wait(make([]unix.EpollEvent, 64), func(events []unix.EpollEvent) {
		for _, ev := range events {
			key := epoll.Key(ev)
			m.mu.Lock()
			p := m.pipes[key]
			m.mu.Unlock()
			if p != nil {
				out = m.drain(key, p, scratch, out[:0])
			}
		}
	}, func() bool {
		// Park until a pipe has data, or end with the last pipe: a later
		// add starts the goroutine again.
		m.mu.Lock()
		defer m.mu.Unlock()
		last := len(m.pipes) == 0
		if last {
			m.running = false
		}
		return last
	})
	if err != nil {
		m.stopAll(err)
	}
}

// drain copies what pipe p has now, as whole prefixed lines in one write;
// at end of file it flushes the partial line and closes the pipe.
func (m *outputMux) drain(key uint64, p *outPipe, scratch, out []byte) []byte {
	eof := false
	for range readsPerWakeup {
		n, err := unix.Read(p.fd, scratch)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil || n == 0 {
			eof = true // end of file, or a broken pipe: nothing more comes
			break
		}
		out = p.lines(scratch[:n], out)
	}
	if eof && len(p.buf) > 0 {
		out = p.line(p.buf, out)
		p.buf = p.buf[:0]
	}
	if len(p.buf) == 0 && cap(p.buf) > shrinkAbove {
		p.buf = nil
	}
	if len(out) > 0 {
		m.write(p, out)
	}
	if eof {
		m.close(key, p)
	}
	return out
}

// lines appends every complete line of data (joined to the partial line
// kept from before) to out, and keeps the rest. A line that grows past
// maxLine is written in pieces.
func (p *outPipe) lines(data, out []byte) []byte {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			room := maxLine - len(p.buf)
			if len(data) < room {
				p.buf = append(p.buf, data...)
				return out
			}
			p.buf = append(p.buf, data[:room]...)
			out = p.line(p.buf, out)
			p.buf = p.buf[:0]
			data = data[room:]
			continue
		}
		if len(p.buf) > 0 {
			p.buf = append(p.buf, data[:i]...)
			out = p.line(p.buf, out)
			p.buf = p.buf[:0]
		} else {
			out = p.line(data[:i], out)
		}
		data = data[i+1:]
	}
	return out
}

func (p *outPipe) line(l, out []byte) []byte {
	out = append(out, p.prefix...)
	out = append(out, l...)
	return append(out, '\n')
}

// write writes whole lines under the Launcher's output lock, so lines of
// different programs never interleave. A failed write is logged once; the
// pipe is drained on regardless, so the program never blocks on it.
func (m *outputMux) write(p *outPipe, b []byte) {
	m.l.outMu.Lock()
	_, err := p.w.Write(b)
	m.l.outMu.Unlock()
	if err != nil && !p.failed {
		p.failed = true
		m.l.logger.Debug("writing program output failed", "program", p.name, "err", err)
	}
}

// close forgets a pipe at end of file.
func (m *outputMux) close(key uint64, p *outPipe) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.set.Del(p.fd)
	_ = unix.Close(p.fd)
	delete(m.pipes, key)
	p.out.left--
	if p.out.left == 0 {
		close(p.out.done)
	}
}

// stopAll gives up every pipe after the epoll set failed (it should not):
// the pipes are closed, so programs writing to them get EPIPE instead of
// blocking, and every OutputDone closes.
func (m *outputMux) stopAll(err error) {
	m.l.logger.Error("copying program output failed; program output is dropped from now on", "err", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, p := range m.pipes {
		_ = unix.Close(p.fd)
		delete(m.pipes, key)
		p.out.left--
		if p.out.left == 0 {
			close(p.out.done)
		}
	}
	m.running = false
	// A later add starts afresh.
	_ = m.set.Close()
	m.set = nil
}
