package health

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

// fakeClock is a Config.Now and Config.After that move only when the test
// fires the wait a watch asked for.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration  // every d After was called with
	ch    []chan time.Time // the channel of each wait
	fired int              // waits fired so far
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.waits = append(f.waits, d)
	f.ch = append(f.ch, ch)
	return ch
}

// asked returns the waits asked for so far.
func (f *fakeClock) asked() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.waits)
}

// fire moves the clock to the end of the next wait and ends it.
func (f *fakeClock) fire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(f.waits[f.fired])
	f.ch[f.fired] <- f.now
	f.fired++
}

// listen returns the address of a TCP listener that accepts and closes
// every connection until the test ends.
func listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestSchedule(t *testing.T) {
	verifyNoLeaks(t)
	addr := listen(t)
	for _, tt := range []struct {
		period, first time.Duration
	}{
		{10 * time.Second, time.Second},
		{200 * time.Millisecond, 200 * time.Millisecond},
	} {
		t.Run(tt.period.String(), func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
			rec := &recorder{}
			c, _ := startChecker(t, Config{Now: clock.Now, After: clock.After}, rec)
			h := config.Health{TCP: &config.TCPProbe{Address: addr}, Period: tt.period, Timeout: tt.period / 2, Failures: 3}
			t.Cleanup(c.Watch("prog", h, restart.Command{}, rec.notify))

			want := []time.Duration{tt.first}
			for probes := 1; probes <= 3; probes++ {
				testenv.Eventually(t, "the next wait", func() bool { return len(clock.asked()) == len(want) })
				if got := clock.asked(); !slices.Equal(got, want) {
					t.Fatalf("waits %v, want %v", got, want)
				}
				clock.fire()
				testenv.Eventually(t, "the probe", func() bool { return len(rec.getResults()) == probes })
				// The fake clock does not move during a probe: the next
				// starts a whole period later.
				want = append(want, tt.period)
			}
			if got := rec.kinds(); !slices.Equal(got, []EventKind{Ready}) {
				t.Errorf("events %v, want one Ready", got)
			}
		})
	}
}

// switchServer answers its probes with the status that answer returns for
// the request's number (from 1), or hangs (until the client gives up) when
// answer returns 0. It records when each request arrived.
type switchServer struct {
	*httptest.Server
	answer func(n int) int
	mu     sync.Mutex
	times  []time.Time
}

func newSwitchServer(t *testing.T, answer func(n int) int) *switchServer {
	t.Helper()
	s := &switchServer{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.times = append(s.times, time.Now())
		n := len(s.times)
		s.mu.Unlock()
		code := s.answer(n)
		if code == 0 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *switchServer) requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.times)
}

func TestUnhealthyAfterFailures(t *testing.T) {
	verifyNoLeaks(t)
	const (
		period   = 200 * time.Millisecond
		timeout  = 100 * time.Millisecond
		failures = 3
		good     = 3 // answers before the server hangs
	)
	srv := newSwitchServer(t, func(n int) int {
		if n <= good {
			return http.StatusOK
		}
		return 0
	})
	rec := &recorder{}
	c, _ := startChecker(t, Config{}, rec)
	h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: period, Timeout: timeout, Failures: failures}
	t.Cleanup(c.Watch("prog", h, restart.Command{}, rec.notify))

	testenv.Eventually(t, "Unhealthy", func() bool { _, ok := rec.first(Unhealthy); return ok })
	ev, _ := rec.first(Unhealthy)
	if ev.Failures != failures || ev.Reason != "timed out after 100ms" {
		t.Errorf("Unhealthy %+v, want %d failures, timed out after 100ms", ev.Event, failures)
	}
	if got := rec.kinds(); !slices.Equal(got, []EventKind{Ready, Unhealthy}) {
		t.Errorf("events %v, want Ready then Unhealthy", got)
	}
	// The server hung from the request after the last good one, which
	// came a period after it: Unhealthy cannot come before failures
	// periods have passed. (How soon after it comes is a timing, measured
	// by cmd/respawnd's BenchmarkHangRestart; the schedule itself is
	// pinned on a fake clock by TestSchedule.)
	hang := srv.requests()[good-1]
	if took := ev.at.Sub(hang); took < failures*period {
		t.Errorf("Unhealthy %s after the hang, before %d periods of %s", took, failures, period)
	}
	want := []Result{ResultSuccess, ResultSuccess, ResultSuccess, ResultTimeout, ResultTimeout, ResultTimeout}
	if got := rec.getResults(); !slices.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	// The watch ended with Unhealthy: no probe after it.
	n := len(srv.requests())
	time.Sleep(3 * period)
	if m := len(srv.requests()); m != n {
		t.Errorf("%d probes after Unhealthy", m-n)
	}
	// Probes came a period apart: never two at once.
	reqs := srv.requests()
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].Sub(reqs[i-1]); gap < period/2 {
			t.Errorf("probes %d and %d only %s apart", i-1, i, gap)
		}
	}
}

