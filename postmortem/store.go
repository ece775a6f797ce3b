package postmortem

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultMaxBytes is the default cap on the size of all records together.
const DefaultMaxBytes = 32 << 20

// maxRecordFile is the largest record read back: two 64 KiB output tails,
// JSON-escaped, and the memory figures fit well within it.
const maxRecordFile = 4 << 20

// idRE is the form of every record ID: the death's time in nanoseconds
// since the epoch (19 digits), the generation, the program's name (the
// configuration's name rules). The time comes first so that names sort in
// time order.
var idRE = regexp.MustCompile(`^([0-9]{19})-([0-9]{1,20})-([a-z0-9_.-]+)$`)

// Store keeps records as one JSON file each (ID.json, mode 0600) in a
// directory of its own, opened once and used only through its descriptor.
// When the files together pass the size cap the oldest are removed first,
// except the first record of each program since the Store was opened, so
// that a crash loop of one program cannot wipe the only record of how
// another one died. It is safe for concurrent use.
type Store struct {
	dir      *os.File
	maxBytes int64
	euid     int

	mu    sync.Mutex // guards the fields below
	index []entry    // in ID order (time order)
	total int64
	first map[string]string // program → ID of its first record since Open
	seq   uint64
}

type entry struct {
	id, program string
	size        int64
}

// OpenStore takes dir (a directory that only respawnd writes in) and reads
// the records already there. maxBytes ≤ 0 means DefaultMaxBytes. Files that
// are not records are left alone; leftover temporary files are removed.
func OpenStore(dir *os.File, maxBytes int64) (*Store, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	s := &Store{dir: dir, maxBytes: maxBytes, euid: os.Geteuid(), first: map[string]string{}}
	names, err := s.names()
	if err != nil {
		return nil, fmt.Errorf("reading death records in %s: %w", dir.Name(), err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp") {
			s.unlink(n)
			continue
		}
		id, ok := strings.CutSuffix(n, ".json")
		if !ok || !idRE.MatchString(id) {
			continue
		}
		var st unix.Stat_t
		if err := s.withFD(func(fd int) error { return unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != s.euid {
			continue // not respawnd's: never read, never counted, never removed
		}
		m := idRE.FindStringSubmatch(id)
		s.index = append(s.index, entry{id: id, program: m[3], size: st.Size})
		s.total += st.Size
	}
	slices.SortFunc(s.index, func(a, b entry) int { return strings.Compare(a.id, b.id) })
	s.trim()
	return s, nil
}

// Path returns the file name of the record id.
func (s *Store) Path(id string) string { return filepath.Join(s.dir.Name(), id+".json") }

// Size returns the number of records and their total size in bytes.
func (s *Store) Size() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.index), s.total
}

// NewID returns the ID for a death of program's generation at died. Two
// deaths in the same nanosecond get IDs one nanosecond apart.
func (s *Store) NewID(program string, generation uint64, died time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := uint64(max(died.UnixNano(), 0))
	if ns <= s.seq {
		ns = s.seq + 1
	}
	s.seq = ns
	return fmt.Sprintf("%019d-%d-%s", ns, generation, program)
}

