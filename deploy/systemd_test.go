package deploy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitFile = "systemd/respawnd.service"

// installedBinary is where the unit expects respawnd.
const installedBinary = "/usr/local/bin/respawnd"

// newerKeys are unit settings that older systemd does not know, with the
// version that added them. The unit uses them; older systemd ignores them
// with a warning, which the unit's comments account for.
var newerKeys = map[string]int{"DelegateSubgroup": 254}

// systemdVersion returns the major version of the installed systemd.
func systemdVersion(t *testing.T, analyze string) int {
	t.Helper()
	out, err := exec.Command(analyze, "--version").Output()
	if err != nil {
		t.Fatalf("systemd-analyze --version: %v", err)
	}
	var v int
	if _, err := fmt.Sscanf(string(out), "systemd %d", &v); err != nil {
		t.Fatalf("systemd-analyze --version: %q: %v", out, err)
	}
	return v
}

// verifyUnit runs systemd-analyze verify on a copy of the unit (and of the
// given drop-ins) whose ExecStart points at a stub executable, since verify
// requires the binary to exist, and returns what it printed. systemd-analyze
// exits 0 even for unknown keys, so any output is a failure. Settings newer
// than the installed systemd are left out of the copy.
func verifyUnit(t *testing.T, unit []byte, dropIns map[string][]byte) string {
	t.Helper()
	analyze := requireTool(t, "systemd-analyze", "Debian package systemd")
	version := systemdVersion(t, analyze)
	dir := t.TempDir()
	stub := filepath.Join(dir, "respawnd")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(strings.ReplaceAll(string(unit), installedBinary, stub), "\n") {
		key, _, _ := strings.Cut(line, "=")
		if v, ok := newerKeys[key]; ok && version < v {
			t.Logf("systemd %d: verifying without %q (systemd %d and later)", version, line, v)
			continue
		}
		lines = append(lines, line)
	}
	path := filepath.Join(dir, "respawnd.service")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(dropIns) > 0 {
		if err := os.Mkdir(path+".d", 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range dropIns {
			if err := os.WriteFile(filepath.Join(path+".d", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = dir
	// Diagnostics on stderr, never to the journal or the kernel log.
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_TARGET=console", "SYSTEMD_LOG_COLOR=0")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		out += "\n" + err.Error()
	}
	return strings.TrimSpace(out)
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	unit := readFile(t, unitFile)
	if !strings.Contains(string(unit), "ExecStart="+installedBinary+" ") {
		t.Fatalf("ExecStart must start %s", installedBinary)
	}
	if out := verifyUnit(t, unit, nil); out != "" {
		t.Errorf("systemd-analyze verify %s:\n%s", unitFile, out)
	}
	// With every drop-in shipped.
	dropIns := map[string][]byte{}
	files, err := filepath.Glob(filepath.Join(unitFile+".d", "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no drop-ins in %s.d: %v", unitFile, err)
	}
	for _, f := range files {
		dropIns[filepath.Base(f)] = readFile(t, f)
	}
	if out := verifyUnit(t, unit, dropIns); out != "" {
		t.Errorf("systemd-analyze verify %s with its drop-ins:\n%s", unitFile, out)
	}
	// The check itself must catch a mistake, in the unit and in a drop-in.
	bad := strings.Replace(string(unit), "\nOOMPolicy=continue", "\nOOMPolicyy=continue", 1)
	if out := verifyUnit(t, []byte(bad), nil); !strings.Contains(out, "OOMPolicyy") {
		t.Errorf("systemd-analyze verify did not report an unknown key: %q", out)
	}
	if out := verifyUnit(t, unit, map[string][]byte{"x.conf": []byte("[Service]\nKillModee=mixed\n")}); !strings.Contains(out, "KillModee") {
		t.Errorf("systemd-analyze verify did not report an unknown key in a drop-in: %q", out)
	}
}

// unitDirectives parses a unit file into section -> key -> values.
func unitDirectives(t *testing.T, b []byte) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	s := bufio.NewScanner(strings.NewReader(string(b)))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", unitFile, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// TestUnitChoices pins the settings respawnd depends on, and keeps out
// those that break it (their reasons are in the unit's comments).
func TestUnitChoices(t *testing.T) {
	d := unitDirectives(t, readFile(t, unitFile))
	svc := d["Service"]
	for k, want := range map[string]string{
		"Type":       "notify",
		"ExecReload": "/bin/kill -HUP $MAINPID",
		"OOMPolicy":  "continue",
		"Delegate":   "yes",
		"Restart":    "always",
		"KillMode":   "process",
		// Lets systemd start respawnd next to programs that survived it.
		"DelegateSubgroup": "supervisor",
		"OOMScoreAdjust":   "-900",
		// respawnd's --state.dir default, kept across restarts for adoption.
		"RuntimeDirectory":         "respawnd",
		"RuntimeDirectoryPreserve": "restart",
	} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s=%v, want %s", k, got, want)
		}
	}
	if got := d["Unit"]["StartLimitIntervalSec"]; len(got) != 1 || got[0] != "0" {
		t.Errorf("[Unit] StartLimitIntervalSec=%v, want 0: never stop restarting respawnd", got)
	}
	for _, k := range []string{"PrivateDevices", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "DeviceAllow", "ProtectProc", "ProcSubset", "PrivateUsers", "DynamicUser", "User", "MemoryMax"} {
		if _, ok := svc[k]; ok {
			t.Errorf("[Service] %s breaks respawnd (see the unit's comments)", k)
		}
	}
	if got := d["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%v", got)
	}
}
