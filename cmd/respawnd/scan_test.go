package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestScanMatchesGolden runs `respawnd scan FILE` over every kernel log
// capture and compares its JSON lines with the capture's golden output.
func TestScanMatchesGolden(t *testing.T) {
	files, err := filepath.Glob("../../testdata/kmsg/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			golden, err := os.ReadFile(strings.TrimSuffix(f, ".txt") + ".golden.json")
			if err != nil {
				t.Fatal(err)
			}
			var want []map[string]any
			if err := json.Unmarshal(golden, &want); err != nil {
				t.Fatal(err)
			}
			for _, m := range want {
				delete(m, "boot") // the golden files also record the kernel timestamp, which scan does not print
			}
			var out, errOut bytes.Buffer
			s := &scanCmd{file: f, output: "json"}
			if code := s.run(&flags{}, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			var got []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if line == "" {
					continue
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("line %q is not one JSON object: %v", line, err)
				}
				got = append(got, m)
			}
			if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
				t.Errorf("scan printed %d kills, golden has %d\ngot:  %v\nwant: %v", len(got), len(want), got, want)
			}

			var table bytes.Buffer
			s.output = "table"
			if code := s.run(&flags{}, &table, &errOut); code != 0 {
				t.Fatalf("table: exit %d", code)
			}
			if rows := strings.Count(table.String(), "\n"); rows != len(want)+1 {
				t.Errorf("table has %d lines, want a header and %d rows:\n%s", rows, len(want), table.String())
			}
		})
	}
}

func TestScanMissingFile(t *testing.T) {
	var out, errOut bytes.Buffer
	s := &scanCmd{file: filepath.Join(t.TempDir(), "nope"), output: "json"}
	if code := s.run(&flags{}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "nope") {
		t.Errorf("exit %d, stderr %q: want 1 and the file named", code, errOut.String())
	}
}
