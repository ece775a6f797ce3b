package api

import (
	"time"

	"github.com/respawnd/respawnd/oom"
	"github.com/respawnd/respawnd/postmortem"
	"github.com/respawnd/respawnd/supervisor"
)

// ProgramsResponse is the body of GET /api/v1/programs.
type ProgramsResponse struct {
	Programs []Program `json:"programs"`
	// Orphans are running instances of programs that are no longer in the
	// configuration, kept at start-up because respawnd runs with
	// --state.orphans=keep; absent when there are none.
	Orphans []Orphan `json:"orphans,omitempty"`
}

// Orphan is a running instance of a program that is no longer configured.
// respawnd does not supervise it (no restart, no stop) and lists it until
// it is gone or its program is configured again, which then takes it
// over.
type Orphan struct {
	Name       string `json:"name"`
	PID        int    `json:"pid"`
	Generation uint64 `json:"generation"`
}

// Program is one program's status as the API reports it. Values that are
// not known are null rather than absent.
type Program struct {
	Name string `json:"name"`
	// State is one of starting, running, backoff, stopping, stopped,
	// exited, fatal.
	State string `json:"state"`
	// PID is the main process's pid, 0 when none runs.
	PID        int    `json:"pid"`
	Generation uint64 `json:"generation"`
	// StartTime is when the current process started; null when none runs.
	StartTime *time.Time `json:"start_time"`
	Restarts  uint64     `json:"restarts"`
	// LastExit is the most recent exit; null before the first.
	LastExit *Exit `json:"last_exit"`
	// MemoryRSSBytes is the resident set of the program's process tree.
	MemoryRSSBytes *uint64 `json:"memory_rss_bytes"`
	// MemoryUsageBytes and MemoryLimitBytes are the program's memory cgroup
	// usage and hard limit; null without a cgroup (or a limit).
	MemoryUsageBytes *uint64 `json:"memory_usage_bytes"`
	MemoryLimitBytes *uint64 `json:"memory_limit_bytes"`
	// BackoffSeconds is the delay before the next start, 0 when none.
	BackoffSeconds float64 `json:"backoff_seconds"`
	// NextStart is when a program in backoff starts again.
	NextStart *time.Time `json:"next_start,omitempty"`
	// Cgroup is the program's memory cgroup path, when it has one.
	Cgroup string `json:"cgroup,omitempty"`
	// Error says why a program is fatal or failing to start.
	Error string `json:"error,omitempty"`
	// Ready is true once the instance is ready: it sent READY=1
	// (notify.ready) or passed a health check (health). A running program
	// with neither is ready; one that does not run is not.
	Ready bool `json:"ready"`
	// Status is the program's last sd_notify STATUS= text.
	Status string `json:"status,omitempty"`
	// NotifyMainPID is the last MAINPID= the program reported.
	NotifyMainPID int `json:"notify_main_pid,omitempty"`
	// NotifyState is "reloading" (RELOADING=1 until READY=1) or "stopping"
	// (STOPPING=1), as the program said over sd_notify.
	NotifyState string `json:"notify_state,omitempty"`
	// NotifyErrno is the last ERRNO= the program reported.
	NotifyErrno int `json:"notify_errno,omitempty"`
	// WatchdogLastPing is when the program last sent WATCHDOG=1 (or its
	// watchdog started), for a program with notify.watchdog.
	WatchdogLastPing *time.Time `json:"watchdog_last_ping,omitempty"`
}

// Exit is how one instance of a program ended.
type Exit struct {
	Time       time.Time `json:"time"`
	PID        int       `json:"pid"`
	Generation uint64    `json:"generation"`
	// Reason is one of oom_kill, signal, exit_error, exit_success,
	// start_failure, memory_recycle, health_check, watchdog, unknown.
	Reason string `json:"reason"`
	// Recycle is true for an oom_kill that came while respawnd was
	// stopping the instance for its memory (memory.recycle).
	Recycle bool `json:"recycle,omitempty"`
	// Signal is the signal's name (SIGKILL) for signal and oom_kill.
	Signal string `json:"signal,omitempty"`
	// ExitCode is set for exit_error and exit_success.
	ExitCode *int `json:"exit_code,omitempty"`
	// Error says what failed for start_failure.
	Error string `json:"error,omitempty"`
	// OOM is the kernel's report of an OOM kill, when known.
	OOM *oom.Kill `json:"oom,omitempty"`
	// PeakMemoryBytes is the instance's peak memory, when known, and
	// PeakMemorySource says which figure it is: "cgroup", the peak of the
	// program's cgroup over the instance's life (all its processes, page
	// cache included), or "oom_report", the victim's resident set (anon,
	// file and shmem) in the kernel's OOM report.
	PeakMemoryBytes  *int64 `json:"peak_memory_bytes,omitempty"`
	PeakMemorySource string `json:"peak_memory_source,omitempty"`
}

// EventsResponse is the body of GET /api/v1/events: the most recent events,
// newest first. With ?follow=true the endpoint instead streams one Event per
// line (newline-delimited JSON), oldest first, and keeps streaming new ones.
// A stream that has been silent for a while carries an empty line, a
// heartbeat that readers skip (NDJSON parsers may ignore empty lines).
type EventsResponse struct {
	Events []Event `json:"events"`
}

