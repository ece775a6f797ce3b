package config

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strconv"
	"strings"
	"syscall"
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
	base.Memory = hashMemory(&i64)
	base.Match = hashMatch()
	hold, holdMax := true, time.Minute
	base.Restart.OOMHold, base.Restart.OOMHoldMax = &hold, &holdMax
	base.Health, base.Notify = hashHealth(), hashNotify()
	baseHash := base.Hash()

	var visit func(path string, v reflect.Value)
	changed := 0
	visit = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if path == "" && (v.Type().Field(i).Name == "Line" || v.Type().Field(i).Name == "OnExit") {
					// Not part of the definition: see TestHashIgnoresHooks.
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
		case reflect.Bool:
			v.SetBool(!v.Bool())
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
		func(p *Program) { p.Memory.Recycle = nil },
		func(p *Program) { p.Memory.Recycle = &Recycle{} },
		func(p *Program) { p.Memory.WarnAbove = nil },
		func(p *Program) { p.Memory.WarnAbove = &Threshold{} },
		// A size and a percentage with the same digits differ.
		func(p *Program) { p.Memory.WarnAbove = &Threshold{Bytes: 80} },
		func(p *Program) { p.Memory.Recycle.Above = Threshold{Percent: 1 << 29} },
		func(p *Program) {
			p.Memory.Recycle.Above, p.Memory.WarnAbove = *p.Memory.WarnAbove, &p.Memory.Recycle.Above
		},
		func(p *Program) { p.Memory.Recycle.For = DefaultRecycleFor },
		func(p *Program) { p.Memory.Recycle.Measure = DefaultMeasure },
		// An override equal to the limits' default is still an override.
		func(p *Program) { p.Restart.OOMHold = nil },
		func(p *Program) { p.Restart.OOMHoldMax = nil },
		func(p *Program) { d := DefaultOOMHoldMax; p.Restart.OOMHoldMax = &d },
		func(p *Program) { p.Restart.OOMLoop = 0 }, // off, not the default
		func(p *Program) { p.Health = nil },
		func(p *Program) { p.Health = &Health{} },
		func(p *Program) { p.Health.HTTP = nil },
		func(p *Program) { p.Health.TCP = nil },
		func(p *Program) { p.Health.Exec = nil },
		func(p *Program) { p.Health.HTTP = &HTTPProbe{} },
		func(p *Program) { p.Health.Exec.Command = nil },
		func(p *Program) { p.Health.Exec.Command = []string{"/usr/bin/check", "--db"} },
		func(p *Program) { p.Health.HTTP.Headers = nil },
		func(p *Program) { p.Health.HTTP.Headers["X-Probe"] = "" },
		func(p *Program) { p.Health.HTTP.Headers = map[string]string{"X-Probe": "1", "Host": "api"} },
		func(p *Program) { p.Health.HTTP.ExpectStatus = DefaultStatusRange },
		func(p *Program) { p.Health.HTTP.ExpectStatus = StatusRange{Min: 204, Max: 204} },
		func(p *Program) { p.Health.Period = DefaultHealthPeriod },
		func(p *Program) { p.Health.StartupGrace = 0 },
		func(p *Program) { p.Notify = nil },
		func(p *Program) { p.Notify = &Notify{} },
		func(p *Program) { p.Notify.StartTimeout = DefaultStartTimeout },
		func(p *Program) { p.Notify.Watchdog = 0 },
		// The same settings in another section are another program.
		func(p *Program) { p.Health.TCP.Address, p.Health.HTTP.URL = p.Health.HTTP.URL, p.Health.TCP.Address },
	}
	for i, mutate := range tests {
		q := hashProgram()
		q.Memory = hashMemory(&i64)
		q.Match = hashMatch()
		q.Restart.OOMHold, q.Restart.OOMHoldMax = &hold, &holdMax
		q.Health, q.Notify = hashHealth(), hashNotify()
		if q.Hash() != baseHash {
			t.Fatal("the base of the mutations differs from the base program")
		}
		mutate(&q)
		if q.Hash() == baseHash {
			t.Errorf("mutation %d does not change the hash", i)
		}
	}
}

