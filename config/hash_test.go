package config

import (
	"reflect"
	"testing"
	"time"
)

func hashProgram() Program {
	p := codeProgram("api")
	p.Env = map[string]string{"A": "1", "B": "2", "C": "3", "D": "4", "E": "5"}
	return p
}

func TestHashStable(t *testing.T) {
	p := hashProgram()
	h := p.Hash()
	if len(h) != 64 {
		t.Fatalf("Hash() = %q, want 64 hex digits", h)
	}
	for range 20 {
		// Rebuilding the map gives a new iteration order.
		q := hashProgram()
		if got := q.Hash(); got != h {
			t.Fatalf("Hash() changed between equal programs: %s != %s", got, h)
		}
	}

	q := hashProgram()
	q.Line = 42
	if q.Hash() != h {
		t.Error("Line changes the hash")
	}
	q = hashProgram()
	q.Env = nil
	r := hashProgram()
	r.Env = map[string]string{}
	if q.Hash() != r.Hash() {
		t.Error("nil and empty env hash differently")
	}

	// The same definition at another place in another file.
	a, err := Parse("a.yaml", []byte("programs:\n  - name: api\n    command: [/bin/api]\n    env: {X: 1, Y: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b.yaml", []byte("# moved\n\nprograms:\n  - command: [/bin/api]\n    env: {Y: \"2\", X: \"1\"}\n    name: api\n    restart: {policy: always}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Programs[0].Hash() != b.Programs[0].Hash() {
		t.Error("equal definitions in different files hash differently")
	}
}

func hashMatch() *Match {
	return &Match{Comm: "api", Exe: "/usr/bin/api", Cmdline: "api .*--port", Pidfile: "/run/api.pid", User: "www-data"}
}

// TestHashSensitive changes every field of Program in turn, found by
// reflection so that fields added later are covered too, and checks that
// the hash changes.
func TestHashSensitive(t *testing.T) {
	base := hashProgram()
	i64 := int64(1 << 30)
	base.Memory = &Memory{Max: &i64, High: &i64, SwapMax: &i64}
	base.Match = hashMatch()
	baseHash := base.Hash()

	var visit func(path string, v reflect.Value)
	changed := 0
	visit = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if path == "" && v.Type().Field(i).Name == "Line" {
					continue
				}
				visit(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		case reflect.Pointer:
			if v.IsNil() {
				t.Fatalf("%s is nil: set it in the base program so that its fields are covered", path)
			}
			visit(path, v.Elem())
			return
		}
		old := reflect.New(v.Type()).Elem()
		old.Set(v)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Float64:
			v.SetFloat(v.Float() + 0.25)
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		case reflect.Map:
			m := reflect.MakeMap(v.Type())
			iter := v.MapRange()
			for iter.Next() {
				m.SetMapIndex(iter.Key(), iter.Value())
			}
			m.SetMapIndex(reflect.ValueOf("NEW"), reflect.ValueOf(""))
			v.Set(m)
		default:
			t.Fatalf("%s: kind %s not covered by this test", path, v.Kind())
		}
		changed++
		if base.Hash() == baseHash {
			t.Errorf("changing %s does not change the hash", path)
		}
		v.Set(old)
		if base.Hash() != baseHash {
			t.Fatalf("restoring %s does not restore the hash", path)
		}
	}
	visit("", reflect.ValueOf(&base).Elem())
	if changed < 20 {
		t.Errorf("only %d fields changed", changed)
	}

	// Values that reflection alone would not try.
	tests := []func(p *Program){
		func(p *Program) { p.Memory = nil },
		func(p *Program) { p.Memory.SwapMax = nil },
		func(p *Program) { p.Env["A"] = "" },
		func(p *Program) { p.Env = map[string]string{"A1": "", "B": "2", "C": "3", "D": "4", "E": "5"} },
		func(p *Program) { p.Command = []string{"/usr/bin/api", ""} },
		func(p *Program) { p.Command = []string{"/usr/bin/ap", "i"} },
		func(p *Program) { p.Restart.Backoff.Max = 30*time.Second + 1 },
		func(p *Program) { p.Match = nil },
		func(p *Program) { p.Match = &Match{} },
		func(p *Program) { p.Match.Comm, p.Match.Exe = p.Match.Exe, p.Match.Comm },
		func(p *Program) { p.Match.Cmdline, p.Match.Pidfile = "", p.Match.Cmdline+p.Match.Pidfile },
		func(p *Program) { p.OnMissing = "" },
	}
	for i, mutate := range tests {
		q := hashProgram()
		q.Memory = &Memory{Max: &i64, High: &i64, SwapMax: &i64}
		q.Match = hashMatch()
		mutate(&q)
		if q.Hash() == baseHash {
			t.Errorf("mutation %d does not change the hash", i)
		}
	}
}
