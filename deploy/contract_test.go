package deploy_test

import (
	"bytes"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// contractFile lists the metrics respawnd exports, in the text exposition
// format (a golden scrape of the real binary can replace it).
const contractFile = "metrics.prom"

// closedLabels are labels whose values come from a fixed set: every value a
// query matches on must appear in the contract.
var closedLabels = []string{"reason", "state", "source", "kind", "window", "result"}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"job", "instance"}

// series is what the contract says about one series name: its label names
// and, for each, the values seen.
type series map[string]map[string]bool

// loadContract reads metrics.prom into series name -> labels. Histograms
// give _bucket (with le), _sum and _count.
func loadContract(t *testing.T) map[string]series {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(readFile(t, contractFile)))
	if err != nil {
		t.Fatalf("%s: %v", contractFile, err)
	}
	out := map[string]series{}
	add := func(name string, lps []*dto.LabelPair, extra ...string) {
		s := out[name]
		if s == nil {
			s = series{}
			out[name] = s
		}
		for _, lp := range lps {
			if s[lp.GetName()] == nil {
				s[lp.GetName()] = map[string]bool{}
			}
			s[lp.GetName()][lp.GetValue()] = true
		}
		for _, l := range extra {
			if s[l] == nil {
				s[l] = map[string]bool{}
			}
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m.GetLabel(), "le")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, m.GetLabel(), "quantile")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			default:
				add(name, m.GetLabel())
			}
		}
	}
	return out
}

func TestContractIsLintClean(t *testing.T) {
	problems, err := promlint.New(bytes.NewReader(readFile(t, contractFile))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s: %s", contractFile, p.Metric, p.Text)
	}
	c := loadContract(t)
	for name := range c {
		if !strings.HasPrefix(name, "respawnd_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "go_") {
			t.Errorf("%s: %s is not respawnd's", contractFile, name)
		}
	}
	for _, l := range closedLabels {
		found := false
		for _, s := range c {
			found = found || len(s[l]) > 0
		}
		if !found {
			t.Errorf("%s: no metric has the label %q", contractFile, l)
		}
	}
}

// listenPort reads web-listen-address: the default of respawnd's
// --web.listen-address flag.
func listenPort(t *testing.T) int {
	t.Helper()
	var addr string
	for line := range strings.SplitSeq(string(readFile(t, "web-listen-address")), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			addr = l
		}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("web-listen-address: %v", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		t.Fatalf("web-listen-address: bad port %q", port)
	}
	return n
}

// portMention finds what looks like a TCP port in a deployment file:
// "host:PORT", ":PORT", "port: PORT" (containerPort, port) and the ports of
// an EXPOSE line.
var (
	portMention  = regexp.MustCompile(`(?:[A-Za-z0-9_.\]-]:|^:|[\s"'=(\[]:|[Pp]ort:\s*)([0-9]{2,5})\b`)
	exposeLine   = regexp.MustCompile(`^\s*EXPOSE\s+(.*)$`)
	exposedPort  = regexp.MustCompile(`\b([0-9]{2,5})\b`)
	otherPorts   = map[string]string{"8080": "the example app", "9090": "Prometheus", "9093": "Alertmanager"}
	excludedDirs = map[string]bool{"testdata": true}
)

// portsIn returns the ports a line names.
func portsIn(line string) []string {
	if strings.HasPrefix(strings.TrimSpace(line), "USER ") {
		return nil // USER uid:gid
	}
	var ports []string
	for _, m := range portMention.FindAllStringSubmatch(line, -1) {
		ports = append(ports, m[1])
	}
	if m := exposeLine.FindStringSubmatch(line); m != nil {
		for _, p := range exposedPort.FindAllStringSubmatch(m[1], -1) {
			ports = append(ports, p[1])
		}
	}
	return ports
}

