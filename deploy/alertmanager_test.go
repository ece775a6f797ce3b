package deploy_test

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	alertmanagerFile = "alertmanager/alertmanager.yml"
	amtoolHint       = "Debian package prometheus-alertmanager"
	// oomLoopProgram names the program of rules_test.yml's one-incident
	// scenario of an OOM loop.
	oomLoopProgram = "loop"
	// hangLoopProgram names the program of rules_test.yml's one-incident
	// scenario of a program restarted for hangs until respawnd gives up.
	hangLoopProgram = "hang"
)

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := requireTool(t, "amtool", amtoolHint)
	out, err := run(t, ".", amtool, "check-config", alertmanagerFile)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}

// TestAmtoolRoutes checks where each severity goes: critical pages, info
// never does.
func TestAmtoolRoutes(t *testing.T) {
	amtool := requireTool(t, "amtool", amtoolHint)
	for severity, receiver := range map[string]string{"critical": "pager", "warning": "chat", "info": "info"} {
		out, err := run(t, ".", amtool, "config", "routes", "test", "--config.file="+alertmanagerFile,
			"--verify.receivers="+receiver, "severity="+severity, "alertname=RespawndProgramFatal", "program=api")
		if err != nil {
			t.Errorf("severity %s: want receiver %s: %v\n%s", severity, receiver, err, out)
		}
	}
}

// inhibitRule is one of Alertmanager's inhibit_rules, in the matcher form
// (source_match and target_match are deprecated; the test rejects them).
type inhibitRule struct {
	SourceMatchers []string          `yaml:"source_matchers"`
	TargetMatchers []string          `yaml:"target_matchers"`
	Equal          []string          `yaml:"equal"`
	SourceMatch    map[string]string `yaml:"source_match"`
	TargetMatch    map[string]string `yaml:"target_match"`
	SourceMatchRE  map[string]string `yaml:"source_match_re"`
	TargetMatchRE  map[string]string `yaml:"target_match_re"`
}

// matcher is one label matcher of Alertmanager's matcher syntax, limited to
// the quoted forms the example uses; anything else is a test failure.
type matcher struct {
	name, op string
	re       *regexp.Regexp
	value    string
}

var matcherSyntax = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"((?:[^"\\]|\\.)*)"$`)

func parseMatcher(s string) (matcher, error) {
	m := matcherSyntax.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return matcher{}, fmt.Errorf("matcher %q: want name=\"value\" or name=~\"regex\"", s)
	}
	out := matcher{name: m[1], op: m[2], value: m[3]}
	if out.op == "=~" || out.op == "!~" {
		// Alertmanager anchors regular expressions at both ends.
		re, err := regexp.Compile("^(?:" + m[3] + ")$")
		if err != nil {
			return matcher{}, fmt.Errorf("matcher %q: %w", s, err)
		}
		out.re = re
	}
	return out, nil
}

