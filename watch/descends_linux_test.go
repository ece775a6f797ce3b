package watch

import (
	"os"
	"os/exec"
	"testing"
)

// Descends follows real parents: a grandchild descends from this test
// process, this test process does not descend from its child, and an
// unrelated process (pid 1's) does not descend from it either.
func TestDescendsRealTree(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var grandchild int
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			grandchild = grandchild*10 + int(c-'0')
		}
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(grandchild); err == nil {
			_ = p.Kill()
		}
	})
	me := os.Getpid()
	if !s.Descends(grandchild, me) || !s.Descends(grandchild, cmd.Process.Pid) || !s.Descends(me, me) {
		t.Errorf("grandchild %d does not descend from %d or its parent %d", grandchild, me, cmd.Process.Pid)
	}
	if s.Descends(me, cmd.Process.Pid) {
		t.Error("a parent descends from its child")
	}
	if s.Descends(1, me) || s.Descends(0, me) || s.Descends(me, 0) {
		t.Error("unrelated or invalid pids descend")
	}
}
