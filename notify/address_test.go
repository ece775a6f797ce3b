package notify

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAddress(t *testing.T) {
	got, err := Address("prod", "web")
	if err != nil || got != "@respawnd/prod/web" {
		t.Fatalf(`Address("prod", "web") = %q, %v; want "@respawnd/prod/web"`, got, err)
	}
	// The longest name that is used as it is.
	ns := strings.Repeat("n", MaxAddress-len("@respawnd//")-64)
	prog := strings.Repeat("p", 64)
	if got, _ := Address(ns, prog); got != "@respawnd/"+ns+"/"+prog {
		t.Errorf("Address of %d bytes = %q, want it whole", MaxAddress, got)
	}
}

func TestAddressLong(t *testing.T) {
	prog := strings.Repeat("p", 63) + "q" // config.MaxNameLen
	nsA := strings.Repeat("a", 60)
	nsB := strings.Repeat("a", 59) + "b"
	a1, err := Address(nsA, prog)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := Address(nsA, prog)
	b, _ := Address(nsB, prog)
	other, _ := Address(nsA, strings.Repeat("p", 64))
	if a1 != a2 {
		t.Errorf("not stable: %q then %q", a1, a2)
	}
	for _, a := range []string{a1, b, other} {
		if len(a) > MaxAddress || !strings.HasPrefix(a, "@respawnd/") {
			t.Errorf("address %q of %d bytes, want at most %d starting @respawnd/", a, len(a), MaxAddress)
		}
	}
	if !strings.HasSuffix(a1, "/"+prog) {
		t.Errorf("address %q does not end in the whole program name", a1)
	}
	if a1 == b || a1 == other {
		t.Errorf("collision: %q, %q, %q", a1, b, other)
	}
	// A namespace too long on its own still gives a bounded, valid name.
	huge, err := Address(strings.Repeat("x", 500), strings.Repeat("é", 100))
	if err != nil || len(huge) > MaxAddress || !utf8.ValidString(huge) {
		t.Errorf("Address of huge names = %q (%d bytes), %v", huge, len(huge), err)
	}
}

func TestAddressInvalid(t *testing.T) {
	for _, c := range [][2]string{{"", "p"}, {"n", ""}, {"a/b", "p"}, {"n", "p/q"}, {"n\x00", "p"}, {"n", "p\x00"}} {
		if a, err := Address(c[0], c[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("Address(%q, %q) = %q, %v; want ErrInvalid", c[0], c[1], a, err)
		}
	}
}
