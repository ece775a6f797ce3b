package watch

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The rescan mechanism reads nothing but PID/stat under the procfs root, so
// it runs against the captured fixtures (testdata/proc) rewritten by the
// test: no root, no real processes, no real pid reuse.

// rescanFixture returns a rescan Watcher of a copy of the /proc fixtures,
// running until the test ends, and the root it reads.
func rescanFixture(t *testing.T) (*Watcher, string) {
	t.Helper()
	verifyNoLeaks(t)
	root := fixtureRoot(t)
	w, err := NewWatcher(Config{ProcRoot: root, Mechanism: MechanismRescan, RescanInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w, root
}

// watchFixture watches the fixture process pid under its recorded start
// time.
func watchFixture(t *testing.T, w *Watcher, root string, pid int) *Proc {
	t.Helper()
	sf := readFixtureStat(t, root, pid)
	p, err := w.Watch(Identity{PID: pid, StartTime: sf.StartTime})
	if err != nil {
		t.Fatalf("Watch(%d): %v", pid, err)
	}
	return p
}

func readFixtureStat(t *testing.T, root string, pid int) statFields {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	sf, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	return sf
}

// setStatFields rewrites fields of root/PID/stat (numbered as in proc(5):
// 3 is the state, 22 the start time, 52 the exit code), atomically, so that
// a rescan reads the old file or the new one, never a mix.
func setStatFields(t *testing.T, root string, pid int, fields map[int]string) {
	t.Helper()
	path := filepath.Join(root, strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.LastIndexByte(b, ')')
	fs := bytes.Fields(b[r+1:])
	for n, v := range fields {
		fs[n-3] = []byte(v)
	}
	out := append(append(append([]byte(nil), b[:r+1]...), ' '), bytes.Join(fs, []byte{' '})...)
	out = append(out, '\n')
	tmp := path + ".new"
	if err := os.WriteFile(tmp, out, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A pid now held by another process (another start time) is the watched
// process's death, with an unknown exit: the rescan mechanism must not take
// the newcomer for the process it watches.
func TestRescanReusedPIDIsDeath(t *testing.T) {
	w, root := rescanFixture(t)
	p := watchFixture(t, w, root, 7099)
	old := readFixtureStat(t, root, 7099).StartTime
	setStatFields(t, root, 7099, map[int]string{22: strconv.FormatUint(old+700, 10)})
	ex := waitDone(t, p)
	if ex.Known || ex.Time.IsZero() {
		t.Errorf("exit %+v, want unknown with a time", ex)
	}
	if w.Len() != 0 {
		t.Errorf("Len = %d after the death", w.Len())
	}
	if _, err := w.Watch(Identity{PID: 7099, StartTime: old}); !errors.Is(err, ErrPIDReused) {
		t.Errorf("Watch of the old identity = %v, want ErrPIDReused", err)
	}
}

// A zombie's stat holds its wait status: the rescan reports it.
func TestRescanZombieExitCode(t *testing.T) {
	w, root := rescanFixture(t)
	p := watchFixture(t, w, root, 7097)
	// Exit code 7 is wait status 7<<8.
	setStatFields(t, root, 7097, map[int]string{3: "Z", 52: strconv.Itoa(7 << 8)})
	if ex := waitDone(t, p); !ex.Known || ex.Signaled || ex.Code != 7 {
		t.Errorf("exit %+v, want exit code 7", ex)
	}
}

// A zombie from the start is accepted by Watch and reported at once
// (fixture 6929 exited with status 0).
func TestRescanWatchZombie(t *testing.T) {
	w, root := rescanFixture(t)
	p := watchFixture(t, w, root, 6929)
	if ex := waitDone(t, p); !ex.Known || ex.Signaled || ex.Code != 0 {
		t.Errorf("exit %+v, want exit code 0", ex)
	}
}

// A pid directory that disappears is a death of unknown status.
func TestRescanVanished(t *testing.T) {
	w, root := rescanFixture(t)
	p := watchFixture(t, w, root, 7100)
	if err := os.Remove(filepath.Join(root, "7100", "stat")); err != nil {
		t.Fatal(err)
	}
	if ex := waitDone(t, p); ex.Known {
		t.Errorf("exit %+v, want unknown", ex)
	}
}

// Watch checks the identity against the procfs it reads.
func TestRescanWatchChecksIdentity(t *testing.T) {
	w, root := rescanFixture(t)
	sf := readFixtureStat(t, root, 7099)
	if _, err := w.Watch(Identity{PID: 7099, StartTime: sf.StartTime - 1}); !errors.Is(err, ErrPIDReused) {
		t.Errorf("Watch with another start time = %v, want ErrPIDReused", err)
	}
	if _, err := w.Watch(Identity{PID: 6935, StartTime: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Watch of a pid without stat = %v, want ErrNotFound", err)
	}
	if w.Len() != 0 {
		t.Errorf("Len = %d", w.Len())
	}
}

// closed reports whether p's death was reported.
func closed(p *Proc) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// One rescan at a time, without Run, so that what a rescan did not report
// can be checked too: a death is reported only on evidence, never for a
// live process or a stat that cannot be read for another reason than the
// process's absence.
func TestRescanReportsOnlyDeaths(t *testing.T) {
	verifyNoLeaks(t)
	root := fixtureRoot(t)
	w, err := NewWatcher(Config{ProcRoot: root, Mechanism: MechanismRescan})
	if err != nil {
		t.Fatal(err)
	}
	defer w.stopAll()
	p := watchFixture(t, w, root, 7099)
	q := watchFixture(t, w, root, 7097)

	w.rescan()
	if closed(p) || closed(q) || w.Len() != 2 {
		t.Fatalf("live processes reported dead (%v, %v), Len %d", closed(p), closed(q), w.Len())
	}

	stat := filepath.Join(root, "7099", "stat")
	good, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stat, []byte("7099 (sleep) garbage\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	w.rescan()
	if closed(p) {
		t.Fatalf("an unparsable stat was taken for a death: %+v", p.Exit())
	}
	if err := os.WriteFile(stat, good, 0o444); err != nil {
		t.Fatal(err)
	}
	w.rescan()
	if closed(p) || closed(q) {
		t.Fatal("a live process reported dead")
	}

	if err := os.Remove(stat); err != nil {
		t.Fatal(err)
	}
	w.rescan()
	if !closed(p) || closed(q) || w.Len() != 1 {
		t.Fatalf("after 7099's stat vanished: done %v/%v, Len %d; want 7099 dead, 7097 alive", closed(p), closed(q), w.Len())
	}
	if ex := p.Exit(); ex.Known || ex.Time.IsZero() {
		t.Errorf("exit %+v, want unknown with a time", ex)
	}
}
