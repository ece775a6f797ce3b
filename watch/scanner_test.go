package watch

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/respawnd/respawnd/internal/testenv"
)

const hostileComm = "(a b ) ( c d) "

func fixtureScanner(t *testing.T) (*Scanner, string) {
	t.Helper()
	root := fixtureRoot(t)
	s, err := New(Config{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func pids(ps []Process) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.Identity.PID)
	}
	return out
}

func TestMatchFixtures(t *testing.T) {
	s, root := fixtureScanner(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	for _, tc := range []struct {
		name string
		m    Matcher
		want []int
	}{
		// 6929 (zombie) and 6935 (no stat) are sleeps too and never match.
		{"comm", Matcher{Comm: "sleep"}, []int{6925, 6934, 7099}},
		{"hostile comm", Matcher{Comm: hostileComm}, []int{7100}},
		{"comm prefix is no match", Matcher{Comm: "(a b )"}, nil},
		{"kernel thread never matches", Matcher{Comm: "kthreadd"}, nil},
		{"exe", Matcher{Exe: "/usr/bin/sleep"}, []int{6925, 6934, 7099}},
		{"exe and comm", Matcher{Exe: "/usr/bin/python3.11", Comm: hostileComm}, []int{7100}},
		{"cmdline", Matcher{Cmdline: regexp.MustCompile(`^sleep 1000[15]$`)}, []int{6934, 7099}},
		{"cmdline across arguments", Matcher{Cmdline: regexp.MustCompile(`^python3 -c open\(`)}, []int{7100}},
		{"cmdline and comm disagree", Matcher{Comm: "sh", Cmdline: regexp.MustCompile(`sleep 10003`)}, nil},
		{"user by uid", Matcher{Comm: "sh", User: "0"}, []int{7097}},
		{"user by name", Matcher{Comm: "sh", User: "root"}, []int{7097}},
		{"other user", Matcher{Comm: "sh", User: "4242"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Match(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if g := pids(got); !equalInts(g, tc.want) {
				t.Errorf("matched %v, want %v", g, tc.want)
			}
		})
	}

	t.Run("process fields", func(t *testing.T) {
		got, err := s.Match(Matcher{Comm: hostileComm})
		if err != nil || len(got) != 1 {
			t.Fatalf("Match = %v, %v", got, err)
		}
		p := got[0]
		want := Process{
			Identity: Identity{PID: 7100, StartTime: 211258},
			Comm:     hostileComm, Exe: "/usr/bin/python3.11",
			UID: 0, PPID: 7097, PGID: 7097,
		}
		if p.Identity != want.Identity || p.Comm != want.Comm || p.Exe != want.Exe || p.UID != 0 || p.PPID != want.PPID || p.PGID != want.PGID {
			t.Errorf("got %+v, want %+v", p, want)
		}
		if len(p.Cmdline) != 3 || p.Cmdline[0] != "python3" || p.Cmdline[1] != "-c" {
			t.Errorf("cmdline %q", p.Cmdline)
		}
	})

	t.Run("pidfile", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			testenv.Skip(t, "pidfiles are opened through internal/securefs, which needs Linux")
		}
		for _, tc := range []struct {
			content string
			m       Matcher
			want    []int
		}{
			{"7099\n", Matcher{}, []int{7099}},
			{"7099", Matcher{Comm: "sh"}, nil},
			{"6929\n", Matcher{}, nil}, // zombie
			{"6935\n", Matcher{}, nil}, // no stat
			{"99999\n", Matcher{}, nil},
			{"", Matcher{}, nil},
		} {
			if err := os.WriteFile(pidfile, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.m.Pidfile = pidfile
			got, err := s.Match(tc.m)
			if err != nil {
				t.Fatalf("pidfile %q: %v", tc.content, err)
			}
			if g := pids(got); !equalInts(g, tc.want) {
				t.Errorf("pidfile %q: matched %v, want %v", tc.content, g, tc.want)
			}
		}
		if got, err := s.Match(Matcher{Pidfile: filepath.Join(root, "missing.pid")}); err != nil || got != nil {
			t.Errorf("missing pidfile: %v, %v", got, err)
		}
		if err := os.WriteFile(pidfile, []byte("seven\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Match(Matcher{Pidfile: pidfile}); err == nil {
			t.Error("garbage pidfile: no error")
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for _, m := range []Matcher{{}, {User: "root"}, {Comm: "sh", User: "no-such-user-respawnd"}} {
			if _, err := s.Match(m); !errors.Is(err, ErrInvalidMatcher) {
				t.Errorf("Match(%+v) = %v, want ErrInvalidMatcher", m, err)
			}
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIdentityFixtures(t *testing.T) {
	s, _ := fixtureScanner(t)
	id, err := s.Identify(6934)
	if err != nil || id != (Identity{PID: 6934, StartTime: 210612}) {
		t.Fatalf("Identify(6934) = %v, %v", id, err)
	}
	if !s.Alive(id) {
		t.Error("the current owner of pid 6934 is not alive")
	}
	// The first owner of pid 6934, reaped before the capture.
	if s.Alive(Identity{PID: 6934, StartTime: 210606}) {
		t.Error("a reused pid counts as the dead process that had it")
	}
	if s.Alive(Identity{PID: 6929, StartTime: 210553}) {
		t.Error("a zombie is alive")
	}
	for _, pid := range []int{6929, 6935, 99999} {
		if _, err := s.Identify(pid); !errors.Is(err, ErrNotFound) {
			t.Errorf("Identify(%d) = %v, want ErrNotFound", pid, err)
		}
	}
	if ex, ok := s.zombieExit(Identity{PID: 6929, StartTime: 210553}, time.Time{}); !ok || !ex.Known || ex.Code != 0 || ex.Signaled {
		t.Errorf("zombie exit = %+v, %v", ex, ok)
	}
	if _, ok := s.zombieExit(Identity{PID: 6929, StartTime: 1}, time.Time{}); ok {
		t.Error("zombie exit of another identity")
	}

	boot, err := s.BootTime()
	if err != nil || boot.Unix() != 1795486131 {
		t.Fatalf("BootTime = %v, %v", boot, err)
	}
	started, err := s.Started(id)
	if want := time.Unix(1795486131+2106, 120*int64(time.Millisecond)); err != nil || !started.Equal(want) {
		t.Errorf("Started = %v, %v; want %v", started, err, want)
	}
}

func TestTreeRSSFixtures(t *testing.T) {
	s, _ := fixtureScanner(t)
	page := uint64(os.Getpagesize())
	for _, tc := range []struct {
		pid  int
		want uint64
	}{
		{7097, (391 + 412 + 3326) * page}, // sh with its two children
		{7099, 412 * page},
		{6925, 396 * page}, // its zombie child has no memory
	} {
		got, err := s.TreeRSS(tc.pid)
		if err != nil || got[tc.pid] != tc.want {
			t.Errorf("TreeRSS(%d) = %v, %v; want %d", tc.pid, got, err, tc.want)
		}
	}
	// All at once, in one pass, with roots that are not live processes.
	all, err := s.TreeRSS(7097, 7099, 6925, 6929, 6935, 99999)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[7097] != (391+412+3326)*page || all[7099] != 412*page || all[6925] != 396*page {
		t.Errorf("TreeRSS(several) = %v", all)
	}
}

func TestParseStat(t *testing.T) {
	line := "7100 ((a b ) ( c d) ) S 7097 7097 7097 0 -1 4194304 2824 6503 3 1 6 3 13 11 20 0 1 0 211258 16961536 3326 18446744073709551615 94063011033088 94063011033429 140726666748208 0 0 0 0 16781318 0 1 0 0 17 1 0 0 0 0 0 94063011044784 94063011045400 94063800492032 140726666749894 140726666750022 140726666750022 140726666751951 9\n"
	sf, err := parseStat([]byte(line))
	if err != nil || sf.State != 'S' || sf.StartTime != 211258 || !sf.HasExitCode || sf.ExitCode != 9 {
		t.Errorf("parseStat = %+v, %v", sf, err)
	}
	// Kernels before 3.5 end the line before exit_code.
	old := "1 (init) S 0 1 1 0 -1 4202752 1 2 3 4 5 6 7 8 20 0 1 0 42 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0\n"
	if sf, err := parseStat([]byte(old)); err != nil || sf.HasExitCode || sf.StartTime != 42 {
		t.Errorf("old stat = %+v, %v", sf, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S 0 1 1 0 -1 4 1 2 3 4 5 6 7 8 20 0 1 0 abc 1"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestExitFromWaitStatus(t *testing.T) {
	at := time.Unix(1, 0)
	for _, tc := range []struct {
		status uint32
		want   ExitInfo
		str    string
	}{
		{0, ExitInfo{Known: true, Time: at}, "exit code 0"},
		{3 << 8, ExitInfo{Known: true, Code: 3, Time: at}, "exit code 3"},
		{9, ExitInfo{Known: true, Signaled: true, Signal: 9, Time: at}, "signal killed"},
		{0x80 | 11, ExitInfo{Known: true, Signaled: true, Signal: 11, Core: true, Time: at}, "signal segmentation fault (core dumped)"},
		{0x137f, ExitInfo{Time: at}, "unknown"}, // stopped: never a death
	} {
		got := exitFromWaitStatus(tc.status, at)
		if got != tc.want || got.String() != tc.str {
			t.Errorf("exitFromWaitStatus(%#x) = %+v %q, want %+v %q", tc.status, got, got.String(), tc.want, tc.str)
		}
	}
}

func TestTicksToTime(t *testing.T) {
	boot := time.Unix(1000, 0)
	if got := TicksToTime(boot, 12345); !got.Equal(time.Unix(1123, 450*int64(time.Millisecond))) {
		t.Errorf("TicksToTime = %v", got)
	}
}

// A match for root (uid 0) is as strict as any other: a process of another
// user is not root's. The fixture's sleep 10001 (pid 7099) is made another
// user's by rewriting its status in the test's copy.
func TestMatchUserRootExcludesOthers(t *testing.T) {
	s, root := fixtureScanner(t)
	status := filepath.Join(root, "7099", "status")
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	other := regexp.MustCompile(`(?m)^Uid:.*$`).ReplaceAll(b, []byte("Uid:\t1000\t1000\t1000\t1000"))
	if err := os.WriteFile(status, other, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user string
		want []int
	}{
		{"root", []int{6925, 6934}},
		{"0", []int{6925, 6934}},
		{"1000", []int{7099}},
	} {
		got, err := s.Match(Matcher{Comm: "sleep", User: tc.user})
		if err != nil {
			t.Fatal(err)
		}
		if g := pids(got); !equalInts(g, tc.want) {
			t.Errorf("user %s: matched %v, want %v", tc.user, g, tc.want)
		}
	}
}
