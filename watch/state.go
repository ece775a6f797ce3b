package watch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// StateFile is the name of the state file in the state directory.
const StateFile = "state.json"

// stateVersion is the format version StateDir.Write writes. Load rejects
// any other as corrupt, so a downgraded respawnd starts fresh instead of
// misreading a newer file, and a file of an older respawnd is not taken
// for evidence it does not hold.
const stateVersion = 2

// Limits of the state file and of its entries.
const (
	// maxStateFile caps the size Load accepts.
	maxStateFile = 16 << 20
	// maxProgramName is the longest program name, in bytes.
	maxProgramName = 255
	// maxStopTimeout is the longest stop timeout an entry may hold.
	maxStopTimeout = 24 * time.Hour
	// maxSignal is the highest signal number on Linux (SIGRTMAX).
	maxSignal = 64
	// maxExe is the longest executable path (PATH_MAX, with its NUL).
	maxExe = 4095
	// maxConfigHash is the longest config hash.
	maxConfigHash = 128
	// maxUID is the highest valid uid: (uid_t)-1 means "no uid".
	maxUID = 1<<32 - 2
)

// StateEntry is what respawnd remembers about one running program instance
// across its own restart: enough to prove that a process found later is
// that instance (pid, start time, boot, executable, uid) and to stop it as
// its definition said.
type StateEntry struct {
	// Program is the program's name in the config: [a-z0-9_.-]+, at most
	// 255 bytes.
	Program string
	// PID and StartTime are the instance's Identity.
	PID       int
	StartTime uint64
	// BootID is the boot the instance was started in (see BootID), a UUID.
	BootID string
	// Exe is the instance's resolved executable path, absolute, or "" when
	// it could not be read.
	Exe string
	// UID is the instance's effective uid.
	UID int
	// ConfigHash identifies the program definition the instance was
	// started from, so that a changed definition is restarted.
	ConfigHash string
	// Generation is the instance's monotonic start number.
	Generation uint64
	// Restarts counts the program's restarts so far.
	Restarts uint64
	// Child is true when respawnd started the instance itself (it is then
	// no longer respawnd's child after a restart of respawnd).
	Child bool
	// StopSignal is the signal that stops the instance, 1 to 64; 0 means
	// the default.
	StopSignal int
	// StopTimeout is how long a stop waits before SIGKILL, 0 to 24h; 0
	// means the default. In the file it is a Go duration string ("10s",
	// "1m30s").
	StopTimeout time.Duration
}

// Identity returns the entry's process identity.
func (e StateEntry) Identity() Identity { return Identity{PID: e.PID, StartTime: e.StartTime} }

// stateEntryJSON is a StateEntry as the file spells it.
type stateEntryJSON struct {
	Program     string `json:"program"`
	PID         int    `json:"pid"`
	StartTime   uint64 `json:"start_time"`
	BootID      string `json:"boot_id"`
	Exe         string `json:"exe"`
	UID         int    `json:"uid"`
	ConfigHash  string `json:"config_hash"`
	Generation  uint64 `json:"generation"`
	Restarts    uint64 `json:"restarts"`
	Child       bool   `json:"child"`
	StopSignal  int    `json:"stop_signal"`
	StopTimeout string `json:"stop_timeout"`
}

type stateFile struct {
	Version int              `json:"version"`
	Entries []stateEntryJSON `json:"entries"`
}

// encodeState returns the content of a state file holding entries.
func encodeState(entries []StateEntry) ([]byte, error) {
	sf := stateFile{Version: stateVersion, Entries: make([]stateEntryJSON, 0, len(entries))}
	for _, e := range entries {
		sf.Entries = append(sf.Entries, stateEntryJSON{
			Program: e.Program, PID: e.PID, StartTime: e.StartTime, BootID: e.BootID, Exe: e.Exe, UID: e.UID,
			ConfigHash: e.ConfigHash, Generation: e.Generation, Restarts: e.Restarts, Child: e.Child,
			StopSignal: e.StopSignal, StopTimeout: e.StopTimeout.String(),
		})
	}
	// Compact: indenting (MarshalIndent) took a third of the CPU of a
	// daemon restarting one of a thousand programs in a loop.
	data, err := json.Marshal(sf)
	if err != nil {
		return nil, fmt.Errorf("encoding state: %w", err)
	}
	return append(data, '\n'), nil
}

