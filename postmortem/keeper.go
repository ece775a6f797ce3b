package postmortem

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/respawnd/respawnd/cgroup"
	"github.com/respawnd/respawnd/oom"
)

// Output is an instance's output as respawnd copied it.
type Output interface {
	// OutputDone is closed once every line the instance wrote is copied.
	OutputDone() <-chan struct{}
	// Tail returns the last lines, oldest first.
	Tail() []Line
}

// Death is what an instance leaves behind, taken at wait time before
// anything restarts.
type Death struct {
	Program    string
	Generation uint64
	// Output is nil for an instance whose output respawnd does not copy.
	Output Output
	// Cgroup is the program's cgroup path, and Report its memory files
	// (Report.Stat nil: not read).
	Cgroup string
	Report cgroup.MemoryReport
	// Core says the kernel wrote a core dump.
	Core bool
	// At is when the death was taken.
	At time.Time
}

// Final is an exit once its reason is final.
type Final struct {
	Program        string
	Generation     uint64
	PID            int
	Started, Died  time.Time
	Reason, Signal string
	ExitCode       *int
	Error          string
	Recycle        bool
	Stopped        bool
	OOM            *oom.Kill
	PeakBytes      int64
	PeakSource     string
}

// Config configures a Keeper.
type Config struct {
	// Store keeps the records; nil keeps none, and Written gets each
	// record with no path.
	Store  *Store
	Logger *slog.Logger
	// CorePattern returns /proc/sys/kernel/core_pattern; nil leaves it out.
	CorePattern func() string
	// Host reads the host's memory when a record is written (off the
	// restart path, a few milliseconds after the death); nil leaves it out.
	Host func() (*Host, error)
	// Written is called on the Keeper's goroutine after each record is
	// stored, with its path and encoding: where hooks start.
	Written func(r *Record, path string, data []byte)
	// OutputWait bounds the wait for the last output lines of a dead
	// instance (a forked child can keep its pipes open); default 2s.
	OutputWait time.Duration
	// Queue is how many records may wait to be written; default 1024.
	// Beyond it records are dropped and counted, never waited for.
	Queue int
}

// Keeper turns deaths into records. Died and Settled are called from the
// program loops and never block; the records are made and written by Run.
type Keeper struct {
	cfg   Config
	queue chan job

	mu      sync.Mutex
	pending map[key]Death
	order   []key // pending keys, oldest first
	base    map[string]baseline
	dropped uint64
}

type key struct {
	program    string
	generation uint64
}

// baseline is a cgroup's event counters and stall totals at a moment: the
// instance's start as near as respawnd knows it.
type baseline struct {
	at         time.Time
	events     map[string]uint64
	some, full uint64
	pressure   bool
}

type job struct {
	rec    *Record
	output Output
}

// maxPending bounds the deaths waiting for their reason; a reason comes
// within the attribution window, so only a fault leaves one behind.
const maxPending = 4096

// New returns a Keeper; start Run to have records written.
func New(cfg Config) *Keeper {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OutputWait <= 0 {
		cfg.OutputWait = 2 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	return &Keeper{cfg: cfg, queue: make(chan job, cfg.Queue), pending: map[key]Death{}, base: map[string]baseline{}}
}

// Store returns the store the Keeper writes to.
func (k *Keeper) Store() *Store { return k.cfg.Store }

// Dropped returns how many records were dropped because the queue was full.
func (k *Keeper) Dropped() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dropped
}

// Baseline records a program's cgroup counters before its first start (or
// at its adoption): the events and stall time of its first death are
// counted from there.
func (k *Keeper) Baseline(program string, r cgroup.MemoryReport, at time.Time) {
	if r.Stat == nil && r.Events == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.base[program] = baselineOf(r, at)
}

// Keep drops the baselines of programs not in programs (removed from the
// configuration); a program added again later counts from its new cgroup.
func (k *Keeper) Keep(programs []string) {
	keep := make(map[string]bool, len(programs))
	for _, p := range programs {
		keep[p] = true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for p := range k.base {
		if !keep[p] {
			delete(k.base, p)
		}
	}
}

func baselineOf(r cgroup.MemoryReport, at time.Time) baseline {
	return baseline{at: at, events: r.Events, some: r.PressureSomeUS, full: r.PressureFullUS, pressure: r.HasPressure}
}

// Died takes what an instance left behind until its reason is final.
func (k *Keeper) Died(d Death) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kk := key{d.Program, d.Generation}
	if _, ok := k.pending[kk]; !ok {
		k.order = append(k.order, kk)
	}
	k.pending[kk] = d
	for len(k.order) > maxPending {
		delete(k.pending, k.order[0])
		k.order = k.order[1:]
	}
}