// hashHealth returns a health section with every setting away from its
// default and, so that reflection reaches every field, all three probes:
// Validate refuses it, Hash does not care.
func hashHealth() *Health {
	return &Health{
		HTTP:         &HTTPProbe{URL: "http://127.0.0.1:8080/healthz", ExpectStatus: StatusRange{Min: 200, Max: 299}, Headers: map[string]string{"X-Probe": "1"}},
		TCP:          &TCPProbe{Address: "127.0.0.1:5432"},
		Exec:         &ExecProbe{Command: []string{"/usr/local/bin/check-db"}},
		Period:       5 * time.Second,
		Timeout:      2 * time.Second,
		Failures:     5,
		StartupGrace: 30 * time.Second,
	}
}

// hashNotify returns a notify section with every setting away from its
// default.
func hashNotify() *Notify {
	return &Notify{Ready: true, StartTimeout: time.Minute, Watchdog: 30 * time.Second}
}

// hashMemory returns a memory section with every setting set, for
// TestHashSensitive.
func hashMemory(n *int64) *Memory {
	return &Memory{
		Max: n, High: n, SwapMax: n,
		Recycle:   &Recycle{Above: Threshold{Bytes: 1 << 29}, For: time.Minute, Measure: MeasureAnon},
		WarnAbove: &Threshold{Percent: 80},
	}
}

// hashAllSet returns a program with every setting away from its default
// (and every probe, which Validate would refuse).
func hashAllSet() Program {
	p := hashAllSetV2()
	p.Health, p.Notify = hashHealth(), hashNotify()
	return p
}

// hashAllSetV2 returns a program with every setting that came before health
// and notify away from its default.
func hashAllSetV2() Program {
	p := hashAllSetV1()
	yes, holdMax := false, 5*time.Minute
	p.Restart.OOMHold, p.Restart.OOMHoldMax, p.Restart.OOMLoop = &yes, &holdMax, 0
	p.Memory.Recycle = &Recycle{Above: Threshold{Percent: 90}, For: 0, Measure: MeasureRSS}
	p.Memory.WarnAbove = &Threshold{Bytes: 200 << 20}
	p.Output = Output{File: "/var/log/api.log", MaxSize: 1 << 30, MaxFiles: 10, Timestamps: true}
	return p
}

// hashAllSetV1 returns a program with every setting that came before the
// memory watchdog away from its default, and the watchdog's settings at
// their defaults, as Parse gives it for a file written before them.
func hashAllSetV1() Program {
	i64 := func(n int64) *int64 { return &n }
	return Program{
		Line:    7,
		Name:    "api",
		Command: []string{"/usr/bin/api", "--port", "8080"},
		Dir:     "/srv/api",
		Env:     map[string]string{"GOMAXPROCS": "2", "X.Y": "1"},
		User:    "www-data",
		Group:   "33",
		Restart: Restart{
			Policy:     PolicyOnFailure,
			Backoff:    Backoff{Initial: 250 * time.Millisecond, Max: 90 * time.Second, Multiplier: 1.5, Jitter: 0},
			ResetAfter: 2 * time.Minute,
			Limit:      Limit{Burst: 3, Interval: 10 * time.Second, Action: ActionGiveUp},
			OOMLoop:    DefaultOOMLoop,
		},
		Stop:      Stop{Signal: syscall.SIGINT, Timeout: time.Second},
		Output:    Output{File: "/var/log/api.log", MaxSize: DefaultOutputMaxSize, MaxFiles: DefaultOutputMaxFiles},
		Memory:    &Memory{Max: i64(256 << 20), High: i64(200 << 20), SwapMax: i64(0)},
		Match:     &Match{Comm: "api", Exe: "/usr/bin/api", Cmdline: "^api", Pidfile: "/run/api.pid", User: "www-data"},
		OnMissing: OnMissingWait,
	}
}

