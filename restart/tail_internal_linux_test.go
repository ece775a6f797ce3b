package restart

import (
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

// TestTailIdleHoldsNothing checks that the tail of a program that writes
// nothing costs no buffer.
func TestTailIdleHoldsNothing(t *testing.T) {
	l := NewLauncher(LauncherConfig{})
	p, err := l.Start(Command{Name: "idle", Argv: testenv.HelperArgv("exit-after", "10ms", "0")})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	<-p.OutputDone()
	if p.tail.Load() != nil {
		t.Error("a program that wrote nothing has a tail")
	}
	if tail := p.Tail(); len(tail) != 0 {
		t.Errorf("tail %v", tail)
	}
}
