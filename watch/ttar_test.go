package watch

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The /proc fixtures live in one text archive in the ttar format that
// prometheus/procfs uses for its fixtures, because they hold symbolic links
// (exe) and NUL bytes (cmdline) that plain files in git would mangle or
// hide. A file is "Path: P", "Lines: N", N lines of content (NUL bytes
// written as NULLBYTE, a missing final newline marked by EOF at the end of
// the last line) and "Mode: OCTAL"; a directory is "Directory: P" and
// "Mode: OCTAL"; a link is "Path: P" and "SymlinkTo: TARGET". Entries are
// separated by "# ttar - …" lines.

const fixtureArchive = "../testdata/proc/fixtures.ttar"

var ttarCreate = flag.String("ttar.create", "", "archive the procfs tree in `DIR` into "+fixtureArchive+" and exit the test")

const ttarSep = "# ttar - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\n"

// writeTTAR archives the tree under root (root itself excluded).
func writeTTAR(root string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# respawnd /proc fixtures (ttar format); see README.md for how they were captured.\n")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "Path: %s\nSymlinkTo: %s\n", rel, target)
		case info.IsDir():
			fmt.Fprintf(&b, "Directory: %s\nMode: %o\n", rel, info.Mode().Perm())
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			text := strings.ReplaceAll(string(data), "\x00", "NULLBYTE")
			var lines []string
			if text != "" {
				if strings.HasSuffix(text, "\n") {
					lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
				} else {
					lines = strings.Split(text, "\n")
					lines[len(lines)-1] += "EOF"
				}
			}
			fmt.Fprintf(&b, "Path: %s\nLines: %d\n", rel, len(lines))
			for _, l := range lines {
				b.WriteString(l + "\n")
			}
			fmt.Fprintf(&b, "Mode: %o\n", info.Mode().Perm())
		}
		b.WriteString(ttarSep)
		return nil
	})
	return b.Bytes(), err
}

// extractTTAR unpacks an archive written by writeTTAR into dest.
func extractTTAR(archive []byte, dest string) error {
	sc := bufio.NewScanner(bytes.NewReader(archive))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	next := func() (string, bool) {
		for sc.Scan() {
			if l := sc.Text(); !strings.HasPrefix(l, "#") {
				return l, true
			}
		}
		return "", false
	}
	mode := func(path string) error {
		l, ok := next()
		m, err := strconv.ParseUint(strings.TrimPrefix(l, "Mode: "), 8, 32)
		if !ok || !strings.HasPrefix(l, "Mode: ") || err != nil {
			return fmt.Errorf("%s: want Mode, got %q", path, l)
		}
		return os.Chmod(path, fs.FileMode(m))
	}
	for {
		l, ok := next()
		if !ok {
			return sc.Err()
		}
		switch {
		case strings.HasPrefix(l, "Directory: "):
			p := filepath.Join(dest, filepath.FromSlash(strings.TrimPrefix(l, "Directory: ")))
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := mode(p); err != nil {
				return err
			}
		case strings.HasPrefix(l, "Path: "):
			p := filepath.Join(dest, filepath.FromSlash(strings.TrimPrefix(l, "Path: ")))
			l, _ = next()
			if t, ok := strings.CutPrefix(l, "SymlinkTo: "); ok {
				if err := os.Symlink(t, p); err != nil {
					return err
				}
				continue
			}
			n, err := strconv.Atoi(strings.TrimPrefix(l, "Lines: "))
			if err != nil {
				return fmt.Errorf("%s: want Lines, got %q", p, l)
			}
			var content strings.Builder
			for i := 0; i < n; i++ {
				if !sc.Scan() {
					return fmt.Errorf("%s: archive ends inside the file", p)
				}
				line := sc.Text()
				if i == n-1 && strings.HasSuffix(line, "EOF") {
					content.WriteString(strings.TrimSuffix(line, "EOF"))
				} else {
					content.WriteString(line + "\n")
				}
			}
			data := strings.ReplaceAll(content.String(), "NULLBYTE", "\x00")
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				return err
			}
			if err := mode(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected line %q", l)
		}
	}
}

// fixtureRoot unpacks the /proc fixtures into a temporary directory and
// returns it, for use as Config.ProcRoot.
func fixtureRoot(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(fixtureArchive)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := extractTTAR(data, dir); err != nil {
		t.Fatalf("extracting %s: %v", fixtureArchive, err)
	}
	return dir
}

// TestFixtureArchiveRoundTrip checks that the archive unpacks and packs
// back to the same bytes, so that it says exactly what the tests read.
// With -ttar.create=DIR it (re)creates the archive from DIR instead.
func TestFixtureArchiveRoundTrip(t *testing.T) {
	if *ttarCreate != "" {
		data, err := writeTTAR(*ttarCreate)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fixtureArchive, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", fixtureArchive)
		return
	}
	orig, err := os.ReadFile(fixtureArchive)
	if err != nil {
		t.Fatal(err)
	}
	again, err := writeTTAR(fixtureRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, again) {
		t.Errorf("%s does not round-trip; recreate it with -ttar.create", fixtureArchive)
	}
}