// TestHashGolden pins the encoding: a change to it changes the digest of
// every program, and so restarts every program when respawnd is upgraded.
// Change these values only together with hashVersion.
func TestHashGolden(t *testing.T) {
	tests := []struct {
		name      string
		p         Program
		canonical string
		digest    string
	}{
		{
			name:      "defaults",
			p:         codeProgram("api"),
			canonical: "19:respawnd program v1,4:name,3:api,10:command[0],12:/usr/bin/api,",
			digest:    "51a4dd8f01253458b52c35b242d9d01777a1d170b102906e813f36b8a16a981c",
		},
		{
			// The digest from before the memory watchdog: a program that
			// does not use it keeps its digest across the upgrade.
			name: "every setting before the memory watchdog",
			p:    hashAllSetV1(),
			canonical: "19:respawnd program v1," +
				"4:name,3:api," +
				"10:command[0],12:/usr/bin/api,10:command[1],6:--port,10:command[2],4:8080," +
				"3:dir,8:/srv/api," +
				"14:env.GOMAXPROCS,1:2,10:env[\"X.Y\"],1:1," +
				"4:user,8:www-data,5:group,2:33," +
				"14:restart.policy,10:on-failure," +
				"23:restart.backoff.initial,9:250000000," +
				"19:restart.backoff.max,11:90000000000," +
				"26:restart.backoff.multiplier,3:1.5," +
				"22:restart.backoff.jitter,1:0," +
				"19:restart.reset_after,12:120000000000," +
				"19:restart.limit.burst,1:3," +
				"22:restart.limit.interval,11:10000000000," +
				"20:restart.limit.action,7:give-up," +
				"11:stop.signal,1:2," +
				"12:stop.timeout,10:1000000000," +
				"11:output.file,16:/var/log/api.log," +
				"6:memory,0:," +
				"10:memory.max,9:268435456," +
				"11:memory.high,9:209715200," +
				"15:memory.swap_max,1:0," +
				"5:match,0:," +
				"10:match.comm,3:api," +
				"9:match.exe,12:/usr/bin/api," +
				"13:match.cmdline,4:^api," +
				"13:match.pidfile,12:/run/api.pid," +
				"10:match.user,8:www-data," +
				"10:on_missing,4:wait,",
			digest: "f208dbff07fc690c90c51a47124e7bded9916597fa66da534838eb6e2ee463d6",
		},
		{
			// The digest from before health and notify: a program that
			// uses neither keeps its digest across the upgrade.
			name: "every setting before health and notify",
			p:    hashAllSetV2(),
			canonical: "19:respawnd program v1," +
				"4:name,3:api," +
				"10:command[0],12:/usr/bin/api,10:command[1],6:--port,10:command[2],4:8080," +
				"3:dir,8:/srv/api," +
				"14:env.GOMAXPROCS,1:2,10:env[\"X.Y\"],1:1," +
				"4:user,8:www-data,5:group,2:33," +
				"14:restart.policy,10:on-failure," +
				"23:restart.backoff.initial,9:250000000," +
				"19:restart.backoff.max,11:90000000000," +
				"26:restart.backoff.multiplier,3:1.5," +
				"22:restart.backoff.jitter,1:0," +
				"19:restart.reset_after,12:120000000000," +
				"19:restart.limit.burst,1:3," +
				"22:restart.limit.interval,11:10000000000," +
				"20:restart.limit.action,7:give-up," +
				"16:restart.oom_hold,5:false," +
				"20:restart.oom_hold_max,12:300000000000," +
				"16:restart.oom_loop,1:0," +
				"11:stop.signal,1:2," +
				"12:stop.timeout,10:1000000000," +
				"11:output.file,16:/var/log/api.log," +
				"15:output.max_size,10:1073741824," +
				"16:output.max_files,2:10," +
				"17:output.timestamps,4:true," +
				"6:memory,0:," +
				"10:memory.max,9:268435456," +
				"11:memory.high,9:209715200," +
				"15:memory.swap_max,1:0," +
				"14:memory.recycle,0:," +
				"20:memory.recycle.above,3:90%," +
				"18:memory.recycle.for,1:0," +
				"22:memory.recycle.measure,3:rss," +
				"17:memory.warn_above,9:209715200," +
				"5:match,0:," +
				"10:match.comm,3:api," +
				"9:match.exe,12:/usr/bin/api," +
				"13:match.cmdline,4:^api," +
				"13:match.pidfile,12:/run/api.pid," +
				"10:match.user,8:www-data," +
				"10:on_missing,4:wait,",
			digest: "1b217efc5317d5f5ca4dc79e3518e64badd185f0142f65b1ba527e1b914469af",
		},
		{
			name: "every setting",
			p:    hashAllSet(),
			canonical: "19:respawnd program v1," +
				"4:name,3:api," +
				"10:command[0],12:/usr/bin/api,10:command[1],6:--port,10:command[2],4:8080," +
				"3:dir,8:/srv/api," +
				"14:env.GOMAXPROCS,1:2,10:env[\"X.Y\"],1:1," +
				"4:user,8:www-data,5:group,2:33," +
				"14:restart.policy,10:on-failure," +
				"23:restart.backoff.initial,9:250000000," +
				"19:restart.backoff.max,11:90000000000," +
				"26:restart.backoff.multiplier,3:1.5," +
				"22:restart.backoff.jitter,1:0," +
				"19:restart.reset_after,12:120000000000," +
				"19:restart.limit.burst,1:3," +
				"22:restart.limit.interval,11:10000000000," +
				"20:restart.limit.action,7:give-up," +
				"16:restart.oom_hold,5:false," +
				"20:restart.oom_hold_max,12:300000000000," +
				"16:restart.oom_loop,1:0," +
				"11:stop.signal,1:2," +
				"12:stop.timeout,10:1000000000," +
				"11:output.file,16:/var/log/api.log," +
				"15:output.max_size,10:1073741824," +
				"16:output.max_files,2:10," +
				"17:output.timestamps,4:true," +
				"6:memory,0:," +
				"10:memory.max,9:268435456," +
				"11:memory.high,9:209715200," +
				"15:memory.swap_max,1:0," +
				"14:memory.recycle,0:," +
				"20:memory.recycle.above,3:90%," +
				"18:memory.recycle.for,1:0," +
				"22:memory.recycle.measure,3:rss," +
				"17:memory.warn_above,9:209715200," +
				"5:match,0:," +
				"10:match.comm,3:api," +
				"9:match.exe,12:/usr/bin/api," +
				"13:match.cmdline,4:^api," +
				"13:match.pidfile,12:/run/api.pid," +
				"10:match.user,8:www-data," +
				"10:on_missing,4:wait," +
				"6:health,0:," +
				"11:health.http,0:," +
				"15:health.http.url,29:http://127.0.0.1:8080/healthz," +
				"25:health.http.expect_status,7:200-299," +
				"27:health.http.headers.X-Probe,1:1," +
				"10:health.tcp,0:," +
				"18:health.tcp.address,14:127.0.0.1:5432," +
				"11:health.exec,0:," +
				"22:health.exec.command[0],23:/usr/local/bin/check-db," +
				"13:health.period,10:5000000000," +
				"14:health.timeout,10:2000000000," +
				"15:health.failures,1:5," +
				"20:health.startup_grace,11:30000000000," +
				"6:notify,0:," +
				"12:notify.ready,4:true," +
				"20:notify.start_timeout,11:60000000000," +
				"15:notify.watchdog,11:30000000000,",
			digest: "68ec3ab6f0801fe23cbe8c6efd226569cae1edfc82bf9737c5fa33f537293406",
		},
	}
	for _, tt := range tests {
		if got := string(tt.p.canonical()); got != tt.canonical {
			t.Errorf("%s: canonical encoding\n got %s\nwant %s", tt.name, got, tt.canonical)
		}
		if got := tt.p.Hash(); got != tt.digest {
			t.Errorf("%s: Hash() = %s, want %s", tt.name, got, tt.digest)
		}
		sum := sha256.Sum256([]byte(tt.canonical))
		if hex.EncodeToString(sum[:]) != tt.digest {
			t.Errorf("%s: the golden digest is not the SHA-256 of the golden encoding", tt.name)
		}
	}
}

