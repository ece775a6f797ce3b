package memwatch

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// step is one check in a decision script: at t0+at the measure is v, and
// the check reports want (kinds in order, "" for none).
type step struct {
	at   time.Duration
	v    uint64
	want string
}

func kinds(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Kind.String())
	}
	return strings.Join(s, ",")
}

const mib = 1 << 20

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func runScript(t *testing.T, j *judge, steps []step) []Event {
	t.Helper()
	var all []Event
	for i, s := range steps {
		evs := j.observe(t0.Add(s.at), s.v, nil)
		if got := kinds(evs); got != s.want {
			t.Fatalf("step %d (t+%s, %d): events %q, want %q", i, s.at, s.v, got, s.want)
		}
		all = append(all, evs...)
	}
	return all
}

// The decision table: a Recycle needs the measure at or above Above at
// every check for For; it fires once per stretch above; Warn and
// WarnCleared follow WarnAbove with 5 % of hysteresis.
func TestJudge(t *testing.T) {
	const s = time.Second
	for _, c := range []struct {
		name  string
		spec  Spec
		steps []step
	}{
		{"below never fires", Spec{Above: 100, For: s}, []step{
			{0, 10, ""}, {s, 99, ""}, {10 * s, 0, ""},
		}},
		{"above for For fires once", Spec{Above: 100, For: 2 * s}, []step{
			{0, 100, ""}, {s, 150, ""}, {2 * s, 120, "recycle"}, {3 * s, 500, ""}, {60 * s, 500, ""},
		}},
		{"a dip restarts For", Spec{Above: 100, For: 2 * s}, []step{
			{0, 100, ""}, {s, 99, ""}, {2 * s, 100, ""}, {3 * s, 100, ""}, {4 * s, 100, "recycle"},
		}},
		{"re-arms after going below", Spec{Above: 100, For: s}, []step{
			{0, 200, ""}, {s, 200, "recycle"}, {2 * s, 50, ""}, {3 * s, 200, ""}, {4 * s, 200, "recycle"},
		}},
		{"for zero fires at the first check above", Spec{Above: 100}, []step{
			{0, 99, ""}, {s, 100, "recycle"}, {2 * s, 100, ""},
		}},
		{"warn with hysteresis", Spec{WarnAbove: 1000}, []step{
			{0, 999, ""}, {s, 1000, "warn"}, {2 * s, 2000, ""}, {3 * s, 960, ""}, {4 * s, 950, ""}, {5 * s, 949, "warn_cleared"},
			{6 * s, 990, ""}, {7 * s, 1000, "warn"},
		}},
		{"warn and recycle at one check", Spec{Above: 100, WarnAbove: 80}, []step{
			{0, 50, ""}, {s, 120, "recycle,warn"}, {2 * s, 10, "warn_cleared"},
		}},
		{"recycle off", Spec{WarnAbove: 10}, []step{
			{0, 1 << 40, "warn"}, {s, 1 << 40, ""},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			runScript(t, &judge{spec: c.spec}, c.steps)
		})
	}
}

// Events carry the threshold, the measured value, the start of the
// stretch above and the time of the check.
func TestJudgeEventFields(t *testing.T) {
	j := &judge{spec: Spec{Above: 100, For: 2 * time.Second, Measure: Anon, WarnAbove: 90}}
	evs := runScript(t, j, []step{
		{0, 95, "warn"}, {time.Second, 110, ""}, {3 * time.Second, 130, "recycle"}, {4 * time.Second, 10, "warn_cleared"},
	})
	want := []Event{
		{Kind: Warn, Measure: Anon, Value: 95, Threshold: 90, Since: t0, At: t0},
		{Kind: Recycle, Measure: Anon, Value: 130, Threshold: 100, Since: t0.Add(time.Second), At: t0.Add(3 * time.Second)},
		{Kind: WarnCleared, Measure: Anon, Value: 10, Threshold: 90, Since: t0, At: t0.Add(4 * time.Second)},
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("events\n%+v\nwant\n%+v", evs, want)
	}
}

