package restart

import (
	"math"
	"testing"
	"time"
)

func TestPolicyMemoryBounded(t *testing.T) {
	p := NewPolicy(PolicyConfig{Burst: 4})
	t0 := time.Unix(0, 0)
	for i := range 1000 {
		p.Started(t0.Add(time.Duration(i) * time.Second))
	}
	if len(p.starts) != 4 || cap(p.starts) != 4 {
		t.Fatalf("kept %d start times (cap %d), want Burst = 4", len(p.starts), cap(p.starts))
	}
	if got, want := p.starts[(p.oldest+3)%4], t0.Add(999*time.Second); !got.Equal(want) {
		t.Fatalf("newest start %v, want %v", got, want)
	}
	if got, want := p.starts[p.oldest], t0.Add(996*time.Second); !got.Equal(want) {
		t.Fatalf("oldest start %v, want %v", got, want)
	}
}

// TestPolicyHistoryGrowsWithStarts checks that a huge Burst sets nothing
// aside: the history grows with the starts that happen, and never beyond
// Burst.
func TestPolicyHistoryGrowsWithStarts(t *testing.T) {
	p := NewPolicy(PolicyConfig{Burst: math.MaxInt})
	if p.starts != nil {
		t.Fatalf("NewPolicy allocated %d start times before any start", cap(p.starts))
	}
	t0 := time.Unix(0, 0)
	for i := range 100 {
		p.Started(t0.Add(time.Duration(i) * time.Second))
		if n := len(p.starts); n != i+1 || cap(p.starts) > max(4, 2*n) {
			t.Fatalf("after %d starts: len %d, cap %d", i+1, n, cap(p.starts))
		}
	}

	for _, burst := range []int{1, 5, 6, 1000} {
		p := NewPolicy(PolicyConfig{Burst: burst})
		for i := range 3 * burst {
			p.Started(t0.Add(time.Duration(i) * time.Second))
		}
		if len(p.starts) != burst || cap(p.starts) != burst {
			t.Errorf("Burst %d: kept %d start times (cap %d)", burst, len(p.starts), cap(p.starts))
		}
	}
}

// TestPolicyDelayNeverOverflows drives delay with the largest values a
// Duration and a float64 hold; every delay must lie in [0, Max].
func TestPolicyDelayNeverOverflows(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  PolicyConfig
	}{
		{"max duration", PolicyConfig{Initial: math.MaxInt64, Max: math.MaxInt64, Multiplier: 2}},
		{"max duration, huge multiplier", PolicyConfig{Initial: math.MaxInt64 / 2, Max: math.MaxInt64, Multiplier: math.MaxFloat64, Jitter: 1}},
		{"tiny initial, huge multiplier", PolicyConfig{Initial: 1, Max: math.MaxInt64, Multiplier: 1e300}},
		{"infinite multiplier", PolicyConfig{Initial: time.Second, Max: time.Hour, Multiplier: math.Inf(1)}},
		{"day, 100, full jitter", PolicyConfig{Initial: time.Millisecond, Max: 24 * time.Hour, Multiplier: 100, Jitter: 1}},
	} {
		for _, r := range []float64{0, 0.5, 0.999999, 1, 2, -1, math.NaN(), math.Inf(1)} {
			cfg := tt.cfg
			cfg.Rand = func() float64 { return r }
			p := NewPolicy(cfg)
			maxD := p.cfg.Max
			for n := range 2000 {
				if d := p.delay(n); d < 0 || d > maxD {
					t.Fatalf("%s, rand %v: delay(%d) = %v outside [0, %v]", tt.name, r, n, d, maxD)
				}
			}
		}
	}
}
