package restart

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func tailTexts(r *tailRing) []string {
	var out []string
	for _, l := range r.lines(nil, "stdout") {
		out = append(out, l.Text)
	}
	return out
}

func TestTailRingCapsByCount(t *testing.T) {
	r := tailRing{maxLines: 5, maxBytes: 1 << 10}
	t0 := time.Unix(1000, 0)
	for i := range 12 {
		r.add(t0.Add(time.Duration(i)*time.Millisecond), []byte(fmt.Sprintf("line %d", i)))
	}
	if got, want := strings.Join(tailTexts(&r), ","), "line 7,line 8,line 9,line 10,line 11"; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
	ls := r.lines(nil, "stdout")
	for i, l := range ls {
		if want := t0.Add(time.Duration(7+i) * time.Millisecond); !l.Time.Equal(want) {
			t.Errorf("line %d time %v, want %v", i, l.Time, want)
		}
	}
}

func TestTailRingCapsByBytes(t *testing.T) {
	r := tailRing{maxLines: 200, maxBytes: 100}
	now := time.Unix(1, 0)
	for i := range 50 {
		r.add(now, []byte(fmt.Sprintf("%02d-%s", i, strings.Repeat("y", 17)))) // 20 bytes
	}
	got := tailTexts(&r)
	if len(got) != 5 || got[0][:2] != "45" || got[4][:2] != "49" {
		t.Errorf("kept %q, want lines 45 to 49 (100 bytes)", got)
	}
	if r.used != 100 || len(r.data) != 100 {
		t.Errorf("used %d of %d bytes, want 100 of 100", r.used, len(r.data))
	}
	// A line longer than the cap is kept cut, alone.
	r.add(now, []byte(strings.Repeat("z", 300)))
	if got := tailTexts(&r); len(got) != 1 || got[0] != strings.Repeat("z", 100) {
		t.Errorf("kept %d lines after an overlong one, want it alone and cut", len(got))
	}
	// Lines wrap around the end of the buffer and come back whole.
	for i := range 7 {
		r.add(now, []byte(fmt.Sprintf("w%d-%s", i, strings.Repeat("q", 27)))) // 30 bytes
	}
	got = tailTexts(&r)
	if len(got) != 3 || got[2] != "w6-"+strings.Repeat("q", 27) || got[0] != "w4-"+strings.Repeat("q", 27) {
		t.Errorf("after wrapping kept %q", got)
	}
	r.add(now, nil)
	if got := tailTexts(&r); got[len(got)-1] != "" {
		t.Errorf("empty line kept as %q", got[len(got)-1])
	}
}

// TestTailRingNoAllocation checks that an unused ring holds nothing and a
// full one allocates nothing per line.
func TestTailRingNoAllocation(t *testing.T) {
	r := tailRing{maxLines: defaultTailLines, maxBytes: defaultTailBytes}
	if r.data != nil || r.ents != nil {
		t.Fatal("a new ring holds buffers")
	}
	line := []byte(strings.Repeat("a", 100))
	now := time.Now()
	for range 1000 {
		r.add(now, line)
	}
	if n := testing.AllocsPerRun(1000, func() { r.add(now, line) }); n != 0 {
		t.Errorf("%v allocations per line in the steady state, want 0", n)
	}
	if len(r.ents) != defaultTailLines || len(r.data) > defaultTailBytes {
		t.Errorf("ring grew to %d entries and %d bytes", len(r.ents), len(r.data))
	}
	// A program that said one short line holds a few hundred bytes.
	var small tailRing
	small.maxLines, small.maxBytes = defaultTailLines, defaultTailBytes
	small.add(now, []byte("started"))
	if len(small.data) > tailMinBytes || len(small.ents) > tailMinLines {
		t.Errorf("one line grew the ring to %d bytes and %d entries", len(small.data), len(small.ents))
	}
}

func TestMergeByTime(t *testing.T) {
	at := func(ms int, s string) TailLine { return TailLine{Time: time.UnixMilli(int64(ms)), Text: s} }
	ls := []TailLine{at(1, "a"), at(3, "c"), at(5, "e"), at(2, "b"), at(3, "d"), at(9, "f")}
	var got []string
	for _, l := range mergeByTime(ls, 3) {
		got = append(got, l.Text)
	}
	if strings.Join(got, "") != "abcdef" {
		t.Errorf("merged %v", got)
	}
}

func BenchmarkTailAdd(b *testing.B) {
	r := tailRing{maxLines: defaultTailLines, maxBytes: defaultTailBytes}
	line := []byte(strings.Repeat("a", 100))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r.add(now, line)
	}
}