// due names the moment a pending Recycle must be checked, and nothing
// once it fired or the stretch ended.
func TestJudgeDue(t *testing.T) {
	j := &judge{spec: Spec{Above: 100, For: 5 * time.Second}}
	if _, ok := j.due(); ok {
		t.Fatal("due before any check")
	}
	j.observe(t0, 100, nil)
	if d, ok := j.due(); !ok || !d.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("due = %v, %v; want t0+5s", d, ok)
	}
	j.observe(t0.Add(5*time.Second), 100, nil)
	if _, ok := j.due(); ok {
		t.Fatal("due after the recycle fired")
	}
}

// quiet: the usage bounds every measure, so a usage below both thresholds
// settles a check unless a stretch above or a warning is in progress.
func TestJudgeQuiet(t *testing.T) {
	j := &judge{spec: Spec{Above: 100, WarnAbove: 80}}
	for _, c := range []struct {
		bound uint64
		want  bool
	}{{0, true}, {79, true}, {80, false}, {100, false}} {
		if got := j.quiet(c.bound); got != c.want {
			t.Errorf("quiet(%d) = %v, want %v", c.bound, got, c.want)
		}
	}
	j.observe(t0, 85, nil) // warned
	if j.quiet(0) {
		t.Error("quiet with a warning to clear")
	}
	j = &judge{spec: Spec{Above: 100, For: time.Second}}
	j.observe(t0, 100, nil) // stretch above
	if j.quiet(0) {
		t.Error("quiet with a stretch above in progress")
	}
	if !(&judge{spec: Spec{WarnAbove: 10}}).quiet(9) {
		t.Error("recycle off: not quiet below the warning")
	}
}

// A reload that changes the threshold or the measure re-arms the Recycle;
// one that changes For keeps the stretch; one that turns the warning off
// clears it at the next check.
func TestJudgeSetSpec(t *testing.T) {
	j := &judge{spec: Spec{Above: 100, WarnAbove: 50}}
	runScript(t, j, []step{{0, 200, "recycle,warn"}})
	j.setSpec(Spec{Above: 100, WarnAbove: 50, For: time.Hour})
	runScript(t, j, []step{{time.Second, 200, ""}})
	j.setSpec(Spec{Above: 150, WarnAbove: 50})
	runScript(t, j, []step{{2 * time.Second, 200, "recycle"}})
	j.setSpec(Spec{Above: 150, Measure: RSS, WarnAbove: 50})
	runScript(t, j, []step{{3 * time.Second, 200, "recycle"}})

	j.setSpec(Spec{Above: 150, For: 10 * time.Second})
	runScript(t, j, []step{{4 * time.Second, 200, "warn_cleared"}})

	j = &judge{spec: Spec{Above: 100, For: 10 * time.Second}}
	runScript(t, j, []step{{0, 200, ""}})
	j.setSpec(Spec{Above: 100, For: 5 * time.Second})
	runScript(t, j, []step{{5 * time.Second, 200, "recycle"}})
}

func TestSpecValidate(t *testing.T) {
	for _, s := range []Spec{{}, {Above: 1, For: -1}, {Above: 1, Measure: -1}, {Above: 1, Measure: 3}} {
		if err := s.validate(); err == nil {
			t.Errorf("%+v: valid, want an error", s)
		}
	}
	for _, s := range []Spec{{Above: 1}, {WarnAbove: 1}, {Above: 1, For: time.Minute, Measure: Anon}} {
		if err := s.validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Recycle: "recycle", Warn: "warn", WarnCleared: "warn_cleared", 0: "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestClearLevel(t *testing.T) {
	for in, want := range map[uint64]uint64{0: 0, 20: 19, 1000: 950, 1 << 30: 1<<30 - (1<<30)/20} {
		if got := ClearLevel(in); got != want {
			t.Errorf("ClearLevel(%d) = %d, want %d", in, got, want)
		}
	}
}
