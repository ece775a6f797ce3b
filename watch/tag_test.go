package watch

import (
	"errors"
	"strings"
	"testing"
)

func TestTagRoundTrip(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tg, err := NewTagger(secret, "boot-a")
	if err != nil {
		t.Fatal(err)
	}
	want := Tag{Program: "web", Generation: 7, Ticks: 123456, Config: "00ff00ff00ff00ff"}
	entry := tg.Entry(want)
	value, ok := strings.CutPrefix(entry, TagKey+"=")
	if !ok || !strings.HasPrefix(value, Prefix("web")) || !strings.HasPrefix(value, Prefix("")) {
		t.Fatalf("entry %q", entry)
	}
	got, err := tg.Valid(value, "web", 123456+TagWindow)
	if err != nil || got != want {
		t.Fatalf("Valid = %+v, %v; want %+v", got, err, want)
	}

	other, _ := NewTagger([]byte("another secret, another daemon!!"), "boot-a")
	nextBoot, _ := NewTagger(secret, "boot-b")
	forged := strings.Replace(value, ":7:", ":8:", 1)
	for name, check := range map[string]func() error{
		"another daemon's secret": func() error { _, err := other.Valid(value, "web", 123456); return err },
		"another boot":            func() error { _, err := nextBoot.Valid(value, "web", 123456); return err },
		"forged generation":       func() error { _, err := tg.Valid(forged, "web", 123456); return err },
		"another program":         func() error { _, err := tg.Valid(value, "db", 123456); return err },
		"started before the tag":  func() error { _, err := tg.Valid(value, "web", 123455); return err },
		"inherited by a process started later": func() error {
			_, err := tg.Valid(value, "web", 123456+TagWindow+1)
			return err
		},
		"old format":    func() error { _, err := tg.Valid("/run/respawnd/web", "web", 123456); return err },
		"truncated mac": func() error { _, err := tg.Valid(value[:len(value)-2], "web", 123456); return err },
		"empty":         func() error { _, err := tg.Valid("", "web", 123456); return err },
		"extra field":   func() error { _, err := tg.Valid(value+":x", "web", 123456); return err },
		"non-hex mac":   func() error { _, err := tg.Valid(value[:len(value)-1]+"z", "web", 123456); return err },
		"changed config": func() error {
			_, err := tg.Valid(strings.Replace(value, "00ff00ff00ff00ff", "00ff00ff00ff00fe", 1), "web", 123456)
			return err
		},
		"changed ticks": func() error {
			_, err := tg.Valid(strings.Replace(value, ":123456:", ":123457:", 1), "web", 123457)
			return err
		},
		"generation junk": func() error { _, err := tg.Valid(strings.Replace(value, ":7:", ":x:", 1), "web", 123456); return err },
	} {
		if err := check(); !errors.Is(err, ErrBadTag) {
			t.Errorf("%s: err = %v, want ErrBadTag", name, err)
		}
	}
}

func TestNewTaggerRefusesWeakInput(t *testing.T) {
	if _, err := NewTagger([]byte("short"), "boot"); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
	if _, err := NewTagger(make([]byte, 32), ""); err == nil {
		t.Error("an empty boot id was accepted")
	}
}

func FuzzTagVerify(f *testing.F) {
	tg, _ := NewTagger([]byte("0123456789abcdef0123456789abcdef"), "boot")
	f.Add(strings.TrimPrefix(tg.Entry(Tag{Program: "web", Generation: 1, Ticks: 2, Config: "ab"}), TagKey+"="))
	f.Add("v1:web:1:2:ab:00")
	f.Add("v1::::::")
	f.Add("v1:web:1:2:ab:A0C1ACACC6C96d050e54A6AC71B26826")  // upper-case hex of a valid mac
	f.Add("v1:web:01:2:ab:a0c1acacc6c96d050e54a6ac71b26826") // a leading zero
	f.Fuzz(func(t *testing.T, value string) {
		got, err := tg.Verify(value)
		if err != nil {
			return
		}
		// Whatever verifies is exactly what this daemon would write.
		if again := strings.TrimPrefix(tg.Entry(got), TagKey+"="); again != value {
			t.Fatalf("%q verified as %+v, which encodes to %q", value, got, again)
		}
	})
}

func TestEnvValue(t *testing.T) {
	env := []byte("A=1\x00RESPAWND_INSTANCE=v1:x\x00RESPAWND_INSTANCE=second\x00B=")
	if got := envValue(env, TagKey); got != "v1:x" {
		t.Errorf("envValue = %q, want the first entry", got)
	}
	if got := envValue(env, "B"); got != "" {
		t.Errorf("empty value: %q", got)
	}
	if got := envValue([]byte("RESPAWND_INSTANCEX=1"), TagKey); got != "" {
		t.Errorf("a longer key matched: %q", got)
	}
}

func TestParseStatusUIDs(t *testing.T) {
	r, e, err := parseStatusUIDs([]byte("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\n"))
	if err != nil || r != 1000 || e != 0 {
		t.Errorf("got %d %d %v", r, e, err)
	}
	if _, _, err := parseStatusUIDs([]byte("Name:\tx\n")); err == nil {
		t.Error("no Uid line accepted")
	}
}
