package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/memwatch"
	"github.com/respawnd/respawnd/postmortem"
	"github.com/respawnd/respawnd/restart"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

var (
	_ supervisor.Deaths = deathsAdapter{}
	_ api.DeathSource   = (*observer)(nil)
)

// newDeaths opens the death records in the state directory; written is
// called with each record once it is stored.
func newDeaths(sd *watch.StateDir, maxBytes int64, procfs string, written func(*postmortem.Record, string, []byte), logger *slog.Logger) (*postmortem.Keeper, error) {
	if sd == nil {
		return nil, errors.New("no state directory")
	}
	dir, err := sd.Subdir("deaths")
	if err != nil {
		return nil, err
	}
	store, err := postmortem.OpenStore(dir, maxBytes)
	if err != nil {
		_ = dir.Close()
		return nil, err
	}
	return postmortem.New(postmortem.Config{
		Store:       store,
		Logger:      logger,
		CorePattern: func() string { return corePattern(procfs) },
		Host:        func() (*postmortem.Host, error) { return hostMemory(procfs) },
		Written:     written,
	}), nil
}

// corePattern reads the kernel's core_pattern.
func corePattern(procfs string) string {
	b, err := os.ReadFile(filepath.Join(procfs, "sys", "kernel", "core_pattern"))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

func hostMemory(procfs string) (*postmortem.Host, error) {
	h, err := memwatch.ReadHost(procfs)
	if err != nil {
		return nil, err
	}
	out := &postmortem.Host{MemTotalBytes: h.MemTotal, MemAvailableBytes: h.MemAvailable}
	if h.Pressure != nil {
		some, full := h.Pressure.Some.Avg10, h.Pressure.Full.Avg10
		out.PressureSomeAvg10, out.PressureFullAvg10 = &some, &full
	}
	return out, nil
}

// deathsAdapter hands the supervisor's deaths to the keeper.
type deathsAdapter struct{ k *postmortem.Keeper }

func (a deathsAdapter) Died(program string, generation uint64, proc supervisor.Process, group supervisor.Group) {
	d := postmortem.Death{Program: program, Generation: generation, At: time.Now()}
	if p, ok := proc.(*restart.Process); ok {
		d.Output = tailOf{p}
		d.Core = p.Exit().Core
	}
	if ga, ok := group.(groupAdapter); ok {
		d.Cgroup = ga.Path()
		if r, err := ga.Report(); err == nil {
			d.Report = r
		}
	}
	a.k.Died(d)
}

func (a deathsAdapter) Settled(e supervisor.Exit) {
	f := postmortem.Final{
		Program: e.Program, Generation: e.Generation, PID: e.PID,
		Started: e.Started, Died: e.Time,
		Reason: e.Reason.String(), Signal: e.SignalName(),
		Error: e.Err, Recycle: e.Recycle, Stopped: e.Stopped, OOM: e.OOM,
		PeakBytes: e.PeakMemory, PeakSource: e.PeakMemorySource,
	}
	switch e.Reason {
	case supervisor.ReasonExitError, supervisor.ReasonExitSuccess:
		code := e.Code
		f.ExitCode = &code
	case supervisor.ReasonMemoryRecycle, supervisor.ReasonHealthCheck, supervisor.ReasonWatchdog:
		if e.Signal == 0 {
			code := e.Code
			f.ExitCode = &code
		}
	}
	if f.Died.IsZero() {
		f.Died = time.Now()
	}
	a.k.Settled(f)
}

// tailOf is a started instance's output for its death record.
type tailOf struct{ p *restart.Process }

func (t tailOf) OutputDone() <-chan struct{} { return t.p.OutputDone() }

func (t tailOf) Tail() []postmortem.Line {
	lines := t.p.Tail()
	out := make([]postmortem.Line, len(lines))
	for i, l := range lines {
		out[i] = postmortem.Line{Time: l.Time, Stream: l.Stream, Text: l.Text}
	}
	return out
}

// baseline gives the keeper a new program cgroup's counters.
func (k deathsAdapter) baseline(program string, g supervisor.Group) {
	if ga, ok := g.(groupAdapter); ok {
		if r, err := ga.Report(); err == nil {
			k.k.Baseline(program, r, time.Now())
		}
	}
}

// Deaths returns program's newest death records.
func (o *observer) Deaths(program string, limit int) ([]api.Death, error) {
	if o.deaths == nil {
		return nil, nil
	}
	recs, err := o.deaths.Last(program, limit)
	out := make([]api.Death, len(recs))
	for i, r := range recs {
		out[i] = *r
	}
	return out, err
}

// Death returns one death record.
func (o *observer) Death(id string) (api.Death, error) {
	if o.deaths == nil {
		return api.Death{}, fmt.Errorf("%w: %s", postmortem.ErrNotFound, id)
	}
	r, err := o.deaths.Get(id)
	if err != nil {
		return api.Death{}, err
	}
	return *r, nil
}
