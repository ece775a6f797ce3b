package memwatch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReadCgroup on files captured from real cgroups (testdata/README.md):
// the working set is usage − inactive_file as kubelet computes it, RSS is
// anon + mapped files, Anon is anon (v1: total_rss, THP included).
func TestReadCgroupFixtures(t *testing.T) {
	for _, c := range []struct {
		dir  string
		v2   bool
		want Sample
	}{
		// total_inactive_file 0: the grower's cgroup holds no page cache.
		{"v1-6.18-grower", false, Sample{Usage: 25690112, WorkingSet: 25690112, RSS: 25182208, Anon: 25182208}},
		// 30355456 − 14901248 inactive file; 4653056 total_rss + 3678208
		// total_mapped_file.
		{"v1-6.18-own", false, Sample{Usage: 30355456, WorkingSet: 15454208, RSS: 8331264, Anon: 4653056}},
		// The VM's root file system is shmem, so no cgroup there has
		// inactive file pages: the working set is the usage.
		{"v2-6.1-grower", true, Sample{Usage: 25227264, WorkingSet: 25227264, RSS: 25169920, Anon: 25169920}},
		{"v2-6.1-own", true, Sample{Usage: 13266944, WorkingSet: 13266944, RSS: 12255232, Anon: 12255232}},
	} {
		t.Run(c.dir, func(t *testing.T) {
			got, err := ReadCgroup(filepath.Join("testdata", "cgroup", c.dir), c.v2)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("ReadCgroup = %+v, want %+v", got, c.want)
			}
			for m, v := range map[Measure]uint64{WorkingSet: c.want.WorkingSet, RSS: c.want.RSS, Anon: c.want.Anon} {
				if got.Value(m) != v {
					t.Errorf("Value(%s) = %d, want %d", m, got.Value(m), v)
				}
			}
		})
	}
}

// Hostile variants of a real v1 file: each gives an error that names the
// file, never a panic or a made-up figure; lines of other keys may be
// anything.
func TestReadCgroupMalformed(t *testing.T) {
	src := filepath.Join("testdata", "cgroup", "v1-6.18-own")
	stat, err := os.ReadFile(filepath.Join(src, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	usage, err := os.ReadFile(filepath.Join(src, "memory.usage_in_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) string {
		if !strings.Contains(string(stat), old) {
			t.Fatalf("fixture has no %q", old)
		}
		return strings.Replace(string(stat), old, new, 1)
	}
	for _, c := range []struct {
		name, usage, stat, file string
	}{
		{"value not a number", string(usage), replace("total_rss 4653056", "total_rss 4653056kB"), "memory.stat"},
		{"negative value", string(usage), replace("total_inactive_file 14901248", "total_inactive_file -1"), "memory.stat"},
		{"value overflows", string(usage), replace("total_mapped_file 3678208", "total_mapped_file 99999999999999999999"), "memory.stat"},
		{"key missing", string(usage), replace("total_rss 4653056\n", ""), "memory.stat"},
		{"key repeated", string(usage), string(stat) + "total_rss 1\n", "memory.stat"},
		{"tab separated", string(usage), replace("total_inactive_file 14901248", "total_inactive_file\t14901248"), "memory.stat"},
		{"truncated", string(usage), string(stat[:strings.Index(string(stat), "total_rss")+9]), "memory.stat"},
		{"empty", string(usage), "", "memory.stat"},
		{"binary", string(usage), "\x00\xff\n\x00total_rss", "memory.stat"},
		{"usage empty", "", string(stat), "memory.usage_in_bytes"},
		{"usage max", "max\n", string(stat), "memory.usage_in_bytes"},
		{"usage two numbers", "1 2\n", string(stat), "memory.usage_in_bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "memory.usage_in_bytes"), []byte(c.usage), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte(c.stat), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := ReadCgroup(dir, false)
			if err == nil {
				t.Fatalf("ReadCgroup = %+v, want an error", s)
			}
			if want := filepath.Join(dir, c.file); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
	// Unknown keys with odd values are none of its business.
	dir := t.TempDir()
	odd := string(stat) + "some_future_key 1.5\nanother\n\n"
	if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte(odd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.usage_in_bytes"), usage, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCgroup(dir, false); err != nil {
		t.Errorf("unknown keys: %v", err)
	}
}

// A cgroup that is gone is fs.ErrNotExist, wrapped with the file's name.
func TestReadCgroupMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	_, err := ReadCgroup(dir, true)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "memory.current")) {
		t.Errorf("ReadCgroup of a missing cgroup = %v, want fs.ErrNotExist naming memory.current", err)
	}
	// v1 files in a v2 reading: the usage file is missing.
	_, err = ReadCgroup(filepath.Join("testdata", "cgroup", "v1-6.18-own"), true)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("v1 files read as v2 = %v, want fs.ErrNotExist", err)
	}
}

// The usage bounds every measure, on every fixture and any input the
// parser accepts: the Watcher skips memory.stat on that promise.
func TestSampleBoundedByUsage(t *testing.T) {
	des, err := os.ReadDir(filepath.Join("testdata", "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		s, err := ReadCgroup(filepath.Join("testdata", "cgroup", de.Name()), strings.HasPrefix(de.Name(), "v2-"))
		if err != nil {
			t.Fatal(err)
		}
		if s.WorkingSet > s.Usage || s.RSS > s.Usage || s.Anon > s.RSS {
			t.Errorf("%s: %+v: a measure above the usage", de.Name(), s)
		}
	}
}

func TestMeasureNames(t *testing.T) {
	for m, name := range map[Measure]string{WorkingSet: "working_set", RSS: "rss", Anon: "anon"} {
		if m.String() != name {
			t.Errorf("%d.String() = %q, want %q", int(m), m.String(), name)
		}
		got, err := ParseMeasure(name)
		if err != nil || got != m {
			t.Errorf("ParseMeasure(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := ParseMeasure("rss_huge"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseMeasure(rss_huge) = %v, want ErrInvalid", err)
	}
	if s := Measure(9).String(); s != "Measure(9)" {
		t.Errorf("Measure(9).String() = %q", s)
	}
}

// FuzzParseMemoryStat: any input either parses into figures the sample
// keeps below the usage, or is an error; never a panic.
func FuzzParseMemoryStat(f *testing.F) {
	des, _ := os.ReadDir(filepath.Join("testdata", "cgroup"))
	for _, de := range des {
		if b, err := os.ReadFile(filepath.Join("testdata", "cgroup", de.Name(), "memory.stat")); err == nil {
			f.Add(b, strings.HasPrefix(de.Name(), "v2-"), uint64(1<<30))
		}
	}
	f.Add([]byte("anon 1\ninactive_file 2\nfile_mapped 3\n"), true, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, v2 bool, usage uint64) {
		st, err := parseMemoryStat(b, v2)
		if err != nil {
			return
		}
		s := st.sample(usage)
		if s.WorkingSet > usage {
			t.Errorf("working set %d above usage %d", s.WorkingSet, usage)
		}
	})
}
