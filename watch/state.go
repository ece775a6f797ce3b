package watch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// StateFile is the name of the state file inside the directory given to
// SaveState and LoadState.
const StateFile = "state.json"

// stateVersion is the format version SaveState writes. LoadState rejects
// any other as corrupt, so a downgraded respawnd starts fresh instead of
// misreading a newer file.
const stateVersion = 1

// maxStateFile caps the size LoadState accepts.
const maxStateFile = 16 << 20

// StateEntry is what respawnd remembers about one running program instance
// across its own restart.
type StateEntry struct {
	// Program is the program's name in the config.
	Program string `json:"program"`
	// PID and StartTime are the instance's Identity.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	// ConfigHash identifies the program definition the instance was
	// started from, so that a changed definition is restarted.
	ConfigHash string `json:"config_hash"`
	// Generation is the instance's monotonic start number.
	Generation uint64 `json:"generation"`
	// Restarts counts the program's restarts so far.
	Restarts uint64 `json:"restarts"`
	// Child is true when respawnd started the instance itself (it is then
	// no longer respawnd's child after a restart of respawnd).
	Child bool `json:"child"`
}

// Identity returns the entry's process identity.
func (e StateEntry) Identity() Identity { return Identity{PID: e.PID, StartTime: e.StartTime} }

type stateFile struct {
	Version int          `json:"version"`
	Entries []StateEntry `json:"entries"`
}

// SaveState writes entries to dir/StateFile atomically: a temporary file in
// dir is written, synced and renamed over the old file, then dir is synced,
// so a crash at any point leaves either the old or the new file. The file
// is mode 0600; dir is created with mode 0700 if missing. Temporary files
// left by an earlier crash are removed. SaveState is not safe for
// concurrent use on the same dir; respawnd has one writer.
func SaveState(dir string, entries []StateEntry) error { return WriteState(dir, entries, true) }

// WriteState is SaveState with the syncs made optional. The rename alone
// already leaves the old or the new file should respawnd die at any point;
// the syncs only guard against the machine going down, which a state file
// in a tmpfs such as /run does not survive anyway. respawnd writes after
// every start and exit and syncs at most once a second, so a crash loop
// does not become a stream of disk flushes.
func WriteState(dir string, entries []StateEntry, sync bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	if entries == nil {
		entries = []StateEntry{}
	}
	data, err := json.MarshalIndent(stateFile{Version: stateVersion, Entries: entries}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	data = append(data, '\n')

	if old, err := filepath.Glob(filepath.Join(dir, "."+StateFile+".*.tmp")); err == nil {
		for _, o := range old {
			_ = os.Remove(o) // best effort: a leftover is harmless
		}
	}
	tmp, err := os.CreateTemp(dir, "."+StateFile+".*.tmp") // created 0600
	if err != nil {
		return fmt.Errorf("creating temporary state file: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, StateFile)); err != nil {
		return fmt.Errorf("replacing state file: %w", err)
	}
	committed = true
	if !sync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening state dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing state dir: %w", err)
	}
	return nil
}

// LoadState reads the entries SaveState wrote to dir. A missing file gives
// no entries and no error. A file that cannot be understood gives an error
// wrapping ErrCorruptState; other errors (permission) are returned as they
// are.
func LoadState(dir string) ([]StateEntry, error) {
	path := filepath.Join(dir, StateFile)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("opening state file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", path, err)
	}
	entries, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptState, path, err)
	}
	return entries, nil
}

// parseState decodes and checks the content of a state file.
func parseState(data []byte) ([]StateEntry, error) {
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("larger than %d bytes", maxStateFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var sf stateFile
	if err := dec.Decode(&sf); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON object")
	}
	if sf.Version != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", sf.Version, stateVersion)
	}
	for i, e := range sf.Entries {
		if e.Program == "" || e.PID <= 0 {
			return nil, fmt.Errorf("entry %d: program %q, pid %d", i, e.Program, e.PID)
		}
	}
	return sf.Entries, nil
}
