package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/respawnd/respawnd/metrics"
	"github.com/respawnd/respawnd/supervisor"
)

// A running program that is not ready yet (its first health check or its
// READY=1 still to come) is not up; its watchdog's last ping is exported.
func TestReadinessAndWatchdog(t *testing.T) {
	src := &fakeSource{
		programs: []metrics.ProgramSample{
			{Status: supervisor.Status{Name: "booting", State: supervisor.StateRunning, PID: 7}},
			{Status: supervisor.Status{Name: "notified", State: supervisor.StateStarting, PID: 8}},
			{Status: supervisor.Status{Name: "pinging", State: supervisor.StateRunning, Ready: true, PID: 9, WatchdogLastPing: time.Unix(1234, 500e6)}},
		},
		sources: map[string]bool{},
	}
	c := metrics.NewCollector(metrics.CollectorConfig{Source: src, Now: func() time.Time { return time.Unix(2000, 0) }})
	want := `
# HELP respawnd_program_ready Whether the program is ready (1) or not (0): it sent READY=1 (notify.ready) or passed a health check (health); a running program with neither is ready.
# TYPE respawnd_program_ready gauge
respawnd_program_ready{program="booting"} 0
respawnd_program_ready{program="notified"} 0
respawnd_program_ready{program="pinging"} 1
# HELP respawnd_program_up Whether the program's main process is running and ready (1) or not (0); a program with a health check or notify.ready is ready once it passed a check or sent READY=1.
# TYPE respawnd_program_up gauge
respawnd_program_up{program="booting"} 0
respawnd_program_up{program="notified"} 0
respawnd_program_up{program="pinging"} 1
# HELP respawnd_program_watchdog_last_ping_timestamp_seconds Time the program last sent WATCHDOG=1 (or its watchdog started) since the Unix epoch in seconds, for a program with notify.watchdog.
# TYPE respawnd_program_watchdog_last_ping_timestamp_seconds gauge
respawnd_program_watchdog_last_ping_timestamp_seconds{program="pinging"} 1234.5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "respawnd_program_ready", "respawnd_program_up", "respawnd_program_watchdog_last_ping_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

func TestHealthCheckAndNotifyCounters(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.SetPrograms([]string{"api", "db"})
	rec.SetLiveness([]string{"api", "gone"}, []string{"db"})
	rec.HealthCheck("api", "failure", 30*time.Millisecond)
	rec.HealthCheck("api", "timeout", time.Second)
	rec.HealthCheck("api", "bogus", time.Second) // dropped
	rec.HealthCheck("gone", "success", time.Second)
	rec.NotifyRejected("db", "foreign_sender")
	rec.NotifyRejected("db", "bogus")
	want := `
# HELP respawnd_program_health_checks_total Health checks of a program, by result (success, failure, timeout); the series of a program with a health section start at 0.
# TYPE respawnd_program_health_checks_total counter
respawnd_program_health_checks_total{program="api",result="failure"} 1
respawnd_program_health_checks_total{program="api",result="success"} 0
respawnd_program_health_checks_total{program="api",result="timeout"} 1
# HELP respawnd_notify_rejected_total sd_notify datagrams dropped, by reason (foreign_sender: not from the program's processes; foreign_mainpid: MAINPID outside the program; no_credentials, malformed, truncated).
# TYPE respawnd_notify_rejected_total counter
respawnd_notify_rejected_total{program="db",reason="foreign_mainpid"} 0
respawnd_notify_rejected_total{program="db",reason="foreign_sender"} 1
respawnd_notify_rejected_total{program="db",reason="malformed"} 0
respawnd_notify_rejected_total{program="db",reason="no_credentials"} 0
respawnd_notify_rejected_total{program="db",reason="truncated"} 0
`
	if err := testutil.CollectAndCompare(rec, strings.NewReader(want), "respawnd_program_health_checks_total", "respawnd_notify_rejected_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(rec, "respawnd_program_health_check_duration_seconds"); n != 1 {
		t.Errorf("%d duration histograms, want api's", n)
	}
	// A reload that drops api drops its series.
	rec.SetPrograms([]string{"db"})
	if n := testutil.CollectAndCount(rec, "respawnd_program_health_checks_total", "respawnd_program_health_check_duration_seconds"); n != 0 {
		t.Errorf("%d health series left after api was removed", n)
	}
}

func TestRestartWait(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.SetPrograms([]string{"api"})
	rec.RestartWaited("api", 0)
	rec.RestartWaited("api", 45*time.Second)
	rec.RestartWaited("gone", time.Second)
	want := `
# HELP respawnd_restart_wait_seconds Time a program waited on purpose between a death and its restart: the crash backoff, a token of the global restart bucket, a hold until the host's memory recovered; 0 for a restart at once. A program's series appear with its first restart.
# TYPE respawnd_restart_wait_seconds histogram
respawnd_restart_wait_seconds_bucket{program="api",le="0"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="0.1"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="0.3"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="1"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="3"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="10"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="30"} 1
respawnd_restart_wait_seconds_bucket{program="api",le="100"} 2
respawnd_restart_wait_seconds_bucket{program="api",le="300"} 2
respawnd_restart_wait_seconds_bucket{program="api",le="1000"} 2
respawnd_restart_wait_seconds_bucket{program="api",le="3600"} 2
respawnd_restart_wait_seconds_bucket{program="api",le="+Inf"} 2
respawnd_restart_wait_seconds_sum{program="api"} 45
respawnd_restart_wait_seconds_count{program="api"} 2
`
	if err := testutil.CollectAndCompare(rec, strings.NewReader(want), "respawnd_restart_wait_seconds"); err != nil {
		t.Error(err)
	}
}
