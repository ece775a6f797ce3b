package restart

import (
	"slices"
	"strings"
	"testing"
)

func TestWithLoginEnv(t *testing.T) {
	login := loginEnv("nobody", "/nonexistent", "/usr/sbin/nologin")
	env := make([]string, 2, 8) // room to append, which must not be used
	env[0], env[1] = "PATH=/usr/bin", "HOME=/srv/app"
	got := withLoginEnv(env, login)
	want := []string{"PATH=/usr/bin", "HOME=/srv/app", "USER=nobody", "LOGNAME=nobody", "SHELL=/usr/sbin/nologin"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if env[:3][2] != "" {
		t.Errorf("the caller's array was written to: %q", env[:3])
	}
	if got := withLoginEnv(nil, loginEnv("4242", "", "")); !slices.Equal(got, []string{"HOME=/", "USER=4242", "LOGNAME=4242"}) {
		t.Errorf("numeric uid: %q", got)
	}
	// A key that merely starts like a login key is not one.
	if got := withLoginEnv([]string{"HOMEDIR=/x", "USER="}, login); !slices.Contains(got, "HOME=/nonexistent") || slices.Contains(got, "USER=nobody") {
		t.Errorf("got %q", got)
	}
}

func TestPasswdShell(t *testing.T) {
	const passwd = `root:x:0:0:root:/root:/bin/bash
# a comment
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
noshell:x:1001:1001::/home/noshell:
alias:x:0:0::/root:/bin/zsh
`
	for _, tt := range []struct {
		name, uid, want string
		ok              bool
	}{
		{"root", "0", "/bin/bash", true},
		{"nobody", "65534", "/usr/sbin/nologin", true},
		{"noshell", "1001", "/bin/sh", true},
		{"alias", "0", "/bin/zsh", true},
		{"nobody", "1", "", false},
		{"missing", "7", "", false},
	} {
		got, ok := passwdShell(strings.NewReader(passwd), tt.name, tt.uid)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s/%s: %q, %v; want %q, %v", tt.name, tt.uid, got, ok, tt.want, tt.ok)
		}
	}
}