func TestPortsIn(t *testing.T) {
	for line, want := range map[string][]string{
		"    - host-a.example.com:9100":              {"9100"},
		"              containerPort: 9100":          {"9100"},
		"      port: 9100":                           {"9100"},
		"EXPOSE 8080 9100":                           {"8080", "9100"},
		"            - --web.listen-address=:9100":   {"9100"},
		`  - series: 'up{instance="10.0.0.7:9100"}'`: {"9100"},
		"USER 65532:65532":                           nil,
		"        runAsUser: 65532":                   nil,
		"      interval: 15s":                        nil,
		`    "gridPos": {"h": 4, "w": 24}`:           nil,
	} {
		if got := portsIn(line); !slices.Equal(got, want) {
			t.Errorf("portsIn(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestListenPortEverywhere checks that every file of the deployment that
// names respawnd's port names the one in web-listen-address, so that a
// change of the flag's default needs one edit and this test to find the rest.
func TestListenPortEverywhere(t *testing.T) {
	want := strconv.Itoa(listenPort(t))
	files := []string{"../Dockerfile"}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && excludedDirs[d.Name()] {
			return filepath.SkipDir
		}
		if d.IsDir() || strings.HasSuffix(p, ".go") || p == "go.sum" || p == "go.mod" || p == contractFile {
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	uses := 0
	for _, f := range files {
		for i, line := range strings.Split(string(readFile(t, f)), "\n") {
			for _, p := range portsIn(line) {
				switch {
				case p == want:
					uses++
				case otherPorts[p] != "":
				default:
					t.Errorf("%s:%d: port %s, but respawnd's --web.listen-address default is %s (web-listen-address)", f, i+1, p, want)
				}
			}
		}
	}
	if uses < 8 {
		t.Errorf("only %d mentions of port %s; the port test has lost track of the files", uses, want)
	}
}

// TestListenAddressMatchesRespawnd reads respawnd's own --web.listen-address
// default from its source: the second argument of exporter-toolkit's
// kingpinflag.AddFlags in cmd/respawnd, a string or a constant.
func TestListenAddressMatchesRespawnd(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("../cmd/respawnd/*.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var arg ast.Expr
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := goparser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "AddFlags" && len(n.Args) == 2 {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "kingpinflag" {
						arg = n.Args[1]
					}
				}
			}
			return true
		})
	}
	var got string
	switch a := arg.(type) {
	case *ast.BasicLit:
		got, _ = strconv.Unquote(a.Value)
	case *ast.Ident:
		got = consts[a.Name]
	}
	if got == "" {
		t.Fatal("cannot find respawnd's --web.listen-address default (kingpinflag.AddFlags in cmd/respawnd); update this test")
	}
	_, port, err := net.SplitHostPort(got)
	if err != nil {
		t.Fatalf("respawnd's --web.listen-address default %q: %v", got, err)
	}
	if want := strconv.Itoa(listenPort(t)); port != want {
		t.Errorf("respawnd's --web.listen-address default is %q, web-listen-address says port %s: change web-listen-address, then fix what TestListenPortEverywhere lists", got, want)
	}
}

// promqlChecker checks PromQL expressions against the contract.
type promqlChecker struct {
	contract map[string]series
	// recorded are the recording rules' outputs: name -> label names.
	recorded map[string]map[string]bool
	parser   parser.Parser
}

func newPromQLChecker(t *testing.T) *promqlChecker {
	t.Helper()
	pc := &promqlChecker{contract: loadContract(t), recorded: map[string]map[string]bool{}, parser: parser.NewParser(parser.Options{})}
	for _, r := range loadRules(t) {
		if r.Record == "" {
			continue
		}
		labels, err := pc.outputLabels(r.Expr)
		if err != nil {
			t.Fatalf("recording rule %s: %v", r.Record, err)
		}
		pc.recorded[r.Record] = labels
	}
	return pc
}

// labelsOf returns the label names a series name has, and whether it is
// known at all: respawnd's own metrics, the recording rules' outputs and
// Prometheus's synthetic up.
func (pc *promqlChecker) labelsOf(name string) (map[string]bool, bool) {
	l := map[string]bool{}
	for _, n := range targetLabels {
		l[n] = true
	}
	if s, ok := pc.contract[name]; ok {
		for n := range s {
			l[n] = true
		}
		return l, true
	}
	if r, ok := pc.recorded[name]; ok {
		for n := range r {
			l[n] = true
		}
		return l, true
	}
	if name == "up" {
		return l, true
	}
	return nil, false
}

// outputLabels is the set of label names an expression's result has,
// worked out from its syntax tree as the PromQL engine builds result labels.
func (pc *promqlChecker) outputLabels(expr string) (map[string]bool, error) {
	e, err := pc.parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	return pc.labelsOfExpr(e), nil
}

func (pc *promqlChecker) labelsOfExpr(e parser.Expr) map[string]bool {
	out := map[string]bool{}
	switch e := e.(type) {
	case *parser.VectorSelector:
		if l, ok := pc.labelsOf(selectorName(e)); ok {
			for k := range l {
				out[k] = true
			}
		}
	case *parser.MatrixSelector:
		return pc.labelsOfExpr(e.VectorSelector)
	case *parser.ParenExpr:
		return pc.labelsOfExpr(e.Expr)
	case *parser.UnaryExpr:
		return pc.labelsOfExpr(e.Expr)
	case *parser.SubqueryExpr:
		return pc.labelsOfExpr(e.Expr)
	case *parser.StepInvariantExpr:
		return pc.labelsOfExpr(e.Expr)
	case *parser.AggregateExpr:
		if e.Without {
			out = pc.labelsOfExpr(e.Expr)
			for _, l := range e.Grouping {
				delete(out, l)
			}
		} else {
			for _, l := range e.Grouping {
				out[l] = true
			}
		}
	case *parser.Call:
		switch e.Func.Name {
		case "absent", "absent_over_time":
			// absent's result has the labels its selector (only a plain
			// one) matches with "=".
			vs, ok := e.Args[0].(*parser.VectorSelector)
			if m, isMatrix := e.Args[0].(*parser.MatrixSelector); isMatrix {
				vs, ok = m.VectorSelector.(*parser.VectorSelector)
			}
			if ok {
				for _, m := range vs.LabelMatchers {
					if m.Type == labels.MatchEqual && m.Name != model.MetricNameLabel {
						out[m.Name] = true
					}
				}
			}
		case "histogram_quantile":
			out = pc.labelsOfExpr(e.Args[1])
			delete(out, "le")
		default:
			for _, a := range e.Args {
				if t := a.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
					return pc.labelsOfExpr(a)
				}
			}
		}
	case *parser.BinaryExpr:
		lt, rt := e.LHS.Type(), e.RHS.Type()
		switch {
		case lt != parser.ValueTypeVector:
			return pc.labelsOfExpr(e.RHS)
		case rt != parser.ValueTypeVector:
			return pc.labelsOfExpr(e.LHS)
		case e.Op == parser.LOR:
			out = pc.labelsOfExpr(e.LHS)
			for k := range pc.labelsOfExpr(e.RHS) {
				out[k] = true
			}
		case e.Op == parser.LAND || e.Op == parser.LUNLESS || (e.Op.IsComparisonOperator() && !e.ReturnBool):
			return pc.labelsOfExpr(e.LHS)
		default:
			out = pc.labelsOfExpr(e.LHS)
			vm := e.VectorMatching
			if vm != nil && vm.Card == parser.CardOneToOne {
				if vm.On {
					keep := map[string]bool{}
					for _, l := range vm.MatchingLabels {
						if out[l] {
							keep[l] = true
						}
					}
					out = keep
				} else {
					for _, l := range vm.MatchingLabels {
						delete(out, l)
					}
				}
			}
			if vm != nil {
				for _, l := range vm.Include {
					out[l] = true
				}
			}
		}
	}
	return out
}

// selectorName is the metric name a selector reads.
func selectorName(vs *parser.VectorSelector) string {
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return vs.Name
}

// check parses expr and returns every problem: a parse error, a metric
// respawnd does not export, a label the metric does not have, a value of a
// closed label that does not exist, a grouping label no input has.
func (pc *promqlChecker) check(expr string) []error {
	e, err := pc.parser.ParseExpr(expr)
	if err != nil {
		return []error{fmt.Errorf("parsing %q: %w", expr, err)}
	}
	var errs []error
	all := map[string]bool{"le": true}
	var groupings []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			errs = append(errs, pc.checkSelector(n, all)...)
		case *parser.AggregateExpr:
			groupings = append(groupings, n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				groupings = append(groupings, n.VectorMatching.MatchingLabels...)
				groupings = append(groupings, n.VectorMatching.Include...)
			}
		}
		return nil
	})
	for _, g := range groupings {
		if !all[g] {
			errs = append(errs, fmt.Errorf("%q: grouping by %q, a label none of its series has", expr, g))
		}
	}
	return errs
}

