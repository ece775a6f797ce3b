package watch

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testBootID = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

func testEntries() []StateEntry {
	return []StateEntry{
		{Program: "api", PID: 4242, StartTime: 210612, BootID: testBootID, Exe: "/usr/bin/api", UID: 33,
			ConfigHash: "ab12", Generation: 7, Restarts: 6, Child: true, StopSignal: 15, StopTimeout: 10 * time.Second},
		{Program: "legacy.worker-2", PID: 17, StartTime: 19, BootID: testBootID, ConfigHash: "cd34", Generation: 1,
			StopTimeout: 1500 * time.Millisecond},
	}
}

func TestEncodeParseState(t *testing.T) {
	want := testEntries()
	data, err := encodeState(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"version":2`, `"boot_id":"` + testBootID + `"`, `"stop_timeout":"10s"`, `"stop_timeout":"1.5s"`, `"exe":"/usr/bin/api"`, `"uid":33`, `"stop_signal":15`} {
		if !strings.Contains(string(data), s) {
			t.Errorf("encoded state lacks %s:\n%s", s, data)
		}
	}
	got, err := parseState(data)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseState = %+v, %v; want %+v", got, err, want)
	}
	if got[0].Identity() != (Identity{PID: 4242, StartTime: 210612}) {
		t.Errorf("Identity = %v", got[0].Identity())
	}
	if data, err := encodeState(nil); err != nil || !strings.Contains(string(data), `"entries":[]`) {
		t.Errorf("no entries: %s, %v", data, err)
	}
}

func TestParseStateCorrupt(t *testing.T) {
	const e = `"program":"api","pid":12,"start_time":1,"boot_id":"` + testBootID + `","exe":"","uid":0,"config_hash":"h","generation":1,"restarts":0,"child":false,"stop_signal":0,"stop_timeout":"0s"`
	for name, tc := range map[string]struct{ content, want string }{
		"truncated":       {`{"version":2,"entries":[{"program":"api","pid":4`, "truncated JSON"},
		"not json":        {"\x00\x01garbage", "invalid character"},
		"empty":           {"", "empty"},
		"version 1":       {`{"version":1,"entries":[{"program":"api","pid":12}]}`, "format version 1, written by an older respawnd"},
		"future version":  {`{"version":3,"entries":[]}`, "written by a newer respawnd"},
		"no version":      {`{"entries":[]}`, "no version"},
		"trailing data":   {`{"version":2,"entries":[]} {}`, "trailing data"},
		"unknown field":   {`{"version":2,"entries":[{` + e + `,"extra":1}]}`, "unknown field"},
		"wrong type":      {`{"version":2,"entries":[{"program":"api","pid":"12"}]}`, "cannot unmarshal"},
		"entries object":  {`{"version":2,"entries":{}}`, "cannot unmarshal"},
		"negative counts": {`{"version":2,"entries":[{` + strings.Replace(e, `"restarts":0`, `"restarts":-1`, 1) + `}]}`, "cannot unmarshal"},
		"bad pid":         {`{"version":2,"entries":[{` + strings.Replace(e, `"pid":12`, `"pid":0`, 1) + `}]}`, "entry 0: pid: 0 is not a pid"},
		"no program":      {`{"version":2,"entries":[{` + strings.Replace(e, `"program":"api"`, `"program":""`, 1) + `}]}`, `entry 0: program: "" does not match`},
		"upper case name": {`{"version":2,"entries":[{` + strings.Replace(e, `"program":"api"`, `"program":"API"`, 1) + `}]}`, `entry 0: program: "API" does not match`},
		"long name":       {`{"version":2,"entries":[{` + strings.Replace(e, `"program":"api"`, `"program":"`+strings.Repeat("a", 256)+`"`, 1) + `}]}`, "entry 0: program: longer than 255 bytes"},
		"duplicate":       {`{"version":2,"entries":[{` + e + `},{` + e + `}]}`, `entry 1: program: "api" already in entry 0`},
		"boot id":         {`{"version":2,"entries":[{` + strings.Replace(e, testBootID, strings.ToUpper(testBootID), 1) + `}]}`, "entry 0: boot_id: "},
		"no boot id":      {`{"version":2,"entries":[{` + strings.Replace(e, testBootID, "", 1) + `}]}`, `entry 0: boot_id: "" is not a UUID`},
		"relative exe":    {`{"version":2,"entries":[{` + strings.Replace(e, `"exe":""`, `"exe":"bin/api"`, 1) + `}]}`, `entry 0: exe: "bin/api" is not an absolute path`},
		"uid":             {`{"version":2,"entries":[{` + strings.Replace(e, `"uid":0`, `"uid":-1`, 1) + `}]}`, "entry 0: uid: -1 is not a uid"},
		"huge uid":        {`{"version":2,"entries":[{` + strings.Replace(e, `"uid":0`, `"uid":4294967295`, 1) + `}]}`, "entry 0: uid: 4294967295 is not a uid"},
		"signal":          {`{"version":2,"entries":[{` + strings.Replace(e, `"stop_signal":0`, `"stop_signal":65`, 1) + `}]}`, "entry 0: stop_signal: 65 is not a signal"},
		"timeout syntax":  {`{"version":2,"entries":[{` + strings.Replace(e, `"stop_timeout":"0s"`, `"stop_timeout":"10"`, 1) + `}]}`, `entry 0: stop_timeout: "10" is not a duration`},
		"negative time":   {`{"version":2,"entries":[{` + strings.Replace(e, `"stop_timeout":"0s"`, `"stop_timeout":"-1s"`, 1) + `}]}`, "entry 0: stop_timeout: -1s is not between 0 and 24h0m0s"},
		"long timeout":    {`{"version":2,"entries":[{` + strings.Replace(e, `"stop_timeout":"0s"`, `"stop_timeout":"24h1s"`, 1) + `}]}`, "entry 0: stop_timeout: 24h0m1s is not between"},
		"config hash":     {`{"version":2,"entries":[{` + strings.Replace(e, `"config_hash":"h"`, `"config_hash":"a b"`, 1) + `}]}`, `entry 0: config_hash: "a b" is not a hash`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseState([]byte(tc.content))
			if err == nil || got != nil {
				t.Fatalf("parseState = %+v, %v; want an error", got, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
	// Every problem is reported, not just the first.
	bad := strings.Replace(strings.Replace(e, `"pid":12`, `"pid":-3`, 1), `"uid":0`, `"uid":-1`, 1)
	_, err := parseState([]byte(`{"version":2,"entries":[{` + e + `},{` + bad + `}]}`))
	if err == nil || !strings.Contains(err.Error(), "entry 1: pid") || !strings.Contains(err.Error(), "entry 1: uid") || !strings.Contains(err.Error(), "entry 1: program") {
		t.Errorf("error %v, want every problem of entry 1", err)
	}
}

func TestBootID(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "kernel", "random")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for content, want := range map[string]string{
		testBootID + "\n": testBootID,
		"not-a-uuid\n":    "",
		"":                "",
	} {
		if err := os.WriteFile(filepath.Join(dir, "boot_id"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := BootID(root)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("boot_id %q: BootID = %q, %v; want %q", content, got, err, want)
		}
	}
	if _, err := BootID(filepath.Join(root, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing boot_id: %v", err)
	}
}

func FuzzParseState(f *testing.F) {
	data, err := encodeState(testEntries())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"version":2,"entries":[]}`))
	f.Add([]byte(`{"version":2,"entries":null}`))
	f.Add([]byte(`{"version":1,"entries":[{"program":"api","pid":12}]}`))
	f.Add([]byte(`{"version":2,"entries":[{"program":"a","pid":1,"boot_id":"` + testBootID + `","stop_timeout":"1h2m3.000000004s"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseState(data)
		if err != nil {
			return
		}
		enc, err := encodeState(entries)
		if err != nil {
			t.Fatalf("encoding accepted entries %+v: %v", entries, err)
		}
		again, err := parseState(enc)
		if err != nil {
			t.Fatalf("re-parsing the encoding of accepted entries: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(again, entries) {
			t.Fatalf("round trip changed the entries:\n%+v\n%+v", entries, again)
		}
	})
}