// TestHashDefaultsLeftOut checks that a setting at its default adds nothing
// to the digest, whether it is spelled out or left out: a new optional
// setting leaves the digests of the programs that do not use it alone.
func TestHashDefaultsLeftOut(t *testing.T) {
	spelled, err := Parse("a.yaml", []byte(withProgram(
		"restart:",
		"  policy: always",
		"  backoff: {initial: 100ms, max: 30s, multiplier: 2, jitter: 0.2}",
		"  reset_after: 1m",
		"  limit: {burst: 5, interval: 60s, action: backoff}",
		"stop: {signal: TERM, timeout: 10s}",
		`output: {file: ""}`,
		"env: {}",
		`dir: ""`,
		"restart: {oom_loop: 3, oom_hold: ~, oom_hold_max: ~}",
	)))
	if err == nil {
		t.Fatal("a duplicate restart key was accepted")
	}
	spelled, err = Parse("a.yaml", []byte(withProgram(
		"restart:",
		"  policy: always",
		"  backoff: {initial: 100ms, max: 30s, multiplier: 2, jitter: 0.2}",
		"  reset_after: 1m",
		"  limit: {burst: 5, interval: 60s, action: backoff}",
		"  oom_hold: ~",
		"  oom_hold_max: ~",
		"  oom_loop: 3",
		"stop: {signal: TERM, timeout: 10s}",
		`output: {file: ""}`,
		"env: {}",
		`dir: ""`,
	)))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := Parse("b.yaml", []byte(withProgram()))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := spelled.Programs[0].canonical(), bare.Programs[0].canonical(); string(a) != string(b) {
		t.Errorf("defaults spelled out change the encoding:\n%s\n%s", a, b)
	}

	// Within memory.recycle, for and measure at their defaults add nothing.
	spelled, err = Parse("a.yaml", []byte(withProgram("memory: {recycle: {above: 1GiB, for: 30s, measure: working_set}}")))
	if err != nil {
		t.Fatal(err)
	}
	bare, err = Parse("b.yaml", []byte(withProgram("memory: {recycle: {above: 1024MiB}}")))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := spelled.Programs[0].canonical(), bare.Programs[0].canonical(); string(a) != string(b) {
		t.Errorf("recycle defaults spelled out change the encoding:\n%s\n%s", a, b)
	}

	// restart.oom_hold inherits when it is left out, so spelling out the
	// limits' value is a setting of its own: it no longer follows limits.
	pinned, err := Parse("a.yaml", []byte(withProgram("restart: {oom_hold: true}")))
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Programs[0].Hash() == bare.Programs[0].Hash() {
		t.Error("oom_hold: true hashes like oom_hold left out")
	}
}

