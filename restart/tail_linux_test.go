package restart_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/respawnd/respawnd/restart"
)

// TestTail checks the tail of a real program: both streams, in order,
// with the time each line was read, capped by count, complete once
// OutputDone is closed, and read concurrently while the program writes.
func TestTail(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newTestLauncher(restart.LauncherConfig{TailLines: 50})
	p := start(t, l, restart.Command{Name: "tail", Argv: localHelperArgv("lines", "t", "3000", "10")})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, line := range p.Tail() {
				if !strings.HasPrefix(line.Text, "t ") {
					t.Errorf("torn line %q", line.Text)
					return
				}
			}
		}
	}()
	waitDone(t, p)
	waitOutput(t, p)
	close(stop)
	wg.Wait()
	tail := p.Tail()
	if len(tail) != 100 {
		t.Fatalf("%d lines, want 50 of each stream", len(tail))
	}
	seen := map[string]bool{}
	var last [2]int
	for i, line := range tail {
		var n int
		if _, err := fmt.Sscanf(line.Text, "t %d xxxxxxxxxx", &n); err != nil {
			t.Fatalf("line %q: %v", line.Text, err)
		}
		want := "stdout"
		if n%2 == 1 {
			want = "stderr"
		}
		if line.Stream != want {
			t.Errorf("line %q on %s, want %s", line.Text, line.Stream, want)
		}
		s := n % 2
		if n < 2900 || (last[s] != 0 && n != last[s]+2) {
			t.Errorf("line %d is %q after %d: not the last 50 of its stream in order", i, line.Text, last[s])
		}
		last[s] = n
		if i > 0 && line.Time.Before(tail[i-1].Time) {
			t.Errorf("line %d read at %v, before line %d at %v", i, line.Time, i-1, tail[i-1].Time)
		}
		if line.Time.Before(p.StartTime().Add(-1e9)) || line.Time.IsZero() {
			t.Errorf("line %d time %v", i, line.Time)
		}
		seen[line.Stream] = true
	}
	if !seen["stdout"] || !seen["stderr"] {
		t.Errorf("streams seen %v", seen)
	}
}

// TestTailBytesAndOff checks TailBytes and that TailLines < 0 keeps none,
// and that a line cut at 64 KiB is kept cut.
func TestTailBytesAndOff(t *testing.T) {
	verifyNoLeaks(t)
	l, _ := newTestLauncher(restart.LauncherConfig{TailBytes: 1000})
	p := start(t, l, restart.Command{Name: "tail", Argv: localHelperArgv("seq", "100", "90")})
	waitDone(t, p)
	waitOutput(t, p)
	tail := p.Tail()
	size := 0
	for _, line := range tail {
		size += len(line.Text)
	}
	if size > 1000 || len(tail) != 10 || tail[9].Text != "99 "+strings.Repeat("x", 90) {
		t.Errorf("%d lines of %d bytes, want the last 10 (93 bytes each)", len(tail), size)
	}

	l, _ = newTestLauncher(restart.LauncherConfig{})
	p = start(t, l, restart.Command{Name: "long", Argv: localHelperArgv("long", "100000")})
	waitDone(t, p)
	waitOutput(t, p)
	tail = p.Tail()
	if len(tail) != 1 || len(tail[0].Text) != 100000-64<<10 {
		t.Errorf("tail of an overlong line: %d lines, want the last piece", len(tail))
	}

	l, _ = newTestLauncher(restart.LauncherConfig{TailLines: -1})
	p = start(t, l, restart.Command{Name: "off", Argv: localHelperArgv("seq", "10", "1")})
	waitDone(t, p)
	waitOutput(t, p)
	if tail := p.Tail(); len(tail) != 0 {
		t.Errorf("tail %v with TailLines -1", tail)
	}
}
