package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
)

// statusCheck is the harness's log handler. At each line that tells of a
// program's state (a state change, an exit, an adoption) it reads the
// program's status, as an API client would right after reading the line,
// and reports a status that does not show yet what the line says.
type statusCheck struct {
	h     *harness
	attrs []slog.Attr
	errs  *checkErrors
}

type checkErrors struct {
	mu   sync.Mutex
	errs []string
}

func (c *checkErrors) add(s string) {
	c.mu.Lock()
	c.errs = append(c.errs, s)
	c.mu.Unlock()
}

func (c *checkErrors) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *statusCheck) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs returns a handler of its own, by which Handle knows the
// incarnation of a program that logs through it.
func (c *statusCheck) WithAttrs(as []slog.Attr) slog.Handler {
	return &statusCheck{h: c.h, attrs: append(append([]slog.Attr(nil), c.attrs...), as...), errs: c.errs}
}

func (c *statusCheck) WithGroup(string) slog.Handler { return c }

func (c *statusCheck) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "exited", "instance died while respawnd was down", "state changed", "adopted running instance", "ready", "ready: first health check passed":
	default:
		return nil
	}
	// The incarnation that logs: one already removed from the
	// configuration has no status left to check.
	s := c.h.sup
	s.mu.Lock()
	var p *program
	for _, q := range s.programs {
		if q.log.Handler() == slog.Handler(c) {
			p = q
		}
	}
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	a := map[string]slog.Value{}
	for _, x := range c.attrs {
		a[x.Key] = x.Value
	}
	r.Attrs(func(x slog.Attr) bool {
		a[x.Key] = x.Value
		return true
	})
	if err := statusShows(p.status(), r.Message, a); err != "" {
		c.errs.add(fmt.Sprintf("%q logged (%v) before the status showed it: %s", r.Message, a, err))
	}
	return nil
}

// statusShows says what st does not show yet of the line msg with attrs a,
// or "".
func statusShows(st Status, msg string, a map[string]slog.Value) string {
	num := func(k string) uint64 {
		v, ok := a[k]
		if !ok {
			return 0
		}
		if v.Kind() == slog.KindUint64 {
			return v.Uint64()
		}
		return uint64(v.Int64())
	}
	switch msg {
	case "exited", "instance died while respawnd was down":
		e := st.LastExit
		switch {
		case e == nil:
			return "no last exit"
		case msg == "exited" && e.Generation > num("generation"):
			return "" // a later instance has exited since
		case uint64(e.PID) != num("pid") || e.Reason.String() != a["reason"].String():
			return fmt.Sprintf("last exit is pid %d, %s", e.PID, e.Reason)
		}
	case "ready", "ready: first health check passed":
		if !st.Ready || uint64(st.PID) != num("pid") {
			return fmt.Sprintf("ready %v, pid %d", st.Ready, st.PID)
		}
	case "state changed":
		if st.State.String() != a["state"].String() {
			return "state " + st.State.String()
		}
		if st.State == StateRunning && uint64(st.PID) != num("pid") {
			return fmt.Sprintf("pid %d", st.PID)
		}
	case "adopted running instance":
		if st.State != StateRunning || uint64(st.PID) != num("pid") {
			return fmt.Sprintf("%s, pid %d", st.State, st.PID)
		}
	}
	return ""
}

// The check itself finds a status that lags its line.
func TestStatusCheckFindsALaggingStatus(t *testing.T) {
	a := map[string]slog.Value{"pid": slog.IntValue(42), "generation": slog.Uint64Value(3), "reason": slog.StringValue("oom_kill"), "state": slog.StringValue("running")}
	for _, tc := range []struct {
		msg  string
		st   Status
		lags bool
	}{
		{"exited", Status{}, true},
		{"exited", Status{LastExit: &Exit{PID: 42, Generation: 3, Reason: ReasonMemoryRecycle}}, true},
		{"exited", Status{LastExit: &Exit{PID: 41, Generation: 2, Reason: ReasonOOMKill}}, true},
		{"exited", Status{LastExit: &Exit{PID: 42, Generation: 3, Reason: ReasonOOMKill}}, false},
		{"exited", Status{LastExit: &Exit{PID: 50, Generation: 4, Reason: ReasonSignal}}, false},
		{"state changed", Status{State: StateStopping}, true},
		{"state changed", Status{State: StateRunning, PID: 41}, true},
		{"state changed", Status{State: StateRunning, PID: 42}, false},
		{"adopted running instance", Status{State: StateStarting}, true},
		{"adopted running instance", Status{State: StateRunning, PID: 42}, false},
		{"instance died while respawnd was down", Status{LastExit: &Exit{PID: 50, Generation: 4, Reason: ReasonSignal}}, true},
		{"instance died while respawnd was down", Status{LastExit: &Exit{PID: 42, Generation: 3, Reason: ReasonOOMKill}}, false},
		{"ready", Status{State: StateRunning, PID: 42}, true},
		{"ready", Status{State: StateRunning, PID: 42, Ready: true}, false},
	} {
		if got := statusShows(tc.st, tc.msg, a) != ""; got != tc.lags {
			t.Errorf("%s with %+v: lagging %v, want %v", tc.msg, tc.st, got, tc.lags)
		}
	}
}