func TestStartupGrace(t *testing.T) {
	verifyNoLeaks(t)
	const period = 100 * time.Millisecond
	t.Run("failures before the first pass do not count", func(t *testing.T) {
		var start time.Time
		var mu sync.Mutex
		passed := false
		// 503 until 5 periods after the watch started; then one 200; then
		// 503 again.
		srv := newSwitchServer(t, func(int) int {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(start) < 5*period || passed {
				return http.StatusServiceUnavailable
			}
			passed = true
			return http.StatusOK
		})
		rec := &recorder{}
		c, _ := startChecker(t, Config{}, rec)
		// The grace is long: the failure after the pass must fall inside
		// it however slow the machine.
		h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: period, Timeout: period, Failures: 1, StartupGrace: 100 * period}
		mu.Lock()
		start = time.Now()
		mu.Unlock()
		t.Cleanup(c.Watch("prog", h, restart.Command{}, rec.notify))

		testenv.Eventually(t, "Unhealthy", func() bool { _, ok := rec.first(Unhealthy); return ok })
		if got := rec.kinds(); !slices.Equal(got, []EventKind{Ready, Unhealthy}) {
			t.Fatalf("events %v, want Ready then Unhealthy", got)
		}
		ready, _ := rec.first(Ready)
		if ready.at.Sub(start) < 5*period {
			t.Errorf("Ready %s after the start, before the server answered", ready.at.Sub(start))
		}
		// The failure after the pass counted although the grace had not
		// ended.
		ev, _ := rec.first(Unhealthy)
		if ev.at.Sub(start) >= 100*period {
			t.Errorf("Unhealthy %s after the start, not inside the grace of %s: the test proves nothing", ev.at.Sub(start), 100*period)
		}
		if ev.Failures != 1 || ev.Reason != "GET "+srv.URL+": status 503" {
			t.Errorf("Unhealthy %+v, want 1 failure, status 503", ev.Event)
		}
		if got := len(rec.getResults()); got < 5 {
			t.Errorf("%d probes, want at least 4 failures in the grace and the pass", got)
		}
	})
	t.Run("without a grace the first failure counts", func(t *testing.T) {
		srv := newSwitchServer(t, func(int) int { return http.StatusServiceUnavailable })
		rec := &recorder{}
		c, _ := startChecker(t, Config{}, rec)
		h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: period, Timeout: period, Failures: 1}
		t.Cleanup(c.Watch("prog", h, restart.Command{}, rec.notify))
		testenv.Eventually(t, "Unhealthy", func() bool { _, ok := rec.first(Unhealthy); return ok })
		if got := rec.getResults(); len(got) != 1 {
			t.Errorf("results %v, want a single failure", got)
		}
	})
}

func TestNewWatchStartsFromZero(t *testing.T) {
	verifyNoLeaks(t)
	const period = 100 * time.Millisecond
	var flapping atomic.Bool
	var n atomic.Int64
	srv := newSwitchServer(t, func(int) int {
		// Failing at first; once flapping, the new instance's probes
		// fail, pass, fail, pass…
		if !flapping.Load() || n.Add(1)%2 == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	c, _ := startChecker(t, Config{}, nil)
	h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: period, Timeout: period, Failures: 2}

	first := &recorder{}
	stop := c.Watch("prog", h, restart.Command{}, first.notify)
	testenv.Eventually(t, "Unhealthy", func() bool { _, ok := first.first(Unhealthy); return ok })
	stop()
	if ev, _ := first.first(Unhealthy); ev.Failures != 2 {
		t.Fatalf("Unhealthy %+v, want 2 failures", ev.Event)
	}

	flapping.Store(true)
	before := len(srv.requests())
	second := &recorder{}
	t.Cleanup(c.Watch("prog", h, restart.Command{}, second.notify))
	testenv.Eventually(t, "six probes of the new instance", func() bool { return len(srv.requests())-before >= 6 })
	if got := second.kinds(); !slices.Equal(got, []EventKind{Ready}) {
		t.Errorf("events of the new instance %v, want Ready alone: its first failure followed the old instance's two", got)
	}
}

func TestStopCancelsProbeInFlight(t *testing.T) {
	verifyNoLeaks(t)
	entered := make(chan struct{})
	cancelled := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(waitTimeout):
			cancelled <- false
		}
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{}
	c, _ := startChecker(t, Config{}, rec)
	h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Failures: 1}
	// A probe that never times out on its own within the test.
	h.Period, h.Timeout = time.Hour, time.Hour
	h.StartupGrace = 0
	stop := c.Watch("prog", h, restart.Command{}, rec.notify)
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("no probe came")
	}
	stop()
	stop() // a second stop is harmless
	if !<-cancelled {
		t.Error("the probe in flight was not cancelled by stop")
	}
	time.Sleep(100 * time.Millisecond)
	if ev, res := rec.getEvents(), rec.getResults(); len(ev) != 0 || len(res) != 0 {
		t.Errorf("after stop: events %v, results %v, want none", ev, res)
	}
}

