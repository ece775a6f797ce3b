package restart_test

import (
	"testing"
	"time"

	"github.com/respawnd/respawnd/restart"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// run is one instance: it starts at Start (seconds after epoch) and exits
// after Ran seconds; Want is the decision for that exit.
type run struct {
	Start, Ran float64
	Want       restart.Decision
}

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func fixedRand(v float64) func() float64 { return func() float64 { return v } }

func TestPolicy(t *testing.T) {
	noJitter := restart.PolicyConfig{
		Initial: time.Second, Max: 10 * time.Second, Multiplier: 2, Jitter: -1,
		ResetAfter: 30 * time.Second, Burst: -1,
	}
	withJitter := noJitter
	withJitter.Jitter = 0.5
	limitGiveUp := noJitter
	limitGiveUp.Burst, limitGiveUp.Interval, limitGiveUp.GiveUp = 3, 60*time.Second, true
	limitKeepGoing := limitGiveUp
	limitKeepGoing.GiveUp = false

	tests := []struct {
		name string
		cfg  restart.PolicyConfig
		rand float64
		runs []run
	}{
		{
			name: "exponential backoff capped at max",
			cfg:  noJitter,
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{1, 1, restart.Decision{Delay: sec(1), Attempt: 2}},
				{3, 1, restart.Decision{Delay: sec(2), Attempt: 3}},
				{6, 1, restart.Decision{Delay: sec(4), Attempt: 4}},
				{11, 1, restart.Decision{Delay: sec(8), Attempt: 5}},
				{20, 1, restart.Decision{Delay: sec(10), Attempt: 6}},
				{31, 1, restart.Decision{Delay: sec(10), Attempt: 7}},
			},
		},
		{
			name: "a long run resets the streak",
			cfg:  noJitter,
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{1, 1, restart.Decision{Delay: sec(1), Attempt: 2}},
				{3, 1, restart.Decision{Delay: sec(2), Attempt: 3}},
				{6, 30, restart.Decision{Delay: 0, Attempt: 1}},
				{36, 29, restart.Decision{Delay: sec(1), Attempt: 2}},
			},
		},
		{
			name: "jitter low",
			cfg:  withJitter,
			rand: 0,
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{1, 1, restart.Decision{Delay: sec(0.5), Attempt: 2}},
				{3, 1, restart.Decision{Delay: sec(1), Attempt: 3}},
			},
		},
		{
			name: "jitter high never exceeds max",
			cfg:  withJitter,
			rand: 0.75, // a factor of 1.25
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{1, 1, restart.Decision{Delay: sec(1.25), Attempt: 2}},
				{3, 1, restart.Decision{Delay: sec(2.5), Attempt: 3}},
				{6, 1, restart.Decision{Delay: sec(5), Attempt: 4}},
				{11, 1, restart.Decision{Delay: sec(10), Attempt: 5}},
				{20, 1, restart.Decision{Delay: sec(10), Attempt: 6}},
			},
		},
		{
			name: "burst limit gives up",
			cfg:  limitGiveUp,
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{1, 1, restart.Decision{Delay: sec(1), Attempt: 2}},
				{3, 1, restart.Decision{GiveUp: true, Limited: true, Attempt: 3}},
			},
		},
		{
			name: "burst limit counts long runs too",
			cfg:  limitGiveUp,
			runs: []run{
				{0, 30, restart.Decision{Delay: 0, Attempt: 1}},
				{30, 1, restart.Decision{Delay: sec(1), Attempt: 2}},
				{32, 1, restart.Decision{GiveUp: true, Limited: true, Attempt: 3}},
			},
		},
		{
			name: "starts spread wider than the interval never trip",
			cfg:  limitGiveUp,
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{31, 1, restart.Decision{Delay: sec(1), Attempt: 2}},
				{62, 1, restart.Decision{Delay: sec(2), Attempt: 3}},
				{93, 1, restart.Decision{Delay: sec(4), Attempt: 4}},
			},
		},
		{
			name: "burst limit without give-up stays at max while exceeded",
			cfg:  limitKeepGoing,
			runs: []run{
				{0, 1, restart.Decision{Delay: 0, Attempt: 1}},
				{1, 1, restart.Decision{Delay: sec(1), Attempt: 2}},
				{3, 1, restart.Decision{Delay: sec(10), Limited: true, Attempt: 3}},
				{14, 1, restart.Decision{Delay: sec(10), Limited: true, Attempt: 4}},
				{25, 1, restart.Decision{Delay: sec(10), Limited: true, Attempt: 5}},
				// The oldest of the last three starts (14s) is 64s old: the
				// window holds only two, so plain backoff (capped) again.
				{70, 8, restart.Decision{Delay: sec(10), Attempt: 6}},
				// A long run resets the streak; the window holds two starts.
				{88, 40, restart.Decision{Delay: 0, Attempt: 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Rand = fixedRand(tt.rand)
			p := restart.NewPolicy(cfg)
			for i, r := range tt.runs {
				start := epoch.Add(sec(r.Start))
				p.Started(start)
				got := p.Exited(start, start.Add(sec(r.Ran)))
				if got != r.Want {
					t.Fatalf("run %d (start %vs, ran %vs): got %+v, want %+v", i, r.Start, r.Ran, got, r.Want)
				}
			}
		})
	}
}

