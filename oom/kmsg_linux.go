package oom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// kmsgBufSize holds any record: the kernel returns one record per read(2)
// and fails with EINVAL if it does not fit; records are at most 1 KiB of
// text (PRINTK_MESSAGE_MAX), escaped up to 4x, plus dictionary lines.
const kmsgBufSize = 16 << 10

// Kmsg follows /dev/kmsg from its end at the time NewKmsg was called and
// reports OOM kills. Run may be called once. Lost and Close are safe for
// concurrent use with Run.
type Kmsg struct {
	dev  kmsgDevice
	path string
	log  *slog.Logger

	lost      atomic.Uint64
	closeOnce sync.Once
	closeErr  error
}

// kmsgDevice is what a Kmsg reads: the /dev/kmsg *os.File, or a fake in
// tests. Each Read returns one whole record, as read(2) on /dev/kmsg does,
// and fails with EPIPE when the ring buffer overwrote records the reader
// had not read yet; a read deadline in the past makes a pending Read return.
type kmsgDevice interface {
	Read(p []byte) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// NewKmsg opens the device and seeks to its end, so that only records
// logged from now on are read. The error says why the device is unusable;
// it matches fs.ErrPermission without CAP_SYSLOG under
// kernel.dmesg_restrict=1.
func NewKmsg(cfg KmsgConfig) (*Kmsg, error) {
	cfg = cfg.withDefaults()
	fd, err := unix.Open(cfg.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", cfg.Path, err)
	}
	// SEEK_END positions the reader after the last record (Linux 3.5+,
	// devkmsg_llseek); older records are ReadRetained's business.
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("seeking to the end of %s: %w", cfg.Path, err)
	}
	// A non-blocking descriptor handed to os.NewFile is registered with the
	// runtime poller: Read parks the goroutine instead of a thread, and a
	// read deadline unblocks it.
	return newKmsg(os.NewFile(uintptr(fd), cfg.Path), cfg.Path, cfg.Logger), nil
}

// newKmsg returns a Kmsg reading dev, named path in errors; a nil logger
// discards.
func newKmsg(dev kmsgDevice, path string, logger *slog.Logger) *Kmsg {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Kmsg{dev: dev, path: path, log: logger}
}

// Run sends every OOM kill to out until ctx is done, then returns nil. Only
// confirmed kills (a Killed process record) are sent. The
// caller owns out and must keep receiving until Run returns. Run closes the
// device when it returns. Kills carry Boot and Time (mapped through
// CLOCK_MONOTONIC).
func (k *Kmsg) Run(ctx context.Context, out chan<- Kill) error {
	defer k.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			// Wakes a Read parked in the poller.
			_ = k.dev.SetReadDeadline(time.Unix(1, 0))
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	a := newAssembler(time.Now, time.Local)
	a.onReap = func(pid int, comm string, known bool) {
		k.log.Debug("oom reaper freed memory", "pid", pid, "comm", comm, "known_kill", known)
	}
	buf := make([]byte, kmsgBufSize)
	var lastSeq uint64
	haveSeq := false
	for {
		n, err := k.dev.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.EPIPE) {
				// The ring buffer overwrote records before we read them;
				// the kernel moved us to the oldest record left. The
				// sequence gap at the next record counts the loss.
				k.log.Debug("kernel log overrun")
				continue
			}
			return fmt.Errorf("reading %s: %w", k.path, err)
		}
		rec, ok := parseKmsgRecord(buf[:n])
		if !ok {
			k.log.Debug("skipping malformed kernel log record", "bytes", n)
			continue
		}
		if haveSeq && rec.seq > lastSeq+1 {
			lost := rec.seq - lastSeq - 1
			k.lost.Add(lost)
			k.log.Debug("kernel log records lost", "count", lost)
		}
		lastSeq, haveSeq = rec.seq, true
		for _, kill := range a.add(&rec) {
			// Only a Killed process line proves a death; the assembler
			// reports nothing else here (unconfirmed is off), and this
			// check keeps it so.
			if !kill.Confirmed {
				continue
			}
			setWall(&kill)
			select {
			case out <- kill:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// parseKmsgRecord reads the header line of one read(2) from /dev/kmsg; the
// " KEY=value" continuation lines after it carry no OOM evidence.
func parseKmsgRecord(b []byte) (record, bool) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return parseKmsg(b)
}

// setWall sets k.Time from k.Boot.
func setWall(k *Kill) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return
	}
	k.Time = wallFromBoot(k.Boot, time.Duration(ts.Nano()), time.Now())
}

// Lost is the number of records lost to ring-buffer overruns so far.
func (k *Kmsg) Lost() uint64 { return k.lost.Load() }

// Close releases the device (only needed if Run is never called).
func (k *Kmsg) Close() error {
	k.closeOnce.Do(func() { k.closeErr = k.dev.Close() })
	return k.closeErr
}

// ReadRetained returns the OOM kills in the kernel's retained ring buffer at
// path (normally /dev/kmsg) without blocking: it reads from the oldest record
// still held to the newest and stops. Kills carry Boot and Time and are all
// confirmed (seen in a Killed process record).
func ReadRetained(path string) ([]Kill, error) {
	if path == "" {
		path = DefaultKmsgPath
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	return readRetained(fdReader(fd), path)
}

// fdReader reads a raw descriptor, so that a non-blocking one reports
// EAGAIN at the end of the buffer instead of parking in the poller.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) { return unix.Read(int(fd), p) }

// readRetained reads records from r, one per Read, until r reports EAGAIN
// (or end of file), and returns the OOM kills among them. path names r in
// errors.
func readRetained(r io.Reader, path string) ([]Kill, error) {
	a := newAssembler(time.Now, time.Local)
	buf := make([]byte, kmsgBufSize)
	var kills []Kill
	for {
		n, err := r.Read(buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return kills, nil
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.EINTR):
			// EPIPE: records overwritten while reading; go on from the
			// oldest one left.
			continue
		case err != nil:
			return kills, fmt.Errorf("reading %s: %w", path, err)
		case n == 0:
			return kills, nil
		}
		rec, ok := parseKmsgRecord(buf[:n])
		if !ok {
			continue
		}
		for _, k := range a.add(&rec) {
			if k.Confirmed {
				setWall(&k)
				kills = append(kills, k)
			}
		}
	}
}
