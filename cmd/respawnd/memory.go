package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/memwatch"
	"github.com/respawnd/respawnd/supervisor"
	"github.com/respawnd/respawnd/watch"
)

// memoryWatch is the memory watchdog's wiring: memwatch's Watcher as the
// supervisor's MemoryWatcher, and its Gate as the supervisor's Gate.
type memoryWatch struct {
	w    *memwatch.Watcher
	gate *memwatch.Gate
	scan *watch.Scanner // the process tree's RSS of instances without a cgroup

	mu sync.Mutex
	// notify routes the watcher's events by key: each watch gets a key of
	// its own, so that an event of a watch already removed finds no one.
	notify map[string]func(supervisor.MemoryEvent)
	next   uint64

	// trees are the instances judged by their process tree's RSS (no
	// cgroup of their own), by key, and rss the last pass over /proc for
	// all of them: every such watch is sampled once a second, and one pass
	// serves them all rather than one pass each.
	trees  map[string]int
	rss    map[int]uint64
	rssAt  time.Time
	rssErr error
}

// rssTTL is how long one pass over /proc serves the tree watches: less
// than the watcher's sampling interval, so each sample sees fresh figures.
const rssTTL = 500 * time.Millisecond

var (
	_ supervisor.MemoryWatcher = (*memoryWatch)(nil)
	_ supervisor.Gate          = (*memwatch.Gate)(nil)
)

// newMemoryWatch builds the watchdog. Either part may be unavailable (an
// error logged): the supervisor then runs without it.
func newMemoryWatch(procfs string, scan *watch.Scanner, logger *slog.Logger) *memoryWatch {
	m := &memoryWatch{scan: scan, notify: map[string]func(supervisor.MemoryEvent){}, trees: map[string]int{}}
	w, err := memwatch.New(memwatch.Config{Logger: logger, Notify: m.dispatch})
	if err != nil {
		logger.Warn("memory watchdog unavailable: memory.recycle and warn_above have no effect", "err", err)
	} else {
		m.w = w
	}
	g, err := memwatch.NewGate(memwatch.GateConfig{ProcRoot: procfs, Logger: logger})
	if err != nil {
		logger.Warn("memory gate unavailable: restarts after a host-wide OOM are not held", "err", err)
	} else {
		m.gate = g
	}
	return m
}

// configure hands the available parts to the supervisor.
func (m *memoryWatch) configure(c *supervisor.Config) {
	if m.w != nil {
		c.Memory = m
	}
	if m.gate != nil {
		c.Gate = m.gate
	}
}

// run runs the watcher and the gate until ctx is done.
func (m *memoryWatch) run(ctx context.Context, log *slog.Logger) {
	var wg sync.WaitGroup
	if m.w != nil {
		wg.Go(func() {
			if err := m.w.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("memory watchdog failed; memory.recycle and warn_above have no effect", "err", err)
			}
		})
	}
	if m.gate != nil {
		wg.Go(func() {
			if err := m.gate.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("memory gate failed; held restarts wait for their oom_hold_max", "err", err)
			}
		})
	}
	wg.Wait()
}

// Watch implements supervisor.MemoryWatcher.
func (m *memoryWatch) Watch(program string, g supervisor.Group, pid int, spec config.Program, notify func(supervisor.MemoryEvent)) (func(), error) {
	s, err := memorySpec(spec)
	if err != nil {
		return nil, err
	}
	var t memwatch.Target
	switch ga, ok := g.(groupAdapter); {
	case ok:
		t = memwatch.Target{Dir: ga.Dir(), V2: ga.v2}
	case g != nil:
		return nil, fmt.Errorf("watching memory of %s: cgroup of unknown kind %T", program, g)
	case m.scan == nil:
		return nil, fmt.Errorf("watching memory of %s: no cgroup of its own and no /proc to read its process tree", program)
	default:
		t = memwatch.Target{Sample: func() (uint64, error) { return m.treeRSS(pid) }}
		s.Measure = memwatch.RSS
	}
	m.mu.Lock()
	m.next++
	key := program + "/" + strconv.FormatUint(m.next, 10)
	m.notify[key] = notify
	if t.Sample != nil {
		m.trees[key] = pid
	}
	m.mu.Unlock()
	remove, err := m.w.Add(key, t, s)
	if err != nil {
		m.forget(key)
		return nil, fmt.Errorf("watching memory of %s: %w", program, err)
	}
	return func() { remove(); m.forget(key) }, nil
}

func (m *memoryWatch) forget(key string) {
	m.mu.Lock()
	delete(m.notify, key)
	delete(m.trees, key)
	m.mu.Unlock()
}

// treeRSS is the RSS of pid's process tree, from a pass over /proc for
// every tree watch at most rssTTL old.
func (m *memoryWatch) treeRSS(pid int) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rss[pid]; !ok || time.Since(m.rssAt) > rssTTL {
		roots := make([]int, 0, len(m.trees))
		for _, p := range m.trees {
			roots = append(roots, p)
		}
		m.rss, m.rssErr = m.scan.TreeRSS(roots...)
		m.rssAt = time.Now()
	}
	if m.rssErr != nil {
		return 0, m.rssErr
	}
	v, ok := m.rss[pid]
	if !ok {
		return 0, fmt.Errorf("pid %d is gone", pid)
	}
	return v, nil
}

// dispatch hands one of the watcher's events to the program it is for.
func (m *memoryWatch) dispatch(ev memwatch.Event) {
	m.mu.Lock()
	f := m.notify[ev.Program]
	m.mu.Unlock()
	if f == nil {
		return
	}
	out := supervisor.MemoryEvent{Measure: ev.Measure.String(), Value: ev.Value, Threshold: ev.Threshold}
	switch ev.Kind {
	case memwatch.Recycle:
		out.Kind = supervisor.MemoryRecycle
	case memwatch.Warn:
		out.Kind = supervisor.MemoryWarn
	case memwatch.WarnCleared:
		out.Kind = supervisor.MemoryWarnCleared
	default:
		return
	}
	f(out)
}

// memorySpec is what memwatch judges a program's memory against.
func memorySpec(p config.Program) (memwatch.Spec, error) {
	var s memwatch.Spec
	if above, ok := p.RecycleAbove(); ok {
		s.Above = uint64(above)
		s.For = p.Memory.Recycle.For
		if ms := p.Memory.Recycle.Measure; ms != "" {
			m, err := memwatch.ParseMeasure(string(ms))
			if err != nil {
				return s, err
			}
			s.Measure = m
		}
	}
	if warn, ok := p.WarnAbove(); ok {
		s.WarnAbove = uint64(warn)
	}
	return s, nil
}
