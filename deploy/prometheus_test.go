package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var update = flag.Bool("update", false, "rewrite generated files (kubernetes/prometheusrule.yaml) from their sources")

const (
	rulesFile     = "prometheus/rules.yml"
	rulesTestFile = "prometheus/rules_test.yml"
	promRuleFile  = "kubernetes/prometheusrule.yaml"
	promtoolHint  = "Debian package prometheus"
	runbooksFile  = "../docs/runbooks.md"
	// runbookBaseURL is where docs/runbooks.md is read; each alert's
	// runbook_url is it plus the alert's name in lower case (the anchor
	// of its "## Name" section).
	runbookBaseURL = "https://github.com/respawnd/respawnd/blob/main/docs/runbooks.md#"
)

// loadRuleGroups parses rules.yml as Prometheus does, unknown keys rejected.
func loadRuleGroups(t *testing.T) []rulefmt.RuleGroup {
	t.Helper()
	rgs, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if rgs == nil {
		t.FailNow()
	}
	return rgs.Groups
}

func loadRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	var out []rulefmt.Rule
	for _, g := range loadRuleGroups(t) {
		out = append(out, g.Rules...)
	}
	return out
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := requireTool(t, "promtool", promtoolHint)
	out, err := run(t, ".", promtool, "check", "rules", "--lint=all", "--lint-fatal", rulesFile)
	if err != nil || strings.Contains(out, "WARNING") {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := requireTool(t, "promtool", promtoolHint)
	out, err := run(t, ".", promtool, "test", "rules", rulesTestFile)
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

func TestPromtoolCheckConfig(t *testing.T) {
	promtool := requireTool(t, "promtool", promtoolHint)
	out, err := run(t, ".", promtool, "check", "config", "prometheus/prometheus.yml")
	if err != nil || strings.Contains(out, "WARNING") {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// TestRulesUseRespawndMetrics checks every rule's expression against the
// metrics respawnd exports.
func TestRulesUseRespawndMetrics(t *testing.T) {
	pc := newPromQLChecker(t)
	for _, r := range loadRules(t) {
		for _, err := range pc.check(r.Expr) {
			t.Errorf("%s%s: %v", r.Alert, r.Record, err)
		}
	}
}

// TestAlertsAreActionable checks what an on-call engineer gets: a severity,
// a summary and a description that name the program (or the source, or the
// instance) the alert is about, a runbook and a dashboard link; and that no
// alert carries a label that splits one program's alerts into several
// groups (state, reason, le: drop them with max without (...)).
func TestAlertsAreActionable(t *testing.T) {
	pc := newPromQLChecker(t)
	runbook := string(readFile(t, runbooksFile))
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if s := r.Labels["severity"]; s != "info" && s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want info, warning or critical", r.Alert, s)
		}
		if !strings.HasPrefix(r.Alert, "Respawnd") {
			t.Errorf("%s: alert names start with Respawnd", r.Alert)
		}
		sum, desc := r.Annotations["summary"], r.Annotations["description"]
		if sum == "" || len(desc) < 80 {
			t.Errorf("%s: needs a summary and a description that says what to do", r.Alert)
		}
		labels, err := pc.outputLabels(r.Expr)
		if err != nil {
			t.Fatal(err)
		}
		for l := range labels {
			if !groupingLabels[l] {
				t.Errorf("%s: its result has label %q, which breaks grouping by %v", r.Alert, l, sortedKeys(groupingLabels))
			}
		}
		for _, l := range []string{"program", "source", "instance"} {
			if labels[l] && !strings.Contains(sum, "$labels."+l) {
				t.Errorf("%s: the summary does not name the %s", r.Alert, l)
			}
		}
		for k := range r.Annotations {
			if k != "summary" && k != "description" && k != "runbook_url" && k != "dashboard_url" {
				t.Errorf("%s: unexpected annotation %q", r.Alert, k)
			}
		}
		anchor := strings.ToLower(r.Alert)
		if want := runbookBaseURL + anchor; r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !strings.Contains(runbook, "\n## "+r.Alert+"\n") {
			t.Errorf("%s: %s has no section \"## %s\" (anchor #%s)", r.Alert, runbooksFile, r.Alert, anchor)
		}
		if d := r.Annotations["dashboard_url"]; !strings.HasPrefix(d, "/d/respawnd/respawnd?") {
			t.Errorf("%s: dashboard_url %q, want a link to the respawnd dashboard (/d/respawnd/respawnd?...)", r.Alert, d)
		} else if labels["program"] && !strings.Contains(d, "var-program={{ $labels.program }}") {
			t.Errorf("%s: dashboard_url %q does not select the program", r.Alert, d)
		}
	}
}

// groupingLabels are the labels an alert may carry besides alertname and
// severity: those of Alertmanager's group_by and the inhibit_rules' equal.
var groupingLabels = map[string]bool{"job": true, "instance": true, "program": true, "source": true}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// rulesTest is promtool's unit test file, as much of it as this test reads.
type rulesTest struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Interval    string `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr       string `yaml:"expr"`
			EvalTime   string `yaml:"eval_time"`
			ExpSamples []struct {
				Labels string  `yaml:"labels"`
				Value  float64 `yaml:"value"`
			} `yaml:"exp_samples"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// TestEveryAlertIsUnitTested requires, for every alert, a unit test where
// it fires and one where it must stay silent; and checks the test's own
// input series and queries against the contract.
func TestEveryAlertIsUnitTested(t *testing.T) {
	var rt rulesTest
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rulesTestFile)))
	dec.KnownFields(true)
	if err := dec.Decode(&rt); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	pc := newPromQLChecker(t)
	for _, tc := range rt.Tests {
		for _, s := range tc.InputSeries {
			for _, err := range pc.check(s.Series) {
				t.Errorf("%s: input series: %v", rulesTestFile, err)
			}
		}
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
		for _, p := range tc.PromQLExprTest {
			for _, err := range pc.check(p.Expr) {
				t.Errorf("%s: %v", rulesTestFile, err)
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] {
			t.Errorf("%s: no unit test where it fires", r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("%s: no unit test where it must not fire", r.Alert)
		}
	}
	// Every recording rule is queried by a promql_expr_test.
	for _, r := range loadRules(t) {
		if r.Record == "" {
			continue
		}
		tested := false
		for _, tc := range rt.Tests {
			for _, p := range tc.PromQLExprTest {
				tested = tested || strings.Contains(p.Expr, r.Record)
			}
		}
		if !tested {
			t.Errorf("recording rule %s: no promql_expr_test", r.Record)
		}
	}
}

// prometheusRuleHeader starts the generated PrometheusRule.
const prometheusRuleHeader = `# prometheus-operator: respawnd's recording and alerting rules.
# Generated from ../prometheus/rules.yml by ` + "`go test -run TestPrometheusRule -update`" + ` in
# deploy/; do not edit by hand.
`

// wantPrometheusRule builds the PrometheusRule that carries rules.yml.
func wantPrometheusRule(t *testing.T) *monitoringv1.PrometheusRule {
	t.Helper()
	pr := &monitoringv1.PrometheusRule{}
	pr.APIVersion = "monitoring.coreos.com/v1"
	pr.Kind = "PrometheusRule"
	pr.Name = "respawnd"
	pr.Namespace = "respawnd"
	pr.Labels = map[string]string{"app.kubernetes.io/name": "respawnd", "app.kubernetes.io/component": "node-agent"}
	for _, g := range loadRuleGroups(t) {
		mg := monitoringv1.RuleGroup{Name: g.Name}
		for _, r := range g.Rules {
			mr := monitoringv1.Rule{Record: r.Record, Alert: r.Alert, Expr: intstr.FromString(r.Expr), Labels: r.Labels, Annotations: r.Annotations}
			if r.For != 0 {
				d := monitoringv1.Duration(r.For.String())
				mr.For = &d
			}
			if r.KeepFiringFor != 0 {
				d := monitoringv1.NonEmptyDuration(r.KeepFiringFor.String())
				mr.KeepFiringFor = &d
			}
			mg.Rules = append(mg.Rules, mr)
		}
		pr.Spec.Groups = append(pr.Spec.Groups, mg)
	}
	return pr
}

// TestPrometheusRule checks that the PrometheusRule for prometheus-operator
// carries exactly the rules of rules.yml. With -update it rewrites it.
func TestPrometheusRule(t *testing.T) {
	want := wantPrometheusRule(t)
	if *update {
		b, err := marshalOrdered(map[string]any{
			"apiVersion": want.APIVersion,
			"kind":       want.Kind,
			"metadata":   map[string]any{"name": want.Name, "namespace": want.Namespace, "labels": want.Labels},
			"spec":       want.Spec,
		}, "apiVersion", "kind", "metadata", "spec")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(promRuleFile, append([]byte(prometheusRuleHeader), b...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs := decodeManifests(t, promRuleFile)
	if len(objs) != 1 {
		t.Fatalf("%s: %d objects, want 1", promRuleFile, len(objs))
	}
	got, ok := objs[0].(*monitoringv1.PrometheusRule)
	if !ok {
		t.Fatalf("%s: a %T, want a PrometheusRule", promRuleFile, objs[0])
	}
	if !reflect.DeepEqual(got.Spec, want.Spec) || got.Name != want.Name || got.Namespace != want.Namespace {
		t.Errorf("%s differs from %s: run `go test -run TestPrometheusRule -update` in deploy/", promRuleFile, rulesFile)
	}
}

// marshalOrdered writes v as YAML: top-level keys in the order given,
// struct fields in their declaration order, long strings on one line.
func marshalOrdered(v map[string]any, order ...string) ([]byte, error) {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range order {
		js, err := json.Marshal(v[k])
		if err != nil {
			return nil, err
		}
		var n yaml.Node
		// JSON is YAML: decoding it into a node keeps the order of fields.
		if err := yaml.Unmarshal(js, &n); err != nil {
			return nil, err
		}
		val := n.Content[0]
		clearStyle(val)
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// clearStyle drops JSON's flow style and quoting so the node prints as
// block YAML.
func clearStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		clearStyle(c)
	}
}