// Settled makes the record of an exit whose reason is final and queues it
// for writing; a full queue drops it (counted in Dropped).
func (k *Keeper) Settled(f Final) {
	r := &Record{
		ID:         k.newID(f),
		Program:    f.Program,
		PID:        f.PID,
		Generation: f.Generation,
		Started:    f.Started,
		Died:       f.Died,
		Reason:     f.Reason,
		Signal:     f.Signal,
		ExitCode:   f.ExitCode,
		Error:      f.Error,
		Recycle:    f.Recycle,
		Stopped:    f.Stopped,
		OOM:        f.OOM,
	}
	if !f.Started.IsZero() && f.Died.After(f.Started) {
		r.UptimeSeconds = f.Died.Sub(f.Started).Seconds()
	}
	k.mu.Lock()
	kk := key{f.Program, f.Generation}
	d, ok := k.pending[kk]
	if ok {
		delete(k.pending, kk)
		for i, o := range k.order {
			if o == kk {
				k.order = append(k.order[:i], k.order[i+1:]...)
				break
			}
		}
		r.Memory = k.memory(d, f)
	}
	k.mu.Unlock()
	var out Output
	if ok {
		if d.Core {
			r.Core = &Core{Dumped: true}
			if k.cfg.CorePattern != nil {
				r.Core.Pattern = k.cfg.CorePattern()
			}
		}
		out = d.Output
	}
	r.OutputKept = out != nil
	select {
	case k.queue <- job{rec: r, output: out}:
	default:
		k.mu.Lock()
		k.dropped++
		k.mu.Unlock()
		k.cfg.Logger.Warn("death record dropped: too many waiting to be written", "program", f.Program, "generation", f.Generation)
	}
}

// memory builds the record's memory part from a death's cgroup report and
// moves the program's baseline to it: the next instance starts after. The
// caller holds mu.
func (k *Keeper) memory(d Death, f Final) *Memory {
	if d.Report.Stat == nil {
		if f.PeakBytes > 0 {
			return &Memory{Cgroup: d.Cgroup, PeakBytes: f.PeakBytes, PeakSource: f.PeakSource}
		}
		return nil
	}
	m := &Memory{Cgroup: d.Cgroup, Version: d.Report.Version, StatAfterExit: d.Report.Stat, PeakBytes: f.PeakBytes, PeakSource: f.PeakSource}
	if b, ok := k.base[d.Program]; ok {
		m.EventsSince = b.at
		if !f.Started.IsZero() && f.Started.After(b.at) {
			m.EventsSince = f.Started
		}
		m.Events = make(map[string]uint64, len(d.Report.Events))
		for name, v := range d.Report.Events {
			if v >= b.events[name] {
				m.Events[name] = v - b.events[name]
			}
		}
		if d.Report.HasPressure && b.pressure {
			some := seconds(d.Report.PressureSomeUS, b.some)
			full := seconds(d.Report.PressureFullUS, b.full)
			m.PressureSomeSeconds, m.PressureFullSeconds = &some, &full
		}
	}
	k.base[d.Program] = baselineOf(d.Report, d.At)
	return m
}

func seconds(now, then uint64) float64 {
	if now < then {
		return 0
	}
	return float64(now-then) / 1e6
}

// Run writes queued records until ctx is done, then writes what is left
// in the queue without waiting for output any more, and returns nil.
func (k *Keeper) Run(ctx context.Context) error {
	for {
		select {
		case j := <-k.queue:
			k.write(ctx, j)
		case <-ctx.Done():
			for {
				select {
				case j := <-k.queue:
					k.write(ctx, j)
				default:
					return nil
				}
			}
		}
	}
}

func (k *Keeper) write(ctx context.Context, j job) {
	if k.cfg.Host != nil {
		h, err := k.cfg.Host()
		if err != nil {
			k.cfg.Logger.Debug("reading host memory for a death record", "err", err)
		}
		j.rec.Host = h
	}
	if j.output != nil {
		t := time.NewTimer(k.cfg.OutputWait)
		select {
		case <-j.output.OutputDone():
		case <-t.C:
			k.cfg.Logger.Debug("death record taken before the output ended", "program", j.rec.Program, "generation", j.rec.Generation)
		case <-ctx.Done():
		}
		t.Stop()
		j.rec.Output = j.output.Tail()
	}
	if k.cfg.Store == nil {
		data, err := json.Marshal(j.rec)
		if err != nil {
			k.cfg.Logger.Warn("encoding death record", "program", j.rec.Program, "err", err)
			return
		}
		if k.cfg.Written != nil {
			k.cfg.Written(j.rec, "", append(data, '\n'))
		}
		return
	}
	if j.rec.PID != 0 && k.cfg.Store.Has(j.rec.Program, j.rec.Generation, j.rec.PID) {
		// Reported again by a respawnd that took over from one that
		// recorded it (and ran its hook) but died before saving its state.
		k.cfg.Logger.Debug("death already recorded", "program", j.rec.Program, "generation", j.rec.Generation, "pid", j.rec.PID)
		return
	}
	data, err := k.cfg.Store.Write(j.rec)
	if err != nil {
		k.cfg.Logger.Warn("writing death record", "program", j.rec.Program, "err", err)
		return
	}
	if k.cfg.Written != nil {
		k.cfg.Written(j.rec, k.cfg.Store.Path(j.rec.ID), data)
	}
}

// newID names the record of f: by the store, or in the store's form when
// there is none.
func (k *Keeper) newID(f Final) string {
	if k.cfg.Store != nil {
		return k.cfg.Store.NewID(f.Program, f.Generation, f.Died)
	}
	return fmt.Sprintf("%019d-%d-%s", max(f.Died.UnixNano(), 0), f.Generation, f.Program)
}