func (m matcher) matches(l map[string]string) bool {
	v := l[m.name]
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

type compiledInhibit struct {
	source, target []matcher
	equal          []string
}

func loadInhibitRules(t *testing.T) []compiledInhibit {
	t.Helper()
	var cfg struct {
		InhibitRules []inhibitRule `yaml:"inhibit_rules"`
	}
	if err := yaml.Unmarshal(readFile(t, alertmanagerFile), &cfg); err != nil {
		t.Fatalf("%s: %v", alertmanagerFile, err)
	}
	if len(cfg.InhibitRules) == 0 {
		t.Fatalf("%s: no inhibit_rules", alertmanagerFile)
	}
	var out []compiledInhibit
	for i, r := range cfg.InhibitRules {
		if r.SourceMatch != nil || r.TargetMatch != nil || r.SourceMatchRE != nil || r.TargetMatchRE != nil {
			t.Errorf("%s: inhibit_rules[%d]: use source_matchers/target_matchers", alertmanagerFile, i)
		}
		var c compiledInhibit
		for _, s := range r.SourceMatchers {
			m, err := parseMatcher(s)
			if err != nil {
				t.Fatalf("%s: inhibit_rules[%d]: %v", alertmanagerFile, i, err)
			}
			c.source = append(c.source, m)
		}
		for _, s := range r.TargetMatchers {
			m, err := parseMatcher(s)
			if err != nil {
				t.Fatalf("%s: inhibit_rules[%d]: %v", alertmanagerFile, i, err)
			}
			c.target = append(c.target, m)
		}
		c.equal = r.Equal
		out = append(out, c)
	}
	return out
}

func matchAll(ms []matcher, l map[string]string) bool {
	for _, m := range ms {
		if !m.matches(l) {
			return false
		}
	}
	return true
}

// inhibited reports whether Alertmanager would mute target given the firing
// alerts: some rule's source matchers match another firing alert, its
// target matchers match target, and both agree on the equal labels (a
// missing label equals a missing label, as in Alertmanager).
func inhibited(rules []compiledInhibit, firing []map[string]string, target map[string]string) bool {
	for _, r := range rules {
		if !matchAll(r.target, target) {
			continue
		}
	sources:
		for _, src := range firing {
			if fmt.Sprint(src) == fmt.Sprint(target) || !matchAll(r.source, src) {
				continue
			}
			for _, e := range r.equal {
				if src[e] != target[e] {
					continue sources
				}
			}
			return true
		}
	}
	return false
}

// TestInhibitOneOOMLoopOnePage takes the firing set that promtool checks
// in rules_test.yml's one-incident scenario of an OOM loop (a program
// OOM-killed every 30 s that respawnd then gives up on), complete because
// every alert is listed at each of its eval_times, applies
// alertmanager.yml's inhibit_rules and wants exactly one critical alert at
// each time, and no other alert left about that program.
func TestInhibitOneOOMLoopOnePage(t *testing.T) {
	checkOneIncidentOnePage(t, oomLoopProgram)
}

// TestInhibitOneHangLoopOnePage does the same for the scenario of a
// program that hangs again and again (failing health checks, restarted
// for them every 2 minutes) until respawnd gives up on it.
func TestInhibitOneHangLoopOnePage(t *testing.T) {
	checkOneIncidentOnePage(t, hangLoopProgram)
}

// checkOneIncidentOnePage applies the inhibit_rules to the firing sets of
// the rules_test.yml test whose input series name program, at each of its
// eval_times, and wants one page and one alert left about program.
func checkOneIncidentOnePage(t *testing.T, program string) {
	t.Helper()
	rules := loadInhibitRules(t)
	var rt rulesTest
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rulesTestFile)))
	dec.KnownFields(true)
	if err := dec.Decode(&rt); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	var alerts []string
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			alerts = append(alerts, r.Alert)
		}
	}
	found := false
	for _, tc := range rt.Tests {
		scenario := false
		for _, s := range tc.InputSeries {
			scenario = scenario || strings.Contains(s.Series, `program="`+program+`"`)
		}
		if !scenario {
			continue
		}
		found = true
		listed := map[string]map[string]bool{}
		firing := map[string][]map[string]string{}
		for _, a := range tc.AlertRuleTest {
			if listed[a.EvalTime] == nil {
				listed[a.EvalTime] = map[string]bool{}
			}
			listed[a.EvalTime][a.Alertname] = true
			for _, e := range a.ExpAlerts {
				l := map[string]string{"alertname": a.Alertname}
				for k, v := range e.ExpLabels {
					l[k] = v
				}
				firing[a.EvalTime] = append(firing[a.EvalTime], l)
			}
		}
		if len(listed) < 2 {
			t.Errorf("%s: the %s scenario checks %d eval_times, want the loop and the give-up", rulesTestFile, program, len(listed))
		}
		for at, names := range listed {
			for _, a := range alerts {
				if !names[a] {
					t.Errorf("%s: %s scenario at %s: %s not listed, so the firing set is not known to be complete", rulesTestFile, program, at, a)
				}
			}
			var pages, loopLeft []string
			for _, l := range firing[at] {
				if inhibited(rules, firing[at], l) {
					continue
				}
				if l["severity"] == "critical" {
					pages = append(pages, l["alertname"]+"{program="+l["program"]+"}")
				}
				if l["program"] == program {
					loopLeft = append(loopLeft, l["alertname"])
				}
			}
			sort.Strings(pages)
			if len(pages) != 1 {
				t.Errorf("%s scenario at %s: %d pages after inhibition %v, want exactly 1", program, at, len(pages), pages)
			}
			if len(loopLeft) != 1 {
				t.Errorf("%s scenario at %s: %v left after inhibition about %s, want one alert", program, at, loopLeft, program)
			}
			if len(firing[at]) < 2 {
				t.Errorf("%s scenario at %s: only %d alerts fire: nothing to inhibit", program, at, len(firing[at]))
			}
		}
	}
	if !found {
		t.Fatalf("%s: no test with a program %q (the one-incident scenario)", rulesTestFile, program)
	}
}