// TestHashKeysAreYAMLPaths walks Program by reflection and checks that the
// encoding names every setting by its YAML key path, so that renaming a Go
// field changes no digest while a setting the encoder forgets is caught.
func TestHashKeysAreYAMLPaths(t *testing.T) {
	enc := string(hashAllSet().canonical())
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch {
		case typ == reflect.TypeFor[Threshold](), typ == reflect.TypeFor[StatusRange]():
			// A scalar in the file, held in a struct.
		case typ.Kind() == reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if key == "-" || path == "" && key == "on_exit" {
					continue
				}
				if key == "" {
					t.Fatalf("%s.%s has no yaml tag", path, f.Name)
				}
				walk(childField(path, key), f.Type)
			}
			return
		case typ.Kind() == reflect.Pointer:
			if !strings.Contains(enc, netstring(path)) {
				t.Errorf("encoding has no key %q for the presence of the section", path)
			}
			walk(path, typ.Elem())
			return
		case typ.Kind() == reflect.Slice:
			path = indexField(path, 0)
		case typ.Kind() == reflect.Map:
			path += "."
		}
		if !strings.Contains(enc, ":"+path) {
			t.Errorf("encoding has no key %q", path)
		}
	}
	walk("", reflect.TypeFor[Program]())
}

func netstring(s string) string { return strconv.Itoa(len(s)) + ":" + s + "," }

// TestHashIgnoresHooks checks that hooks are no part of a program's digest:
// a reload that adds, changes or removes a program's on_exit or the hooks
// section restarts no program.
func TestHashIgnoresHooks(t *testing.T) {
	const base = `programs:
  - name: api
    command: [/usr/bin/api]
    user: www-data
`
	hooks := []string{
		"",
		"    on_exit: {command: [/usr/local/bin/notify]}\n",
		"    on_exit: {command: [/usr/local/bin/notify, --channel, ops], reasons: [oom_kill], timeout: 1m, user: root, group: adm}\n",
		"    on_exit: {command: []}\n",
		"hooks: {on_exit: {command: [notify], reasons: [signal]}}\n",
	}
	var want string
	for i, h := range hooks {
		in := base + h
		if strings.HasPrefix(h, "hooks:") {
			in = h + base
		}
		c, err := Parse("demo.yaml", []byte(in))
		if err != nil {
			t.Fatalf("hook %d: %v", i, err)
		}
		got := c.Programs[0].Hash()
		if i == 0 {
			want = got
			continue
		}
		if got != want {
			t.Errorf("hook %d changes the hash:\n%s", i, in)
		}
	}
	// Every field of a Hook, found by reflection, in code.
	p := hashProgram()
	want = p.Hash()
	p.OnExit = &Hook{}
	hv := reflect.ValueOf(p.OnExit).Elem()
	for i := range hv.NumField() {
		f := hv.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.Append(f, reflect.ValueOf("x")))
		case reflect.String:
			f.SetString("x")
		case reflect.Int64:
			f.SetInt(7)
		default:
			t.Fatalf("Hook.%s: kind %s not covered by this test", hv.Type().Field(i).Name, f.Kind())
		}
		if p.Hash() != want {
			t.Errorf("Hook.%s changes the hash", hv.Type().Field(i).Name)
		}
	}
}