func TestPolicyReset(t *testing.T) {
	p := restart.NewPolicy(restart.PolicyConfig{Jitter: -1, Burst: 2, GiveUp: true})
	for i := range 3 {
		start := epoch.Add(sec(float64(i)))
		p.Started(start)
		p.Exited(start, start.Add(time.Millisecond))
	}
	p.Reset()
	start := epoch.Add(sec(3))
	p.Started(start)
	if got, want := p.Exited(start, start.Add(time.Millisecond)), (restart.Decision{Attempt: 1}); got != want {
		t.Fatalf("after Reset: got %+v, want %+v", got, want)
	}
}

func TestPolicyDefaults(t *testing.T) {
	p := restart.NewPolicy(restart.PolicyConfig{Rand: fixedRand(0.5)})
	var got []time.Duration
	now := epoch
	for range 12 {
		p.Started(now)
		d := p.Exited(now, now.Add(time.Millisecond))
		if d.Limited {
			t.Fatalf("limited with default burst after starts spread over %v", now.Sub(epoch))
		}
		got = append(got, d.Delay)
		// Five starts 16s apart never fit one 60s window.
		now = now.Add(time.Millisecond + d.Delay + 16*time.Second)
	}
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("delay %d = %v, want %v", i, got[i], w)
		}
	}
	if last := got[len(got)-1]; last != restart.DefaultMax {
		t.Errorf("last delay = %v, want the default max %v", last, restart.DefaultMax)
	}
}

func TestPolicyJitterSpread(t *testing.T) {
	cfg := restart.PolicyConfig{Initial: time.Second, Max: time.Minute, Jitter: 0.2, Burst: -1}
	for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.999} {
		cfg.Rand = fixedRand(r)
		p := restart.NewPolicy(cfg)
		p.Exited(epoch, epoch)
		d := p.Exited(epoch, epoch).Delay
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Errorf("rand %v: delay %v outside 1s ±20%%", r, d)
		}
	}
}

// A delay that has reached Max is capped before the jitter, so that delays
// at Max keep their spread below it: programs that crash together do not
// restart together once their backoff is at its cap.
func TestPolicyJitterAtMax(t *testing.T) {
	cfg := restart.PolicyConfig{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2, Burst: -1}
	for _, tc := range []struct {
		rand float64
		want time.Duration
	}{
		{0, 8 * time.Second},      // 10s × 0.8
		{0.25, 9 * time.Second},   // 10s × 0.9
		{0.5, 10 * time.Second},   // 10s × 1.0
		{0.75, 10 * time.Second},  // 10s × 1.1, capped
		{0.999, 10 * time.Second}, // capped
	} {
		cfg.Rand = fixedRand(tc.rand)
		p := restart.NewPolicy(cfg)
		var d restart.Decision
		// The 10th consecutive crash: 1s × 2^8 = 256s before the cap.
		for range 10 {
			d = p.Exited(epoch, epoch)
		}
		if d.Attempt != 10 || d.Delay != tc.want {
			t.Errorf("rand %v: %+v, want attempt 10 with delay %v", tc.rand, d, tc.want)
		}
	}
}
