package restart

import (
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
	if got, want := p.starts[3], t0.Add(999*time.Second); !got.Equal(want) {
		t.Fatalf("newest start %v, want %v", got, want)
	}
}
