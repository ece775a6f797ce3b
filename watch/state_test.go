package watch

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by SaveState
	want := []StateEntry{
		{Program: "api", PID: 4242, StartTime: 210612, ConfigHash: "sha256:ab", Generation: 7, Restarts: 6, Child: true},
		{Program: "legacy", PID: 17, StartTime: 19, ConfigHash: "sha256:cd", Generation: 1},
	}
	if err := SaveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadState = %+v, %v; want %+v", got, err, want)
	}
	if got[0].Identity() != (Identity{PID: 4242, StartTime: 210612}) {
		t.Errorf("Identity = %v", got[0].Identity())
	}
	st, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, %v", st.Mode(), err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, %v", st.Mode(), err)
	}

	// Overwrite with fewer entries, with a temp file left by a crash.
	if err := os.WriteFile(filepath.Join(dir, "."+StateFile+".123.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(dir, nil); err != nil {
		t.Fatal(err)
	}
	got, err = LoadState(dir)
	if err != nil || len(got) != 0 {
		t.Fatalf("after saving nothing: %+v, %v", got, err)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 || names[0].Name() != StateFile {
		t.Errorf("files left in the state dir: %v", names)
	}
}

func TestLoadStateMissing(t *testing.T) {
	got, err := LoadState(filepath.Join(t.TempDir(), "nowhere"))
	if err != nil || got != nil {
		t.Errorf("LoadState of a missing dir = %v, %v", got, err)
	}
}

func TestLoadStateCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":       `{"version":1,"entries":[{"program":"api","pid":4`,
		"not json":        "\x00\x01garbage",
		"empty":           "",
		"future version":  `{"version":2,"entries":[]}`,
		"no version":      `{"entries":[]}`,
		"trailing data":   `{"version":1,"entries":[]} {}`,
		"bad pid":         `{"version":1,"entries":[{"program":"api","pid":0}]}`,
		"no program":      `{"version":1,"entries":[{"pid":12}]}`,
		"wrong type":      `{"version":1,"entries":[{"program":"api","pid":"12"}]}`,
		"entries object":  `{"version":1,"entries":{}}`,
		"negative counts": `{"version":1,"entries":[{"program":"api","pid":12,"restarts":-1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadState(dir)
			if !errors.Is(err, ErrCorruptState) || got != nil {
				t.Errorf("LoadState = %v, %v; want ErrCorruptState", got, err)
			}
		})
	}
}

func TestWriteStateWithoutSync(t *testing.T) {
	dir := t.TempDir()
	want := []StateEntry{{Program: "api", PID: 42, StartTime: 7, ConfigHash: "h", Generation: 2, Restarts: 1, Child: true}}
	if err := WriteState(dir, want, false); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("LoadState = %+v, want %+v", got, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
