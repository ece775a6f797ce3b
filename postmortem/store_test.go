package postmortem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openDir(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func newStore(t *testing.T, dir string, max int64) *Store {
	t.Helper()
	s, err := OpenStore(openDir(t, dir), max)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func write(t *testing.T, s *Store, program string, gen uint64, at time.Time, text string) *Record {
	t.Helper()
	r := &Record{ID: s.NewID(program, gen, at), Program: program, Generation: gen, Died: at, Reason: "exit_error",
		Output: []Line{{Time: at, Stream: "stdout", Text: text}}, OutputKept: true}
	if _, err := s.Write(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStoreWriteReadReopen(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, 0)
	a := write(t, s, "api", 1, t0, "first")
	write(t, s, "web", 1, t0.Add(time.Second), "other")
	c := write(t, s, "api", 2, t0.Add(2*time.Second), "second")

	got, err := s.Get(a.ID)
	if err != nil || got.Output[0].Text != "first" || got.Program != "api" {
		t.Fatalf("Get(%s) = %+v, %v", a.ID, got, err)
	}
	fi, err := os.Stat(filepath.Join(dir, a.ID+".json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v, %v; want mode 0600", fi, err)
	}

	// A new Store over the same directory (respawnd restarted) finds them.
	s2 := newStore(t, dir, 0)
	last, err := s2.Last("api", 0)
	if err != nil || len(last) != 2 || last[0].ID != c.ID || last[1].ID != a.ID {
		t.Fatalf("Last(api) after reopen = %v, %v; want [%s %s]", ids(last), err, c.ID, a.ID)
	}
	if last, _ := s2.Last("api", 1); len(last) != 1 || last[0].ID != c.ID {
		t.Fatalf("Last(api, 1) = %v", ids(last))
	}
	if last, _ := s2.Last("nope", 5); len(last) != 0 {
		t.Fatalf("Last(nope) = %v", ids(last))
	}
}

func ids(rs []*Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestStoreIDsAreUniqueAndOrdered(t *testing.T) {
	s := newStore(t, t.TempDir(), 0)
	a := s.NewID("x", 1, t0)
	b := s.NewID("x", 1, t0) // same nanosecond
	c := s.NewID("y", 1, t0.Add(-time.Hour))
	if a == b || !(a < b) || !(b < c) {
		t.Fatalf("ids %s %s %s: want distinct and increasing", a, b, c)
	}
}

func TestStoreCapDropsOldestButKeepsEachProgramsFirst(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, 0)
	one := write(t, s, "quiet", 1, t0, strings.Repeat("q", 100))
	size := int64(0)
	if _, b := s.Size(); b > 0 {
		size = b
	}
	// Cap: room for about five records.
	s = newStore(t, dir, 5*size+size/2)
	quietFirst := write(t, s, "quiet", 2, t0.Add(time.Second), strings.Repeat("q", 100))
	var loud []*Record
	for i := range 20 {
		loud = append(loud, write(t, s, "loud", uint64(i+1), t0.Add(time.Duration(i+2)*time.Second), strings.Repeat("l", 100)))
	}
	n, total := s.Size()
	if total > 5*size+size/2 {
		t.Fatalf("total %d bytes over the cap %d", total, 5*size+size/2)
	}
	// The first record of each program since this Store opened survives a
	// crash loop of another program; the older one from before may go.
	if _, err := s.Get(quietFirst.ID); err != nil {
		t.Fatalf("quiet's first record since start was dropped: %v", err)
	}
	if _, err := s.Get(loud[0].ID); err != nil {
		t.Fatalf("loud's first record since start was dropped: %v", err)
	}
	if _, err := s.Get(one.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oldest record: err %v, want ErrNotFound", err)
	}
	if _, err := s.Get(loud[19].ID); err != nil {
		t.Fatalf("newest record dropped: %v", err)
	}
	if _, err := s.Get(loud[5].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an old loud record survived: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != n {
		t.Fatalf("%d files on disk, index says %d", len(files), n)
	}
}

func TestStoreRefusesBadIDs(t *testing.T) {
	s := newStore(t, t.TempDir(), 0)
	for _, id := range []string{"", "../secret", "1796198835297755370-4-hog/../../x", "x.json", "1796198835297755370-4-HOG", "179619883529775537-4-hog"} {
		if _, err := s.Get(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Get(%q) = %v, want ErrBadID", id, err)
		}
	}
	if _, err := s.Write(&Record{ID: "../x", Program: "x"}); !errors.Is(err, ErrBadID) {
		t.Errorf("Write with a bad id: %v", err)
	}
	// The ID names another program than the record: refused.
	if _, err := s.Write(&Record{ID: s.NewID("a", 1, t0), Program: "b"}); !errors.Is(err, ErrBadID) {
		t.Errorf("Write with another program's id: %v", err)
	}
}

// A record file swapped for a symbolic link (to a file root can read and
// the asker cannot) is never followed, by Get or at start-up.
func TestStoreRefusesPlantedFiles(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, 0)
	r := write(t, s, "api", 1, t0, "x")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(`{"id":"`+r.ID+`","program":"api"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, r.ID+".json")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(r.ID); err == nil {
		t.Fatal("Get followed a symbolic link")
	}
	// A hard link to another file is refused too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(r.ID); err == nil {
		t.Fatal("Get read a file with two links")
	}
	planted := "1796198835297755370-9-api"
	if err := os.Symlink(secret, filepath.Join(dir, planted+".json")); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, dir, 0)
	if _, err := s2.Get(planted); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a planted symbolic link was indexed: %v", err)
	}
}

func TestStoreRemovesLeftoverTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".1796198835297755370-1-x.tmp")
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	newStore(t, dir, 0)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temporary file: %v", err)
	}
}