// TestInhibitNeedsSameProgram checks that equal keeps one program's worst
// alert from muting another program's alerts.
func TestInhibitNeedsSameProgram(t *testing.T) {
	rules := loadInhibitRules(t)
	src := map[string]string{"alertname": "RespawndProgramFatal", "severity": "critical", "job": "respawnd", "instance": "node-a", "program": "a"}
	other := map[string]string{"alertname": "RespawndProgramOOMKillsRecurring", "severity": "critical", "job": "respawnd", "instance": "node-a", "program": "b"}
	same := map[string]string{"alertname": "RespawndProgramOOMKillsRecurring", "severity": "critical", "job": "respawnd", "instance": "node-a", "program": "a"}
	firing := []map[string]string{src, other, same}
	if inhibited(rules, firing, other) {
		t.Error("Fatal of program a mutes Recurring of program b")
	}
	if !inhibited(rules, firing, same) {
		t.Error("Fatal of program a does not mute Recurring of program a")
	}
	if inhibited(rules, firing, src) {
		t.Error("Fatal is muted")
	}
}

// TestInhibitLiveness checks the two severities of
// RespawndProgramRestartedForHang: the critical one mutes the warning one
// and the restart alerts of the same program; the warning one mutes only
// the failing health checks and the not-ready start it explains. A
// not-ready start mutes the failing checks, not the other way round, and
// nothing mutes a foreign notify sender.
func TestInhibitLiveness(t *testing.T) {
	rules := loadInhibitRules(t)
	alert := func(name, severity string) map[string]string {
		return map[string]string{"alertname": name, "severity": severity, "job": "respawnd", "instance": "node-a", "program": "api"}
	}
	critical := alert("RespawndProgramRestartedForHang", "critical")
	warning := alert("RespawndProgramRestartedForHang", "warning")
	crashLooping := alert("RespawndProgramCrashLooping", "warning")
	failing := alert("RespawndProgramFailingHealthChecks", "warning")
	notReady := alert("RespawndProgramNotReady", "warning")
	foreign := alert("RespawndNotifyForeignSender", "warning")
	for _, c := range []struct {
		firing []map[string]string
		target map[string]string
		want   bool
	}{
		{[]map[string]string{critical, warning}, warning, true},
		{[]map[string]string{critical, warning}, critical, false},
		{[]map[string]string{critical, crashLooping}, crashLooping, true},
		{[]map[string]string{warning, crashLooping}, crashLooping, false},
		{[]map[string]string{warning, failing}, failing, true},
		{[]map[string]string{warning, notReady}, notReady, true},
		{[]map[string]string{notReady, failing}, failing, true},
		{[]map[string]string{notReady, failing}, notReady, false},
		{[]map[string]string{critical, foreign}, foreign, false},
		{[]map[string]string{alert("RespawndProgramFatal", "critical"), foreign}, foreign, false},
	} {
		if got := inhibited(rules, c.firing, c.target); got != c.want {
			t.Errorf("%s{severity=%s} muted while %d alerts fire: %v, want %v", c.target["alertname"], c.target["severity"], len(c.firing), got, c.want)
		}
	}
}