// Event is a crash of a program's main process, an OOM kill of one of its
// workers, or a host OOM kill of a process that belongs to no program.
type Event struct {
	Time time.Time `json:"time"`
	// Program is null for a host OOM kill.
	Program *string `json:"program"`
	PID     int     `json:"pid"`
	// Comm is the process name, when the kernel reported it.
	Comm string `json:"comm"`
	// Reason is one of oom_kill, signal, exit_error, exit_success,
	// start_failure, memory_recycle, health_check, watchdog, unknown for an exit or an OOM kill;
	// for a memory watchdog event it is its Kind.
	Reason string `json:"reason"`
	// Kind is set for memory watchdog events: memory_warn,
	// memory_warn_cleared, memory_recycle (the decision to recycle),
	// memory_recycle_loop, held_for_memory, released, oom_loop.
	Kind string `json:"kind,omitempty"`
	// Recycle is true for an oom_kill that came during a recycle's stop.
	Recycle bool `json:"recycle,omitempty"`
	// MemoryBytes and ThresholdBytes are a watchdog event's measure and
	// threshold.
	MemoryBytes    *int64 `json:"memory_bytes,omitempty"`
	ThresholdBytes *int64 `json:"threshold_bytes,omitempty"`
	// Signal is the signal's name for signal and oom_kill, else "".
	Signal string `json:"signal"`
	// ExitCode is set for exit_error and exit_success, else null.
	ExitCode *int `json:"exit_code"`
	// Worker is true for an OOM kill of a process other than the main one.
	Worker bool   `json:"worker"`
	Error  string `json:"error,omitempty"`
	// OOM is the kernel's report, null when not known.
	OOM *oom.Kill `json:"oom"`
	// RSSBytes is the resident set just before death, null when not known.
	RSSBytes *int64 `json:"rss_bytes"`
}

// ControlResponse is the body of a successful
// POST /api/v1/programs/{name}/{start,stop,restart}.
type ControlResponse struct {
	Program string `json:"program"`
	Action  string `json:"action"`
}

// ErrorResponse is the body of every API error.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Memory is what is known of a program's memory; nil fields are unknown.
type Memory struct {
	RSSBytes, UsageBytes, LimitBytes *uint64
}

// NewProgram turns a supervisor status into the API's Program, given what
// is known of its memory and the time now (for the backoff).
func NewProgram(st supervisor.Status, mem Memory, now time.Time) Program {
	p := Program{
		Name:             st.Name,
		State:            st.State.String(),
		PID:              st.PID,
		Generation:       st.Generation,
		Restarts:         st.Restarts,
		MemoryRSSBytes:   mem.RSSBytes,
		MemoryUsageBytes: mem.UsageBytes,
		MemoryLimitBytes: mem.LimitBytes,
		Cgroup:           st.Cgroup,
		Error:            st.Error,
		Ready:            st.Ready,
		Status:           st.NotifyStatus,
		NotifyMainPID:    st.NotifyMainPID,
		NotifyState:      st.NotifyState,
		NotifyErrno:      st.NotifyErrno,
	}
	if !st.WatchdogLastPing.IsZero() {
		t := st.WatchdogLastPing
		p.WatchdogLastPing = &t
	}
	if st.PID != 0 && !st.Started.IsZero() {
		t := st.Started
		p.StartTime = &t
	}
	if (st.State == supervisor.StateBackoff || st.State == supervisor.StateOOMLoop) && !st.NextStart.IsZero() {
		t := st.NextStart
		p.NextStart = &t
		if d := t.Sub(now); d > 0 {
			p.BackoffSeconds = d.Seconds()
		}
	}
	if e := st.LastExit; e != nil {
		x := &Exit{Time: e.Time, PID: e.PID, Generation: e.Generation, Reason: e.Reason.String(), Recycle: e.Recycle, Signal: e.SignalName(), Error: e.Err, OOM: e.OOM}
		if e.Reason == supervisor.ReasonExitError || e.Reason == supervisor.ReasonExitSuccess {
			c := e.Code
			x.ExitCode = &c
		}
		if e.PeakMemorySource != "" {
			v := e.PeakMemory
			x.PeakMemoryBytes, x.PeakMemorySource = &v, e.PeakMemorySource
		}
		p.LastExit = x
	}
	return p
}

// NewEvent turns a supervisor event into the API's Event.
func NewEvent(e supervisor.Event) Event {
	out := Event{Time: e.Time, PID: e.PID, Comm: e.Comm, Reason: e.Reason.String(), Recycle: e.Recycle, Signal: e.Signal, ExitCode: e.ExitCode, Worker: e.Worker, Error: e.Error, OOM: e.OOM}
	if e.Kind != "" {
		out.Reason, out.Kind = e.Kind, e.Kind
		if e.MemoryBytes > 0 {
			v := e.MemoryBytes
			out.MemoryBytes = &v
		}
		if e.ThresholdBytes > 0 {
			v := e.ThresholdBytes
			out.ThresholdBytes = &v
		}
	}
	if e.Program != "" {
		p := e.Program
		out.Program = &p
	}
	if e.RSSBytes > 0 {
		v := e.RSSBytes
		out.RSSBytes = &v
	}
	return out
}

// Death is one death record: the program's exit with its reason, the
// kernel's OOM report, its cgroup's memory at death, the host's memory and
// its last output lines. The fields are documented on postmortem.Record.
type Death = postmortem.Record

// DeathsResponse is the body of GET /api/v1/programs/{name}/deaths: the
// program's death records, newest first.
type DeathsResponse struct {
	Deaths []Death `json:"deaths"`
	// Truncated says older records were left out to keep the answer under
	// 8 MiB (records with long output lines); ask for them by ID.
	Truncated bool `json:"truncated,omitempty"`
}