func TestNoEventsAfterStop(t *testing.T) {
	verifyNoLeaks(t)
	srv := newSwitchServer(t, func(int) int { return http.StatusOK })
	const watches = 40
	var stopped [watches]atomic.Bool
	var late atomic.Int64
	report := func(program string) {
		var i int
		if _, err := fmt.Sscanf(program, "p%d", &i); err != nil {
			t.Errorf("program %q", program)
			return
		}
		if stopped[i].Load() {
			late.Add(1)
		}
	}
	c, _ := startChecker(t, Config{Observe: func(program string, _ Result, _ time.Duration) { report(program) }}, nil)
	h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: config.MinHealthPeriod, Timeout: config.MinHealthPeriod, Failures: 1}
	// Watches stopped at moments spread around their first probe: whatever
	// was in flight, no event and no observation after stop returned.
	var wg sync.WaitGroup
	for i := range watches {
		program := fmt.Sprintf("p%d", i)
		stop := c.Watch(program, h, restart.Command{}, func(Event) { report(program) })
		wg.Go(func() {
			time.Sleep(time.Duration(60+3*i) * time.Millisecond)
			stop()
			stopped[i].Store(true)
		})
	}
	wg.Wait()
	time.Sleep(2 * config.MinHealthPeriod)
	if n := late.Load(); n != 0 {
		t.Errorf("%d reports after stop returned", n)
	}
	if n := len(srv.requests()); n == 0 {
		t.Error("no probe ran before the stops: the test proves nothing")
	}
}

func TestWatchAfterRun(t *testing.T) {
	verifyNoLeaks(t)
	addr := listen(t)
	rec := &recorder{}
	c, end := startChecker(t, Config{}, rec)
	end()
	stop := c.Watch("prog", config.Health{TCP: &config.TCPProbe{Address: addr}, Period: config.MinHealthPeriod, Timeout: config.MinHealthPeriod, Failures: 1}, restart.Command{}, rec.notify)
	defer stop()
	time.Sleep(3 * config.MinHealthPeriod)
	if ev, res := rec.getEvents(), rec.getResults(); len(ev) != 0 || len(res) != 0 {
		t.Errorf("a watch after Run returned reported events %v, results %v", ev, res)
	}
}

func TestNoGoroutineLeft(t *testing.T) {
	addr := listen(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, end := startChecker(t, Config{}, nil)
	h := config.Health{TCP: &config.TCPProbe{Address: addr}, Period: config.MinHealthPeriod, Timeout: config.MinHealthPeriod, Failures: 1}
	var stops []func()
	for range 50 {
		stops = append(stops, c.Watch("prog", h, restart.Command{}, nil))
	}
	time.Sleep(3 * config.MinHealthPeriod)
	for _, stop := range stops[:25] {
		stop()
	}
	end() // ends the other 25
}

func TestLogs(t *testing.T) {
	verifyNoLeaks(t)
	const period = 100 * time.Millisecond
	// pass, fail, fail, pass, pass, pass, then fail for good.
	srv := newSwitchServer(t, func(n int) int {
		if n == 2 || n == 3 || n >= 7 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	out := &testenv.Buffer{}
	logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rec := &recorder{}
	c, _ := startChecker(t, Config{Logger: logger}, rec)
	h := config.Health{HTTP: &config.HTTPProbe{URL: srv.URL}, Period: period, Timeout: period, Failures: 3}
	t.Cleanup(c.Watch("prog", h, restart.Command{}, rec.notify))
	testenv.Eventually(t, "Unhealthy", func() bool { _, ok := rec.first(Unhealthy); return ok })

	type record struct {
		Level, Msg, Component, Program, Probe, Result, Reason string
		Consecutive, Failures, FailedBefore                   int
	}
	var got []record
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		num := func(k string) int { f, _ := m[k].(float64); return int(f) }
		got = append(got, record{str("level"), str("msg"), str("component"), str("program"), str("probe"), str("result"), str("reason"),
			num("consecutive"), num("failures"), num("failed_before")})
	}
	status := "GET " + srv.URL + ": status 500"
	want := []record{
		{"WARN", "health check failed", "health", "prog", "http", "failure", status, 1, 3, 0},
		{"WARN", "health check failed", "health", "prog", "http", "failure", status, 2, 3, 0},
		{"INFO", "health check passed again", "health", "prog", "http", "", "", 0, 0, 2},
		{"WARN", "health check failed", "health", "prog", "http", "failure", status, 1, 3, 0},
		{"WARN", "health check failed", "health", "prog", "http", "failure", status, 2, 3, 0},
		{"WARN", "health check failed", "health", "prog", "http", "failure", status, 3, 3, 0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("logs:\n%+v\nwant\n%+v", got, want)
	}
}