func (pc *promqlChecker) checkSelector(vs *parser.VectorSelector, all map[string]bool) []error {
	name := vs.Name
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	if name == "" {
		return []error{fmt.Errorf("%s: a selector without a metric name", vs)}
	}
	labels, ok := pc.labelsOf(name)
	if !ok {
		return []error{fmt.Errorf("%s: respawnd does not export %s (%s), and no recording rule makes it", vs, name, contractFile)}
	}
	for l := range labels {
		all[l] = true
	}
	var errs []error
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			continue
		}
		if !labels[m.Name] {
			errs = append(errs, fmt.Errorf("%s: %s has no label %q", vs, name, m.Name))
			continue
		}
		if !slices.Contains(closedLabels, m.Name) {
			continue
		}
		values := pc.valuesOf(name, m.Name)
		for _, v := range matcherValues(m.Value) {
			if !values[v] {
				errs = append(errs, fmt.Errorf("%s: %s{%s} is never %q (%s has %s)", vs, name, m.Name, v, contractFile, setString(values)))
			}
		}
	}
	return errs
}

// valuesOf returns the values of a closed label of a metric, looking through
// recording rules to the metrics they read.
func (pc *promqlChecker) valuesOf(name, label string) map[string]bool {
	if s, ok := pc.contract[name]; ok {
		return s[label]
	}
	out := map[string]bool{}
	for _, s := range pc.contract {
		for v := range s[label] {
			out[v] = true
		}
	}
	return out
}

