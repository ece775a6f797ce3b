package restart_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/restart"
)

func TestCredentials(t *testing.T) {
	testenv.RequireRoot(t, "starting programs as another user")
	verifyNoLeaks(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.Skip(t, "no user nobody: %v", err)
	}
	exe, dir := testenv.ExeForOthers(t, "prog")
	procs := filepath.Join(dir, "procs") // stands in for cgroup.procs
	if err := os.WriteFile(procs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := localHelperArgv("ids")
	argv[0] = exe
	nobodyGroups, err := nobody.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, group string
		want              string
	}{
		{"by name", "nobody", "", nobody.Uid + " " + nobody.Gid + " " + strings.Join(nobodyGroups, ",") + " " + dir},
		{"by uid", nobody.Uid, "", nobody.Uid + " " + nobody.Gid + " " + strings.Join(nobodyGroups, ",") + " " + dir},
		{"with group", "nobody", "0", nobody.Uid + " 0 " + strings.Join(nobodyGroups, ",") + " " + dir},
		{"unknown numeric uid", "4242", "", "4242 4242  " + dir},
	}
	for _, tt := range tests {
		for _, shim := range []bool{false, true} {
			name := tt.name
			cmd := restart.Command{Name: "ids", Argv: argv, User: tt.user, Group: tt.group, Dir: dir}
			if shim {
				name += " through the shim"
				cmd.CgroupProcs = []string{procs}
			}
			t.Run(name, func(t *testing.T) {
				l, out := newTestLauncher(restart.LauncherConfig{})
				p := start(t, l, cmd)
				if st := waitDone(t, p); st.Code != 0 {
					t.Fatalf("exit status %+v\n%s", st, out)
				}
				waitOutput(t, p)
				if got, want := out.String(), "ids | "+tt.want+"\n"; got != want {
					t.Errorf("uid gid groups cwd: got %q, want %q", got, want)
				}
			})
		}
	}
}
