package pseudofs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestReadWholeFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, initialSize - 1, initialSize, initialSize + 1, 10*initialSize + 7} {
		want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path, 1<<20)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("size %d: read %d bytes, want the file's %d", size, len(got), len(want))
		}
	}
}

// A procfs file is read to its end, however the kernel hands it out.
func TestReadProcfs(t *testing.T) {
	const name = "/proc/self/status"
	got, err := Read(name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// The two reads describe this process at two moments: the values may
	// differ, the fields may not.
	if len(got) <= initialSize || !bytes.HasSuffix(got, []byte("\n")) ||
		bytes.Count(got, []byte("\n")) != bytes.Count(want, []byte("\n")) {
		t.Errorf("%s: read %d bytes:\n%s\nos.ReadFile read %d:\n%s", name, len(got), got, len(want), want)
	}
}

func TestReadStopsAtLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 100, initialSize, 4999, 5000} {
		got, err := Read(path, limit)
		if err != nil || len(got) != limit {
			t.Errorf("limit %d: %d bytes, %v; want %d bytes, no error", limit, len(got), err, limit)
		}
	}
	if got, err := Read(path, 0); err != nil || len(got) != 0 {
		t.Errorf("limit 0: %d bytes, %v; want none", len(got), err)
	}
}

func TestErrorsAreThoseOfOS(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Read(missing, 10)
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != missing || pe.Op != "open" {
		t.Errorf("Read of a missing file: %v, want an open *fs.PathError for it, fs.ErrNotExist", err)
	}
	if err := Write(missing, []byte("1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write to a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write created %s: control files are written, never created", missing)
	}
	if _, err := Read(t.TempDir(), 10); err == nil {
		t.Error("Read of a directory: no error")
	}
}

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("268435456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("max\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "max\n" {
		t.Errorf("file holds %q, want %q", b, "max\n")
	}
}
