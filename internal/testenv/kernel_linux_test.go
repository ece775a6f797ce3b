package testenv

import "testing"

func TestParseRelease(t *testing.T) {
	for _, tt := range []struct {
		in       string
		maj, min int
		ok       bool
	}{
		{"6.1.0-57-amd64", 6, 1, true},
		{"6.12.117+deb12-amd64", 6, 12, true},
		{"6.18.44-fc-v1045", 6, 18, true},
		{"5.10", 5, 10, true},
		{"6", 0, 0, false},
		{"x.1", 0, 0, false},
		{"6.x", 0, 0, false},
	} {
		maj, min, ok := parseRelease(tt.in)
		if maj != tt.maj || min != tt.min || ok != tt.ok {
			t.Errorf("parseRelease(%q) = %d, %d, %v; want %d, %d, %v", tt.in, maj, min, ok, tt.maj, tt.min, tt.ok)
		}
	}
}
