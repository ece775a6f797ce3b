package health

import (
	"testing"
	"time"
)

func TestTally(t *testing.T) {
	start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	type step struct {
		r     Result
		began time.Duration
		want  verdict
		count int // failures after the step
	}
	tests := []struct {
		name  string
		limit int
		grace time.Duration
		steps []step
	}{
		{
			name: "failures count to the limit", limit: 3,
			steps: []step{
				{ResultFailure, 1 * time.Second, verdict{counted: true}, 1},
				{ResultTimeout, 2 * time.Second, verdict{counted: true}, 2},
				{ResultFailure, 3 * time.Second, verdict{counted: true, unhealthy: true}, 3},
			},
		},
		{
			name: "a success resets the count and is ready once", limit: 3,
			steps: []step{
				{ResultFailure, 1 * time.Second, verdict{counted: true}, 1},
				{ResultFailure, 2 * time.Second, verdict{counted: true}, 2},
				{ResultSuccess, 3 * time.Second, verdict{ready: true, recovered: 2}, 0},
				{ResultFailure, 4 * time.Second, verdict{counted: true}, 1},
				{ResultSuccess, 5 * time.Second, verdict{recovered: 1}, 0},
				{ResultSuccess, 6 * time.Second, verdict{}, 0},
			},
		},
		{
			name: "failures in the grace do not count", limit: 1, grace: 10 * time.Second,
			steps: []step{
				{ResultFailure, 1 * time.Second, verdict{}, 0},
				{ResultTimeout, 9 * time.Second, verdict{}, 0},
				{ResultFailure, 10 * time.Second, verdict{counted: true, unhealthy: true}, 1},
			},
		},
		{
			name: "the first success ends the grace", limit: 2, grace: 10 * time.Second,
			steps: []step{
				{ResultFailure, 1 * time.Second, verdict{}, 0},
				{ResultSuccess, 2 * time.Second, verdict{ready: true}, 0},
				{ResultFailure, 3 * time.Second, verdict{counted: true}, 1},
				{ResultFailure, 4 * time.Second, verdict{counted: true, unhealthy: true}, 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTally(tt.limit, start, tt.grace)
			for i, s := range tt.steps {
				if got := tl.add(s.r, at(s.began)); got != s.want {
					t.Errorf("step %d (%s at %s): verdict %+v, want %+v", i, s.r, s.began, got, s.want)
				}
				if tl.failures != s.count {
					t.Errorf("step %d: count %d, want %d", i, tl.failures, s.count)
				}
			}
		})
	}
}

func TestNextStart(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	const period = 100 * time.Millisecond
	tests := []struct {
		name  string
		ended time.Time
		want  time.Time
	}{
		{"ended early: next boundary", ms(30), ms(100)},
		{"ended at the boundary", ms(100), ms(100)},
		{"overran the boundary: at once, in its place", ms(130), ms(100)},
		{"overran two boundaries: the one missed entirely is skipped", ms(250), ms(200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nextStart(t0, tt.ended, period)
			if !got.Equal(tt.want) {
				t.Errorf("nextStart = %s, want %s", got.Sub(t0), tt.want.Sub(t0))
			}
			if got.After(tt.ended) && got.Sub(tt.ended) > period {
				t.Errorf("next start %s more than a period after the end %s", got.Sub(t0), tt.ended.Sub(t0))
			}
		})
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{Ready: "ready", Unhealthy: "unhealthy", EventKind(7): "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}