// parseState decodes and checks the content of a state file. It returns
// nil for a file without entries.
func parseState(data []byte) ([]StateEntry, error) {
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("larger than %d bytes", maxStateFile)
	}
	// The version first, so that a file of another version is reported as
	// such and not by the first field it lacks.
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return nil, errors.New("empty")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, errors.New("truncated JSON")
		}
		return nil, err
	}
	switch {
	case v.Version == nil:
		return nil, errors.New("no version")
	case *v.Version < stateVersion:
		return nil, fmt.Errorf("format version %d, written by an older respawnd; this one reads version %d", *v.Version, stateVersion)
	case *v.Version > stateVersion:
		return nil, fmt.Errorf("format version %d, written by a newer respawnd; this one reads version %d", *v.Version, stateVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sf stateFile
	if err := dec.Decode(&sf); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON object")
	}
	if len(sf.Entries) == 0 {
		return nil, nil
	}
	entries := make([]StateEntry, len(sf.Entries))
	var errs []error
	for i, j := range sf.Entries {
		e := StateEntry{
			Program: j.Program, PID: j.PID, StartTime: j.StartTime, BootID: j.BootID, Exe: j.Exe, UID: j.UID,
			ConfigHash: j.ConfigHash, Generation: j.Generation, Restarts: j.Restarts, Child: j.Child,
			StopSignal: j.StopSignal,
		}
		d, err := time.ParseDuration(j.StopTimeout)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d: stop_timeout: %q is not a duration", i, j.StopTimeout))
		}
		e.StopTimeout = d
		entries[i] = e
	}
	if err := validateEntries(entries); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return entries, nil
}

var programNameRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)

// validateEntries checks every field of every entry and reports each
// problem as "entry INDEX: FIELD: what is wrong".
func validateEntries(entries []StateEntry) error {
	var errs []error
	bad := func(i int, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("entry %d: %s: %s", i, field, fmt.Sprintf(format, args...)))
	}
	seen := make(map[string]int, len(entries))
	for i, e := range entries {
		switch {
		case !programNameRE.MatchString(e.Program):
			bad(i, "program", "%q does not match [a-z0-9_.-]+", e.Program)
		case len(e.Program) > maxProgramName:
			bad(i, "program", "longer than %d bytes", maxProgramName)
		default:
			if j, dup := seen[e.Program]; dup {
				bad(i, "program", "%q already in entry %d", e.Program, j)
			}
			seen[e.Program] = i
		}
		if e.PID <= 0 {
			bad(i, "pid", "%d is not a pid", e.PID)
		}
		if !isUUID(e.BootID) {
			bad(i, "boot_id", "%q is not a UUID", e.BootID)
		}
		if e.Exe != "" && (!strings.HasPrefix(e.Exe, "/") || len(e.Exe) > maxExe || strings.IndexByte(e.Exe, 0) >= 0) {
			bad(i, "exe", "%q is not an absolute path", e.Exe)
		}
		if e.UID < 0 || e.UID > maxUID {
			bad(i, "uid", "%d is not a uid", e.UID)
		}
		if len(e.ConfigHash) > maxConfigHash || strings.IndexFunc(e.ConfigHash, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			bad(i, "config_hash", "%q is not a hash", e.ConfigHash)
		}
		if e.StopSignal < 0 || e.StopSignal > maxSignal {
			bad(i, "stop_signal", "%d is not a signal (1 to %d, or 0)", e.StopSignal, maxSignal)
		}
		if e.StopTimeout < 0 || e.StopTimeout > maxStopTimeout {
			bad(i, "stop_timeout", "%v is not between 0 and %v", e.StopTimeout, maxStopTimeout)
		}
	}
	return errors.Join(errs...)
}

// isUUID reports whether s is a UUID in the kernel's spelling: 36
// characters, lower-case hex digits and hyphens in the 8-4-4-4-12 places.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// BootID returns the running kernel's boot id, a random UUID chosen at
// boot, from procRoot/sys/kernel/random/boot_id ("" for procRoot means
// "/proc"). With it a recorded start time, which counts from boot, is
// known to belong to this boot.
func BootID(procRoot string) (string, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	path := procRoot + "/sys/kernel/random/boot_id"
	b, err := readCapped(path, 128)
	if err != nil {
		return "", fmt.Errorf("reading boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !isUUID(id) {
		return "", fmt.Errorf("reading boot id: %s holds %s, not a UUID", path, strconv.Quote(id))
	}
	return id, nil
}
