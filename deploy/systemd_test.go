package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const unitFile = "systemd/respawnd.service"

// installedBinary is where the unit expects respawnd.
const installedBinary = "/usr/local/bin/respawnd"

// newerKeys are unit settings that older systemd does not know, with the
// version that added them. The unit uses them; older systemd ignores them
// with a warning, which the unit's comments account for.
var newerKeys = map[string]int{"DelegateSubgroup": 254}

// newerSettings are whole key=value lines whose value older systemd does
// not know (the key it does), with the version that added the value. Older
// systemd ignores the line with a warning; a drop-in sets what it knows.
var newerSettings = map[string]int{"Type=notify-reload": 253}

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
		v, ok := newerKeys[key]
		if !ok {
			v, ok = newerSettings[line]
		}
		if ok && version < v {
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
		// respawnd speaks RELOADING=1/READY=1 (TestRespawndSpeaksNotifyReload).
		"Type":      "notify-reload",
		"OOMPolicy": "continue",
		// Every program shares the unit's pids budget and open-files limit.
		"TasksMax":    "infinity",
		"LimitNOFILE": "1024:524288",
		"Delegate":    "yes",
		"Restart":     "always",
		"KillMode":    "process",
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
	// notify-reload sends ReloadSignal= itself; an ExecReload= beside it
	// would reload twice. Older systemd gets it from a drop-in.
	for _, k := range []string{"ExecReload", "ReloadSignal"} {
		if got, ok := svc[k]; ok {
			t.Errorf("[Service] %s=%v: notify-reload sends SIGHUP itself", k, got)
		}
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

// TestUnitDropIns pins what each drop-in for older systemd sets.
func TestUnitDropIns(t *testing.T) {
	for file, want := range map[string]map[string]string{
		// No notify-reload before 253: the reload is SIGHUP from ExecReload=.
		"before-systemd-253.conf": {"Type": "notify", "ExecReload": "/bin/kill -HUP $MAINPID"},
		// No DelegateSubgroup= before 254: see the unit's KillMode comment.
		"before-systemd-254.conf": {"KillMode": "mixed"},
	} {
		path := unitFile + ".d/" + file
		d := unitDirectives(t, readFile(t, path))
		if len(d) != 1 || len(d["Service"]) != len(want) {
			t.Errorf("%s: %v, want only [Service] %v", path, d, want)
		}
		for k, v := range want {
			if got := d["Service"][k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: [Service] %s=%v, want %s", path, k, got, v)
			}
		}
	}
	// The install comment at the top of the unit names every drop-in.
	unit := string(readFile(t, unitFile))
	files, err := filepath.Glob(filepath.Join(unitFile+".d", "*.conf"))
	if err != nil || len(files) != 2 {
		t.Fatalf("drop-ins %q: %v", files, err)
	}
	for _, f := range files {
		if !strings.Contains(unit, "respawnd.service.d/"+filepath.Base(f)) {
			t.Errorf("%s does not tell when to install %s", unitFile, filepath.Base(f))
		}
	}
}

// TestUnitStopTimeout checks that systemd waits longer for respawnd to stop
// than the longest stop.timeout of the shipped configurations, and that the
// unit says so next to TimeoutStopSec=.
func TestUnitStopTimeout(t *testing.T) {
	unit := readFile(t, unitFile)
	d := unitDirectives(t, unit)
	got := d["Service"]["TimeoutStopSec"]
	if len(got) != 1 {
		t.Fatalf("[Service] TimeoutStopSec=%v, want one value", got)
	}
	stopSec, err := time.ParseDuration(got[0])
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: %v", got[0], err)
	}
	// respawnd's default stop.timeout (config.DefaultStopTimeout).
	longest, from := 10*time.Second, "the default stop.timeout"
	for _, f := range []string{"../examples/reference.yaml", "../examples/demo.yaml"} {
		var cfg struct {
			Programs []struct {
				Name string `yaml:"name"`
				Stop struct {
					Timeout string `yaml:"timeout"`
				} `yaml:"stop"`
			} `yaml:"programs"`
		}
		if err := yaml.Unmarshal(readFile(t, f), &cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(cfg.Programs) == 0 {
			t.Fatalf("%s: no programs", f)
		}
		for _, p := range cfg.Programs {
			if p.Stop.Timeout == "" {
				continue
			}
			dur, err := time.ParseDuration(p.Stop.Timeout)
			if err != nil {
				t.Fatalf("%s: program %s: stop.timeout %q: %v", f, p.Name, p.Stop.Timeout, err)
			}
			if dur > longest {
				longest, from = dur, f+" program "+p.Name
			}
		}
	}
	// Margin for respawnd's own exit after its programs have stopped.
	if stopSec < longest+10*time.Second {
		t.Errorf("TimeoutStopSec=%s: want at least 10s beyond the longest stop.timeout, %s (%s)", stopSec, longest, from)
	}
	// The rule is written where an operator changes the value.
	i := bytes.Index(unit, []byte("\nTimeoutStopSec="))
	if i < 0 || !bytes.Contains(unit[max(0, i-600):i], []byte("TimeoutStopSec must exceed the largest\n# stop.timeout")) {
		t.Error("the comment above TimeoutStopSec= must say it must exceed the largest stop.timeout")
	}
}

// TestRespawndSpeaksNotifyReload checks the daemon side of Type=notify-reload:
// RELOADING=1 carries MONOTONIC_USEC= (systemd ignores a RELOADING=1 without
// it that it did not ask for), and every reload, applied or rejected, ends
// in READY=1, without which `systemctl reload` would hang until its timeout.
func TestRespawndSpeaksNotifyReload(t *testing.T) {
	sd := string(readFile(t, "../cmd/respawnd/systemd.go"))
	for _, want := range []string{"sd.SdNotifyReloading", "MONOTONIC_USEC=%d", "unix.CLOCK_MONOTONIC", "sdReady    = sd.SdNotifyReady"} {
		if !strings.Contains(sd, want) {
			t.Errorf("cmd/respawnd/systemd.go: no %q", want)
		}
	}
	daemon := string(readFile(t, "../cmd/respawnd/daemon.go"))
	_, loop, ok := strings.Cut(daemon, "case req := <-reload:")
	if !ok {
		t.Fatal("cmd/respawnd/daemon.go: no reload case in the config loop")
	}
	loop, _, _ = strings.Cut(loop, "if req.reply != nil")
	reloading := strings.Index(loop, "notify(d.log, sdReloading())")
	ready := strings.Index(loop, "notify(d.log, sdReady)")
	rejected := strings.Index(loop, "if err != nil {")
	if reloading < 0 || ready < reloading || (rejected >= 0 && rejected < ready) {
		t.Errorf("cmd/respawnd/daemon.go: a reload must send RELOADING=1, then READY=1 whether or not the file was rejected:\n%s", loop)
	}
}