// matcherValues splits a matcher's value into the literal values it names:
// "a" or "a|b|c". Regexps that are more than an alternation of words name
// none.
func matcherValues(v string) []string {
	if !regexp.MustCompile(`^[a-z0-9_]+(\|[a-z0-9_]+)*$`).MatchString(v) {
		return nil
	}
	return strings.Split(v, "|")
}

func setString(m map[string]bool) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// TestPromQLCheckerCatchesMistakes makes sure the checker used on the rules
// and the dashboard rejects what it should.
func TestPromQLCheckerCatchesMistakes(t *testing.T) {
	pc := newPromQLChecker(t)
	for _, expr := range []string{
		`rate(respawnd_program_exit_total[5m])`,                         // misspelt metric
		`respawnd_program_exits_total{reason="oom"}`,                    // no such reason
		`respawnd_program_state{state=~"running|crashed"}`,              // no such state
		`respawnd_host_memory_pressure_ratio{window="5m"}`,              // no such window (10s, 60s, 300s)
		`respawnd_program_memory_pressure_seconds_total{kind="total"}`,  // no such kind
		`respawnd_program_up{programme="api"}`,                          // no such label
		`sum by (programme) (respawnd_program_up)`,                      // no such grouping label
		`respawnd_program_up == 0 unless on (prog) respawnd_program_up`, // no such matching label
		`sum(rate(respawnd_program_restarts_total[5m])`,                 // does not parse
		`{program="api"}`,                // no metric name
		`node_memory_MemAvailable_bytes`, // not respawnd's
	} {
		if errs := pc.check(expr); len(errs) == 0 {
			t.Errorf("%s: no error", expr)
		}
	}
	for _, expr := range []string{
		`sum by (reason) (instance_program_reason:respawnd_program_exits:rate5m{program=~".*"})`,
		`respawnd_program_state{state=~"stopping|stopped"} == 1`,
		`respawnd_host_memory_pressure_ratio{kind="some", window="10s"} > 0.1`,
		`histogram_quantile(0.9, sum by (le) (rate(respawnd_restart_duration_seconds_bucket[5m])))`,
		`up{job="respawnd"} == 0`,
	} {
		if errs := pc.check(expr); len(errs) != 0 {
			t.Errorf("%s: %v", expr, errs)
		}
	}
}
