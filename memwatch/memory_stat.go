package memwatch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Measure names the figure a program's memory is judged by.
type Measure int

const (
	// WorkingSet is usage minus inactive file pages, as kubelet and
	// cadvisor compute it: memory.usage_in_bytes − total_inactive_file on
	// cgroup v1, memory.current − inactive_file on v2, and 0 when the
	// inactive file pages exceed the usage. It counts kernel memory and
	// active page cache, which the kernel does not readily give back.
	WorkingSet Measure = iota
	// RSS is the resident memory mapped by the group's processes:
	// anonymous memory plus mapped files (total_rss + total_mapped_file on
	// v1, anon + file_mapped on v2), each page counted once. It is what a
	// sum of the processes' VmRSS approximates, so a program in a cgroup
	// and an adopted one (measured by summing its process tree's RSS) are
	// judged alike. Note that cadvisor's "rss" is what this package calls
	// Anon.
	RSS
	// Anon is anonymous memory: total_rss on v1 (which, despite its name,
	// counts anonymous pages and swap cache and already includes
	// transparent huge pages, so total_rss_huge is not added), anon on v2.
	Anon
)

// String returns the measure's name as the configuration spells it:
// "working_set", "rss" or "anon".
func (m Measure) String() string {
	switch m {
	case WorkingSet:
		return "working_set"
	case RSS:
		return "rss"
	case Anon:
		return "anon"
	}
	return "Measure(" + strconv.Itoa(int(m)) + ")"
}

func (m Measure) valid() bool { return m >= WorkingSet && m <= Anon }

// ParseMeasure is the inverse of Measure.String.
func ParseMeasure(s string) (Measure, error) {
	for m := WorkingSet; m <= Anon; m++ {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w measure %q: want working_set, rss or anon", ErrInvalid, s)
}

// Sample is a cgroup's memory at one moment, in bytes. Every measure is at
// most Usage: the Watcher relies on that to skip reading memory.stat while
// the usage alone shows the program below its thresholds.
type Sample struct {
	// Usage is memory.usage_in_bytes (v1) or memory.current (v2): every
	// page charged to the group, page cache and kernel memory included.
	Usage uint64
	// WorkingSet, RSS and Anon are the measures of those names.
	WorkingSet, RSS, Anon uint64
}

// Value returns the figure m names.
func (s Sample) Value(m Measure) uint64 {
	switch m {
	case RSS:
		return s.RSS
	case Anon:
		return s.Anon
	}
	return s.WorkingSet
}

// usageFile is the file with a group's total charge.
func usageFile(v2 bool) string {
	if v2 {
		return "memory.current"
	}
	return "memory.usage_in_bytes"
}

// statFileMax caps a memory.stat read; the file is 1–3 KiB (a v2 file on
// 6.12 has about 50 lines), and cgroupfs reports a size of 0 or 4096.
const statFileMax = 64 << 10

// ReadCgroup reads the memory of the cgroup whose directory is dir, on a
// cgroup v2 hierarchy if v2 is set and v1 otherwise: two small files,
// the usage file and memory.stat. Errors name the file; os errors are
// wrapped, so a removed cgroup satisfies errors.Is(err, fs.ErrNotExist)
// (or unix.ENODEV for a file opened before the removal).
func ReadCgroup(dir string, v2 bool) (Sample, error) {
	up := filepath.Join(dir, usageFile(v2))
	b, err := os.ReadFile(up)
	if err != nil {
		return Sample{}, fmt.Errorf("reading memory usage: %w", err)
	}
	usage, err := parseUsage(b)
	if err != nil {
		return Sample{}, fmt.Errorf("parsing %s: %w", up, err)
	}
	sp := filepath.Join(dir, "memory.stat")
	b, err = readCapped(sp, statFileMax)
	if err != nil {
		return Sample{}, fmt.Errorf("reading memory.stat: %w", err)
	}
	st, err := parseMemoryStat(b, v2)
	if err != nil {
		return Sample{}, fmt.Errorf("parsing %s: %w", sp, err)
	}
	return st.sample(usage), nil
}

// readCapped reads at most max bytes of the file at path.
func readCapped(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, max)
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil || m == 0 {
			break
		}
	}
	return buf[:n], nil
}

// parseUsage parses a usage file: one decimal number and a newline.
func parseUsage(b []byte) (uint64, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return 0, errors.New("empty")
	}
	v, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a byte count: %q", truncate(s))
	}
	return v, nil
}

// memoryStat holds the memory.stat fields the measures need.
type memoryStat struct {
	inactiveFile, anon, fileMapped uint64
}

// sample derives the measures from the usage and memory.stat.
func (st memoryStat) sample(usage uint64) Sample {
	s := Sample{Usage: usage, RSS: st.anon + st.fileMapped, Anon: st.anon}
	if s.RSS < st.anon { // overflow: only a hostile file gets here
		s.RSS = math.MaxUint64
	}
	// kubelet: the working set is usage minus inactive file pages, floored
	// at 0 (the stat counters are per-CPU batched and may briefly exceed
	// the page counter).
	if st.inactiveFile < usage {
		s.WorkingSet = usage - st.inactiveFile
	}
	return s
}

// statKeys are the memory.stat keys read on each version, in the order of
// the memoryStat fields. On v1 the total_ fields include the cgroups
// below (Documentation/admin-guide/cgroup-v1/memory.rst 5.2); v2 fields
// are always hierarchical (cgroup-v2.rst, memory.stat).
var statKeys = [2][3]string{
	{"total_inactive_file", "total_rss", "total_mapped_file"},
	{"inactive_file", "anon", "file_mapped"},
}

// parseMemoryStat parses memory.stat, "key value" lines. Lines of other
// keys are skipped whatever their form, so that fields a later kernel adds
// cannot break it; each of the three keys it needs must appear once with a
// decimal value.
func parseMemoryStat(b []byte, v2 bool) (memoryStat, error) {
	keys := statKeys[0]
	if v2 {
		keys = statKeys[1]
	}
	var vals [3]uint64
	var seen [3]bool
	for lineNo := 1; len(b) > 0; lineNo++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, _ := bytes.Cut(line, []byte{' '})
		idx := -1
		for i, key := range keys {
			if string(k) == key {
				idx = i
			}
		}
		if idx < 0 {
			continue
		}
		if seen[idx] {
			return memoryStat{}, fmt.Errorf("line %d: %s repeated", lineNo, keys[idx])
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return memoryStat{}, fmt.Errorf("line %d: %s: not a byte count: %q", lineNo, keys[idx], truncate(v))
		}
		vals[idx], seen[idx] = n, true
	}
	for i, ok := range seen {
		if !ok {
			return memoryStat{}, fmt.Errorf("no %s line", keys[i])
		}
	}
	return memoryStat{inactiveFile: vals[0], anon: vals[1], fileMapped: vals[2]}, nil
}

// truncate keeps error messages about hostile input short.
func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
