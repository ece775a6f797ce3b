package supervisor

import (
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/respawnd/respawnd/oom"
	"golang.org/x/sys/unix"
)

// Exit is the account of how one instance of a program ended.
type Exit struct {
	Program    string    `json:"program"`
	Generation uint64    `json:"generation"`
	PID        int       `json:"pid,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Time       time.Time `json:"time"`
	Reason     Reason    `json:"reason"`
	// Signal is set for ReasonSignal and ReasonOOMKill.
	Signal syscall.Signal `json:"-"`
	// Code is the exit code for ReasonExitError and ReasonExitSuccess.
	Code int `json:"-"`
	// Err says what failed for ReasonStartFailure, and what the failed
	// check saw for ReasonHealthCheck and ReasonWatchdog.
	Err string `json:"error,omitempty"`
	// OOM holds the kernel's report when it is known.
	OOM *oom.Kill `json:"oom,omitempty"`
	// Settled is when the reason became final.
	Settled time.Time `json:"-"`
	// PeakMemory is the instance's peak memory in bytes, when known, and
	// PeakMemorySource says what it is: PeakFromCgroup, the peak of the
	// program's cgroup over the instance's life (every process of it, page
	// cache included), or PeakFromOOMReport, the victim's resident set in
	// the kernel's OOM report.
	PeakMemory       int64  `json:"peak_memory_bytes,omitempty"`
	PeakMemorySource string `json:"peak_memory_source,omitempty"`
	// Recycle says respawnd was stopping the instance for its memory
	// (memory.recycle) when the OOM killer got to it first: the reason is
	// oom_kill, the stop came too late.
	Recycle bool `json:"recycle,omitempty"`
	// Stopped says respawnd stopped the instance (an operator's stop or
	// restart, a reload that removed or changed the program, respawnd's
	// own shutdown): the exit was asked for. A recycle is not a stop.
	Stopped bool `json:"stopped,omitempty"`
}

// The sources of Exit.PeakMemory.
const (
	PeakFromCgroup    = "cgroup"
	PeakFromOOMReport = "oom_report"
)

// SignalName is the exit's signal as "SIGKILL", or "" when there is none.
func (e Exit) SignalName() string {
	if e.Signal == 0 {
		return ""
	}
	return unix.SignalName(e.Signal)
}

// Describe is a short human account, e.g. "signal SIGKILL" or "exit_error 3".
func (e Exit) Describe() string {
	switch e.Reason {
	case ReasonSignal, ReasonOOMKill:
		if e.Signal != 0 {
			return e.Reason.String() + " " + e.SignalName()
		}
	case ReasonExitError, ReasonExitSuccess:
		return e.Reason.String() + " " + strconv.Itoa(e.Code)
	case ReasonStartFailure:
		return e.Reason.String() + ": " + e.Err
	}
	return e.Reason.String()
}

// Event is one entry of the recent-events ring: an exit of a program's main
// process, an OOM kill of one of its workers, or a host OOM kill of a
// process that belongs to no program (Program empty).
type Event struct {
	Time time.Time `json:"time"`
	// Kind is empty for exits and OOM kills; otherwise it names a memory
	// watchdog event (EventRecycle, EventHeld, EventReleased, EventOOMLoop,
	// EventRecycleLoop, "memory_warn", "memory_warn_cleared").
	Kind    string `json:"kind,omitempty"`
	Program string `json:"program,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Comm    string `json:"comm,omitempty"`
	Reason  Reason `json:"reason"`
	Signal  string `json:"signal,omitempty"`
	// ExitCode is set for exit_error and exit_success.
	ExitCode *int `json:"exit_code,omitempty"`
	// Worker is true for an OOM kill of a process other than the main one.
	Worker bool `json:"worker,omitempty"`
	// Recycle is true for an oom_kill during a recycle's stop.
	Recycle bool   `json:"recycle,omitempty"`
	Error   string `json:"error,omitempty"`
	// OOM holds the kernel's report when it is known.
	OOM *oom.Kill `json:"oom,omitempty"`
	// RSSBytes is the process's resident set just before death, from the
	// kernel's OOM report, when there is one.
	RSSBytes int64 `json:"rss_bytes,omitempty"`
	// MemoryBytes and ThresholdBytes are the measure and the threshold of
	// a memory watchdog event.
	MemoryBytes    int64 `json:"memory_bytes,omitempty"`
	ThresholdBytes int64 `json:"threshold_bytes,omitempty"`
}

// eventRing keeps the most recent events. Safe for concurrent use.
type eventRing struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
	subs map[chan Event]struct{}
}

func newEventRing(size int) *eventRing {
	return &eventRing{buf: make([]Event, size), subs: map[chan Event]struct{}{}}
}

func (r *eventRing) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	for c := range r.subs {
		select {
		case c <- e:
		default: // a slow follower loses events rather than stalling a program loop
		}
	}
}

// list returns the events newest first.
func (r *eventRing) list() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	// An exit whose event waited for the kernel's report goes in after
	// later ones: order by the time of the death, not of the filing.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

func (r *eventRing) subscribe() (<-chan Event, func()) {
	// Buffered so that a follower reading at its own pace misses nothing in
	// ordinary bursts.
	c := make(chan Event, 64)
	r.mu.Lock()
	r.subs[c] = struct{}{}
	r.mu.Unlock()
	return c, func() {
		r.mu.Lock()
		delete(r.subs, c)
		r.mu.Unlock()
	}
}

func exitEvent(e Exit) Event {
	ev := Event{Time: e.Time, Program: e.Program, PID: e.PID, Reason: e.Reason, Recycle: e.Recycle, Signal: e.SignalName(), Error: e.Err, OOM: e.OOM}
	if e.Reason == ReasonExitError || e.Reason == ReasonExitSuccess {
		c := e.Code
		ev.ExitCode = &c
	}
	if e.OOM != nil {
		ev.Comm = e.OOM.Comm
		if rss := killRSS(*e.OOM); rss > 0 {
			ev.RSSBytes = rss
		}
	}
	return ev
}

// fillPeakFromReport takes the peak from the kernel's OOM report when the
// cgroup gave none.
func (e *Exit) fillPeakFromReport() {
	if e.PeakMemorySource != "" || e.OOM == nil {
		return
	}
	if rss := killRSS(*e.OOM); rss > 0 {
		e.PeakMemory, e.PeakMemorySource = rss, PeakFromOOMReport
	}
}

func killRSS(k oom.Kill) int64 {
	var n int64
	for _, p := range []*int64{k.AnonRSSBytes, k.FileRSSBytes, k.ShmemRSSBytes} {
		if p != nil {
			n += *p
		}
	}
	return n
}