// Write stores r (whose ID came from NewID) and returns its encoding.
func (s *Store) Write(r *Record) ([]byte, error) {
	m := idRE.FindStringSubmatch(r.ID)
	if m == nil || m[3] != r.Program {
		return nil, fmt.Errorf("writing death record %q: %w", r.ID, ErrBadID)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding death record %s: %w", r.ID, err)
	}
	data = append(data, '\n')
	tmp := "." + r.ID + ".tmp"
	var f *os.File
	err = s.withFD(func(fd int) error {
		nfd, err := unix.Openat(fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(nfd), tmp)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("creating death record %s: %w", s.Path(r.ID), err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.withFD(func(fd int) error { return unix.Renameat(fd, tmp, fd, r.ID+".json") })
	}
	if err != nil {
		s.unlink(tmp)
		return nil, fmt.Errorf("writing death record %s: %w", s.Path(r.ID), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := slices.BinarySearchFunc(s.index, r.ID, func(e entry, id string) int { return strings.Compare(e.id, id) })
	if found {
		s.total -= s.index[i].size
		s.index[i].size = int64(len(data))
	} else {
		s.index = slices.Insert(s.index, i, entry{id: r.ID, program: r.Program, size: int64(len(data))})
	}
	s.total += int64(len(data))
	if _, ok := s.first[r.Program]; !ok {
		s.first[r.Program] = r.ID
	}
	s.trim()
	return data, nil
}

// trim removes the oldest records until the total fits the cap, sparing
// each program's first record since Open. The caller holds mu.
func (s *Store) trim() {
	for i := 0; s.total > s.maxBytes && i < len(s.index); {
		e := s.index[i]
		if s.first[e.program] == e.id {
			i++
			continue
		}
		s.unlink(e.id + ".json")
		s.total -= e.size
		s.index = slices.Delete(s.index, i, i+1)
	}
}

// Has reports whether a record of program's instance generation with pid
// is already stored: a death respawnd recorded before a crash of its own,
// reported again by the next respawnd from its state file.
func (s *Store) Has(program string, generation uint64, pid int) bool {
	gen := "-" + strconv.FormatUint(generation, 10) + "-" + program
	s.mu.Lock()
	var ids []string
	for i := len(s.index) - 1; i >= 0; i-- {
		if s.index[i].program == program && strings.HasSuffix(s.index[i].id, gen) {
			ids = append(ids, s.index[i].id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		if r, err := s.read(id); err == nil && r.PID == pid {
			return true
		}
	}
	return false
}

// Get reads the record id.
func (s *Store) Get(id string) (*Record, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	s.mu.Lock()
	_, found := slices.BinarySearchFunc(s.index, id, func(e entry, id string) int { return strings.Compare(e.id, id) })
	s.mu.Unlock()
	if !found {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s.read(id)
}

// Last reads the newest n records of program (of every program when
// program is ""), newest first; n ≤ 0 means all of them.
func (s *Store) Last(program string, n int) ([]*Record, error) {
	s.mu.Lock()
	var ids []string
	for i := len(s.index) - 1; i >= 0 && (n <= 0 || len(ids) < n); i-- {
		if program == "" || s.index[i].program == program {
			ids = append(ids, s.index[i].id)
		}
	}
	s.mu.Unlock()
	out := make([]*Record, 0, len(ids))
	for _, id := range ids {
		r, err := s.read(id)
		if errors.Is(err, ErrNotFound) {
			continue // removed by trim since
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// read reads a record file, refusing anything but respawnd's own regular
// file.
func (s *Store) read(id string) (*Record, error) {
	var f *os.File
	err := s.withFD(func(fd int) error {
		nfd, err := unix.Openat(fd, id+".json", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(nfd), s.Path(id))
		return nil
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading death record %s: %w", s.Path(id), err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("reading death record %s: %w", f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != s.euid || st.Nlink != 1 {
		return nil, fmt.Errorf("refusing death record %s: not respawnd's own file", f.Name())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecordFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading death record %s: %w", f.Name(), err)
	}
	if len(data) > maxRecordFile {
		return nil, fmt.Errorf("reading death record %s: larger than %d bytes", f.Name(), maxRecordFile)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading death record %s: %w", f.Name(), err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("reading death record %s: it says it is %q", f.Name(), r.ID)
	}
	return &r, nil
}

// names lists the directory, through a descriptor of its own so that the
// shared one's offset is left alone.
func (s *Store) names() ([]string, error) {
	var names []string
	err := s.withFD(func(fd int) error {
		rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		r := os.NewFile(uintptr(rfd), s.dir.Name())
		defer r.Close()
		names, err = r.Readdirnames(-1)
		return err
	})
	return names, err
}

func (s *Store) unlink(name string) {
	_ = s.withFD(func(fd int) error { return unix.Unlinkat(fd, name, 0) })
}

func (s *Store) withFD(fn func(fd int) error) error {
	err := fn(int(s.dir.Fd()))
	runtime.KeepAlive(s.dir)
	return err
}
