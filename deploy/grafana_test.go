package deploy_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// The dashboard is decoded into the structs below, a strict model of the
// part of Grafana's dashboard schema that respawnd's dashboard uses: a
// field that is not in it is an error. (Grafana's own Go types, from the
// grafana-foundation-sdk, cannot be had from the Go module proxy.)

const (
	dashboardFile = "grafana/respawnd.json"
	// schemaVersion is Grafana's dashboard schema version the file is
	// written in (Grafana 10.4 and 11).
	schemaVersion = 39
)

type dashboard struct {
	ID            *int     `json:"id,omitempty"`
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Editable      bool     `json:"editable"`
	GraphTooltip  int      `json:"graphTooltip"`
	SchemaVersion int      `json:"schemaVersion"`
	Version       int      `json:"version"`
	Refresh       string   `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Timepicker           struct{}   `json:"timepicker"`
	Timezone             string     `json:"timezone"`
	FiscalYearStartMonth int        `json:"fiscalYearStartMonth"`
	LiveNow              bool       `json:"liveNow"`
	WeekStart            string     `json:"weekStart"`
	Links                []struct{} `json:"links"`
	Annotations          struct {
		List []struct {
			BuiltIn    int        `json:"builtIn"`
			Datasource datasource `json:"datasource"`
			Enable     bool       `json:"enable"`
			Hide       bool       `json:"hide"`
			IconColor  string     `json:"iconColor"`
			Name       string     `json:"name"`
			Type       string     `json:"type"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string      `json:"name"`
	Label      string      `json:"label"`
	Type       string      `json:"type"`
	Datasource *datasource `json:"datasource,omitempty"`
	Definition string      `json:"definition,omitempty"`
	Query      any         `json:"query"`
	Current    struct{}    `json:"current"`
	Hide       int         `json:"hide"`
	Refresh    int         `json:"refresh"`
	Regex      string      `json:"regex"`
	Sort       int         `json:"sort,omitempty"`
	IncludeAll bool        `json:"includeAll"`
	AllValue   string      `json:"allValue,omitempty"`
	Multi      bool        `json:"multi"`
	Options    []struct{}  `json:"options"`
}

type variableQuery struct {
	QryType int    `json:"qryType"`
	Query   string `json:"query"`
	RefID   string `json:"refId"`
}

type panel struct {
	ID              int              `json:"id"`
	Type            string           `json:"type"`
	Title           string           `json:"title"`
	Description     string           `json:"description,omitempty"`
	Datasource      *datasource      `json:"datasource,omitempty"`
	GridPos         gridPos          `json:"gridPos"`
	Targets         []target         `json:"targets,omitempty"`
	FieldConfig     *fieldConfig     `json:"fieldConfig,omitempty"`
	Options         map[string]any   `json:"options,omitempty"`
	Transformations []transformation `json:"transformations,omitempty"`
	Collapsed       bool             `json:"collapsed,omitempty"`
	Panels          []panel          `json:"panels,omitempty"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type target struct {
	Datasource   datasource `json:"datasource"`
	Expr         string     `json:"expr"`
	LegendFormat string     `json:"legendFormat"`
	RefID        string     `json:"refId"`
	EditorMode   string     `json:"editorMode"`
	Range        bool       `json:"range"`
	Instant      bool       `json:"instant"`
	Format       string     `json:"format,omitempty"`
}

type fieldConfig struct {
	Defaults struct {
		Unit       string         `json:"unit,omitempty"`
		Min        *float64       `json:"min,omitempty"`
		Max        *float64       `json:"max,omitempty"`
		Decimals   *int           `json:"decimals,omitempty"`
		Color      color          `json:"color"`
		Thresholds *thresholds    `json:"thresholds,omitempty"`
		Mappings   []valueMapping `json:"mappings,omitempty"`
		Custom     map[string]any `json:"custom,omitempty"`
	} `json:"defaults"`
	Overrides []struct {
		Matcher struct {
			ID      string `json:"id"`
			Options string `json:"options"`
		} `json:"matcher"`
		Properties []struct {
			ID    string `json:"id"`
			Value any    `json:"value"`
		} `json:"properties"`
	} `json:"overrides"`
}

type color struct {
	Mode       string `json:"mode"`
	FixedColor string `json:"fixedColor,omitempty"`
}

type thresholds struct {
	Mode  string `json:"mode"`
	Steps []struct {
		Color string   `json:"color"`
		Value *float64 `json:"value"`
	} `json:"steps"`
}

type valueMapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text  string `json:"text"`
		Color string `json:"color"`
		Index int    `json:"index"`
	} `json:"options"`
}

type transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}

// decodeDashboard decodes the dashboard strictly: field names match
// case-sensitively, unknown and duplicate fields are errors.
func decodeDashboard(b []byte) (*dashboard, error) {
	var d dashboard
	if err := unmarshalStrict(b, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	d, err := decodeDashboard(readFile(t, dashboardFile))
	if err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// grafanaVar finds Grafana's variables in a query: $name, ${name} and
// ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// expandGrafana replaces Grafana's variables by what PromQL can parse:
// interval variables by a duration, the others (used in regexp matchers)
// by ".*".
func expandGrafana(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2]
		switch name {
		case "__interval", "__rate_interval", "__range":
			return "5m"
		case "__interval_ms", "__range_ms", "__range_s":
			return "300"
		}
		return ".*"
	})
}

// clusterMatcher is how every query follows the cluster variable. cluster
// is a label of the Prometheus (an external label) or added by relabelling,
// never one respawnd exports: withoutCluster drops it before the query is
// checked against metrics.prom, and TestDashboardSelectorsFollowVariables
// checks that every selector has it.
var clusterMatcher = regexp.MustCompile(`cluster=~"\$cluster"(, )?`)

func withoutCluster(expr string) string { return clusterMatcher.ReplaceAllString(expr, "") }

// checkable is expr as the PromQL checker can take it.
func checkable(expr string) string { return expandGrafana(withoutCluster(expr)) }

// varPlaceholder replaces Grafana's variables in label matchers by
// __var_NAME__, and interval variables by a duration, so that a parsed
// query still shows which variable a matcher follows.
func varPlaceholder(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2]
		if strings.HasPrefix(name, "__") {
			return expandGrafana(m)
		}
		return "__var_" + name + "__"
	})
}

// keepsLabel says whether the result of e still has label l: it follows
// the vector an expression's labels come from down to the outermost
// aggregation or selector.
func keepsLabel(e parser.Expr, l string) bool {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return keepsLabel(e.Expr, l)
	case *parser.UnaryExpr:
		return keepsLabel(e.Expr, l)
	case *parser.AggregateExpr:
		return e.Without != slices.Contains(e.Grouping, l)
	case *parser.Call:
		for _, a := range e.Args {
			if a.Type() == parser.ValueTypeVector || a.Type() == parser.ValueTypeMatrix {
				return keepsLabel(a, l)
			}
		}
		return false
	case *parser.BinaryExpr:
		if e.LHS.Type() == parser.ValueTypeScalar {
			return keepsLabel(e.RHS, l)
		}
		return keepsLabel(e.LHS, l)
	case *parser.MatrixSelector:
		return keepsLabel(e.VectorSelector, l)
	case *parser.SubqueryExpr:
		return keepsLabel(e.Expr, l)
	case *parser.VectorSelector:
		return true
	}
	return false
}

// dashboardTarget is a query with the panel it belongs to.
type dashboardTarget struct {
	panel panel
	target
}

func dashboardTargets(d *dashboard) []dashboardTarget {
	var out []dashboardTarget
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, dashboardTarget{p, tg})
		}
	}
	return out
}

func TestDashboardDecodesStrictly(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion != schemaVersion {
		t.Errorf("schemaVersion %d, want %d", d.SchemaVersion, schemaVersion)
	}
	if d.UID != "respawnd" || d.Title == "" || d.ID != nil {
		t.Errorf("uid %q, title %q, id %v: want uid respawnd, a title and no id (provisioning assigns it)", d.UID, d.Title, d.ID)
	}
	// A misspelt field must fail.
	bad := bytes.Replace(readFile(t, dashboardFile), []byte(`"legendFormat"`), []byte(`"legendFromat"`), 1)
	if _, err := decodeDashboard(bad); err == nil {
		t.Error("a misspelt field decoded without error")
	}
	bad = bytes.Replace(readFile(t, dashboardFile), []byte(`"gridPos"`), []byte(`"gridpos"`), 1)
	if _, err := decodeDashboard(bad); err == nil {
		t.Error("a field in the wrong case decoded without error")
	}
	bad = bytes.Replace(readFile(t, dashboardFile), []byte(`"schemaVersion": 39`), []byte(`"schemaVersion": "39"`), 1)
	if _, err := decodeDashboard(bad); err == nil {
		t.Error("a field of the wrong type decoded without error")
	}
}

func TestDashboardVariables(t *testing.T) {
	d := loadDashboard(t)
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || ds.Query != "prometheus" {
		t.Errorf("want a datasource variable of type prometheus, got %+v", ds)
	}
	var order []string
	for _, v := range d.Templating.List {
		order = append(order, v.Name)
	}
	if want := []string{"datasource", "cluster", "job", "instance", "program"}; !slices.Equal(order, want) {
		t.Errorf("variables %q, want %q (each narrows the next)", order, want)
	}
	pc := newPromQLChecker(t)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	// Each variable narrows the next: cluster, job, instance, program.
	// All is .* except for job: up and process_* are exported by every
	// target, so All must mean respawnd's jobs, not every job there is.
	for _, want := range []struct{ name, allValue, selector string }{
		{"cluster", ".*", "respawnd_build_info"},
		{"job", "", `respawnd_build_info{cluster=~"$cluster"}`},
		{"instance", ".*", `respawnd_build_info{cluster=~"$cluster", job=~"$job"}`},
		{"program", ".*", `respawnd_program_up{cluster=~"$cluster", job=~"$job", instance=~"$instance"}`},
	} {
		name := want.name
		v, ok := vars[name]
		if !ok {
			t.Errorf("no %s variable", name)
			continue
		}
		if v.Type != "query" || !v.Multi || !v.IncludeAll || v.AllValue != want.allValue {
			t.Errorf("%s: want a multi-value query variable with All as %q, got all value %q", name, want.allValue, v.AllValue)
		}
		if want := "label_values(" + want.selector + ", " + name + ")"; v.Definition != want {
			t.Errorf("%s: definition %q, want %q", name, v.Definition, want)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("%s: must query the datasource variable", name)
		}
		b, _ := json.Marshal(v.Query)
		var q variableQuery
		if err := unmarshalStrict(b, &q); err != nil {
			t.Errorf("%s: query: %v", name, err)
			continue
		}
		if q.Query != v.Definition {
			t.Errorf("%s: definition %q differs from query %q", name, v.Definition, q.Query)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil || m[2] != name {
			t.Errorf("%s: query %q, want label_values(SELECTOR, %s)", name, q.Query, name)
			continue
		}
		for _, err := range pc.check(checkable(m[1])) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDashboardQueries parses every panel's query as PromQL and checks its
// metrics against what respawnd exports.
func TestDashboardQueries(t *testing.T) {
	d := loadDashboard(t)
	pc := newPromQLChecker(t)
	n := 0
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			n++
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q %s: datasource must be ${datasource}", p.Title, tg.RefID)
			}
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			for _, err := range pc.check(checkable(tg.Expr)) {
				t.Errorf("panel %q %s: %v", p.Title, tg.RefID, err)
			}
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q %s: does not follow the instance variable", p.Title, tg.RefID)
			}
		}
	}
	if n == 0 {
		t.Fatal("no queries")
	}
}

// TestDashboardLayout checks unique ids, known panel types and a grid where
// no two panels overlap.
func TestDashboardLayout(t *testing.T) {
	d := loadDashboard(t)
	types := []string{"row", "stat", "table", "timeseries", "state-timeline"}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if !slices.Contains(types, p.Type) {
			t.Errorf("panel %q: type %q", p.Title, p.Type)
		}
		if p.Type == "row" && !p.Collapsed && len(p.Panels) > 0 {
			t.Errorf("row %q: an expanded row holds no panels", p.Title)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap", other, p.Title)
					x, y = g.X+g.W, g.Y+g.H
				}
				used[cell{x, y}] = p.Title
			}
		}
	}
}

// TestDashboardCoversOnCall checks that the dashboard shows what the first
// look at an incident needs.
func TestDashboardCoversOnCall(t *testing.T) {
	d := loadDashboard(t)
	var exprs []string
	oomRed := false
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
		if p.FieldConfig != nil {
			for _, o := range p.FieldConfig.Overrides {
				for _, prop := range o.Properties {
					if c, ok := prop.Value.(map[string]any); ok && o.Matcher.Options == "oom_kill" && prop.ID == "color" && c["fixedColor"] == "red" {
						oomRed = true
					}
				}
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"respawnd_program_state", "respawnd_program_up", "respawnd_program_exits", "respawnd_program_oom_kills_total",
		"respawnd_program_restarts", "respawnd_program_backoff_seconds", "respawnd_program_memory_usage_bytes",
		"respawnd_program_memory_limit_bytes", "histogram_quantile", "respawnd_restart_duration_seconds",
		"respawnd_host_oom_kills_total", "respawnd_oom_source_up", "respawnd_config_last_reload_successful",
		"respawnd_program_memory_working_set_bytes", "respawnd_program_memory_warn_bytes",
		"respawnd_program_memory_recycle_bytes", "respawnd_program_memory_recycles_total",
		"respawnd_program_memory_pressure_seconds_total", "respawnd_program_restart_held",
		"respawnd_host_memory_available_bytes", "respawnd_host_memory_pressure_ratio",
		"respawnd_program_health_checks_total", "respawnd_program_health_check_duration_seconds",
		"respawnd_program_ready", "respawnd_program_watchdog_last_ping_timestamp_seconds",
		"respawnd_notify_rejected_total", `reason=~"health_check|watchdog"`,
		`program=~"$program"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel shows %s", want)
		}
	}
	if !oomRed {
		t.Error("exits by reason: oom_kill needs its own colour (red)")
	}
}

// TestDashboardKnowsEveryStateAndReason checks that the Programs table
// names every state respawnd exports, that the exits panel gives every
// exit reason its own colour and the health checks panel every result,
// so that a state, reason or result added to the contract (oom_loop,
// memory_recycle, watchdog) is not shown as a bare value.
func TestDashboardKnowsEveryStateAndReason(t *testing.T) {
	d := loadDashboard(t)
	c := loadContract(t)
	mapped := map[string]bool{}   // states with a value mapping in a table
	coloured := map[string]bool{} // series names with a fixed colour in the exits panel
	results := map[string]bool{}  // series names with a fixed colour in the health checks panel
	for _, p := range allPanels(d.Panels) {
		if p.FieldConfig == nil {
			continue
		}
		// The panels that show every series of a metric by the closed
		// label alone (legend {{reason}}, {{result}}).
		exits, checks := false, false
		for _, tg := range p.Targets {
			exits = exits || strings.Contains(tg.Expr, "respawnd_program_exits") && tg.LegendFormat == "{{reason}}"
			checks = checks || strings.Contains(tg.Expr, "respawnd_program_health_checks_total") && tg.LegendFormat == "{{result}}"
		}
		for _, o := range p.FieldConfig.Overrides {
			for _, prop := range o.Properties {
				switch {
				case p.Type == "table" && o.Matcher.Options == "state" && prop.ID == "mappings":
					b, _ := json.Marshal(prop.Value)
					var ms []valueMapping
					if err := unmarshalStrict(b, &ms); err != nil {
						t.Errorf("panel %q: state mappings: %v", p.Title, err)
					}
					for _, m := range ms {
						for v := range m.Options {
							mapped[v] = true
						}
					}
				case exits && prop.ID == "color":
					coloured[o.Matcher.Options] = true
				case checks && prop.ID == "color":
					results[o.Matcher.Options] = true
				}
			}
		}
	}
	for _, want := range []struct {
		metric, label string
		got           map[string]bool
		what          string
	}{
		{"respawnd_program_state", "state", mapped, "the Programs table has no mapping for state"},
		{"respawnd_program_exits_total", "reason", coloured, "the exits panel has no colour for reason"},
		{"respawnd_program_health_checks_total", "result", results, "the health checks panel has no colour for result"},
	} {
		values := c[want.metric][want.label]
		if len(values) == 0 {
			t.Fatalf("%s: no %s{%s} values", contractFile, want.metric, want.label)
		}
		for v := range values {
			if !want.got[v] {
				t.Errorf("%s %q (%s)", want.what, v, contractFile)
			}
		}
	}
}

// TestGrafanaProvisioning decodes the provisioning files strictly.
func TestGrafanaProvisioning(t *testing.T) {
	var dash struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			OrgID                 int    `yaml:"orgId"`
			Folder                string `yaml:"folder"`
			Type                  string `yaml:"type"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			Access    string `yaml:"access"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
			JSONData  struct {
				TimeInterval string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	for file, v := range map[string]any{
		"grafana/provisioning/dashboards/respawnd.yaml":  &dash,
		"grafana/provisioning/datasources/respawnd.yaml": &ds,
	} {
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, file)))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	if dash.APIVersion != 1 || len(dash.Providers) != 1 || dash.Providers[0].Type != "file" || dash.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provider: %+v", dash)
	}
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("datasource: %+v", ds)
	}
}

// TestDashboardSelectorsFollowVariables checks that every selector of every
// query follows the cluster, job and instance variables (and program where
// the metric has that label), and reads no recording rule: the dashboard
// works on a Prometheus without respawnd's rules.
func TestDashboardSelectorsFollowVariables(t *testing.T) {
	d := loadDashboard(t)
	pc := newPromQLChecker(t)
	for _, tg := range dashboardTargets(d) {
		e, err := pc.parser.ParseExpr(varPlaceholder(tg.Expr))
		if err != nil {
			t.Errorf("panel %q %s: %v", tg.panel.Title, tg.RefID, err)
			continue
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			if strings.Contains(vs.Name, ":") {
				t.Errorf("panel %q %s: %s is a recording rule; query respawnd's own series", tg.panel.Title, tg.RefID, vs.Name)
			}
			want := []string{"cluster", "job", "instance"}
			if l, _ := pc.labelsOf(vs.Name); l["program"] {
				want = append(want, "program")
			}
			for _, name := range want {
				if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
					return m.Name == name && m.Type == labels.MatchRegexp && m.Value == "__var_"+name+"__"
				}) {
					t.Errorf("panel %q %s: %s does not follow $%s", tg.panel.Title, tg.RefID, vs, name)
				}
			}
			return nil
		})
	}
}

// TestDashboardRatesFollowTheInterval checks that graphs compute rates from
// the raw counters over $__rate_interval, so that they are right at every
// zoom level and scrape interval; fixed windows ([24h]) only in instant
// queries (stat and table cells), where they are part of the question.
func TestDashboardRatesFollowTheInterval(t *testing.T) {
	d := loadDashboard(t)
	ranges := regexp.MustCompile(`\[([^\]]*)\]`)
	n := 0
	for _, tg := range dashboardTargets(d) {
		if tg.Range == tg.Instant {
			t.Errorf("panel %q %s: want exactly one of range and instant", tg.panel.Title, tg.RefID)
		}
		if !tg.Range {
			continue
		}
		for _, m := range ranges.FindAllStringSubmatch(tg.Expr, -1) {
			n++
			if m[1] != "$__rate_interval" {
				t.Errorf("panel %q %s: range [%s], want [$__rate_interval]", tg.panel.Title, tg.RefID, m[1])
			}
		}
	}
	if n == 0 {
		t.Error("no graph computes a rate")
	}
}

// TestDashboardLegendsNameTheInstance checks that every graph whose series
// still carry the instance names it in the legend: a program of the same
// name on two hosts must not look like one line.
func TestDashboardLegendsNameTheInstance(t *testing.T) {
	d := loadDashboard(t)
	pc := newPromQLChecker(t)
	n := 0
	for _, tg := range dashboardTargets(d) {
		if !tg.Range {
			continue
		}
		e, err := pc.parser.ParseExpr(checkable(tg.Expr))
		if err != nil {
			t.Errorf("panel %q %s: %v", tg.panel.Title, tg.RefID, err)
			continue
		}
		keeps := keepsLabel(e, "instance")
		names := strings.Contains(tg.LegendFormat, "{{instance}}")
		switch {
		case keeps && !names:
			t.Errorf("panel %q %s: legend %q does not name {{instance}}", tg.panel.Title, tg.RefID, tg.LegendFormat)
		case !keeps && names:
			t.Errorf("panel %q %s: legend %q names {{instance}}, which the query aggregates away", tg.panel.Title, tg.RefID, tg.LegendFormat)
		case keeps:
			n++
		}
	}
	if n == 0 {
		t.Error("no graph shows series per instance")
	}
	// The check itself must see through aggregations.
	for expr, want := range map[string]bool{
		`sum by (reason) (rate(respawnd_program_exits_total[5m]))`:                                            false,
		`histogram_quantile(0.9, sum by (instance, le) (rate(respawnd_restart_duration_seconds_bucket[5m])))`: true,
		`respawnd_program_backoff_seconds > 0`:                                                                true,
		`sum without (instance) (respawnd_program_up)`:                                                        false,
	} {
		e, err := pc.parser.ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := keepsLabel(e, "instance"); got != want {
			t.Errorf("keepsLabel(%q, instance) = %v, want %v", expr, got, want)
		}
	}
}

// zeroTimestamps are the gauges that hold a time since the epoch, and 0
// where there is none: a program that does not run has no start time, one
// that has not pinged its watchdog yet no last ping.
var zeroTimestamps = []string{"respawnd_program_start_time_seconds", "respawnd_program_watchdog_last_ping_timestamp_seconds"}

// TestDashboardUptime checks that uptime, and the time since a watchdog
// ping, are computed only where there is a time: respawnd exports 0
// otherwise, and time() - 0 reads as 56 years.
func TestDashboardUptime(t *testing.T) {
	d := loadDashboard(t)
	pc := newPromQLChecker(t)
	n := map[string]int{}
	for _, tg := range dashboardTargets(d) {
		e, err := pc.parser.ParseExpr(checkable(tg.Expr))
		if err != nil {
			t.Fatalf("panel %q %s: %v", tg.panel.Title, tg.RefID, err)
		}
		parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok || !slices.Contains(zeroTimestamps, vs.Name) {
				return nil
			}
			n[vs.Name]++
			var parent parser.Node
			for i := len(path) - 1; i >= 0; i-- {
				if _, paren := path[i].(*parser.ParenExpr); !paren {
					parent = path[i]
					break
				}
			}
			b, ok := parent.(*parser.BinaryExpr)
			zero, _ := func() (*parser.NumberLiteral, bool) {
				if !ok {
					return nil, false
				}
				l, isNum := b.RHS.(*parser.NumberLiteral)
				return l, isNum
			}()
			if !ok || b.Op != parser.GTR || b.ReturnBool || zero == nil || zero.Val != 0 || b.LHS == nil {
				t.Errorf("panel %q %s: %s must be filtered by > 0 before any arithmetic (time() - 0 is 56 years)", tg.panel.Title, tg.RefID, vs)
			}
			return nil
		})
	}
	for _, name := range zeroTimestamps {
		if n[name] == 0 {
			t.Errorf("no panel reads %s (uptime, time since the last watchdog ping)", name)
		}
	}
}

// programsTable returns the Programs table and the name each of its
// queries' values is shown under.
func programsTable(t *testing.T, d *dashboard) (panel, map[string]string) {
	t.Helper()
	for _, p := range allPanels(d.Panels) {
		if p.Type != "table" || p.Title != "Programs" {
			continue
		}
		columns := map[string]string{}
		for _, tr := range p.Transformations {
			if tr.ID != "organize" {
				continue
			}
			rename, _ := tr.Options["renameByName"].(map[string]any)
			for _, tg := range p.Targets {
				if name, ok := rename["Value #"+tg.RefID].(string); ok {
					columns[tg.RefID] = name
				}
			}
		}
		return p, columns
	}
	t.Fatal("no Programs table")
	return panel{}, nil
}

// TestDashboardLastOOM checks the Programs table's "last OOM" column: when
// each program's processes were last OOM-killed, shown as a time ago, with
// the table sorted by it so that a program in an OOM loop is on top.
func TestDashboardLastOOM(t *testing.T) {
	d := loadDashboard(t)
	pc := newPromQLChecker(t)
	p, columns := programsTable(t, d)
	var expr string
	for _, tg := range p.Targets {
		if columns[tg.RefID] == "last OOM" {
			expr = tg.Expr
			if !tg.Instant || tg.Format != "table" {
				t.Errorf("last OOM: want an instant table query")
			}
		}
	}
	if expr == "" {
		t.Fatalf("the Programs table has no \"last OOM\" column (columns %v)", columns)
	}
	e, err := pc.parser.ParseExpr(checkable(expr))
	if err != nil {
		t.Fatal(err)
	}
	// max by (instance, program) (max_over_time((timestamp(increase(oom_kills[…]) > 0))[24h:1m])) * 1000
	var sub *parser.SubqueryExpr
	var ts, incr bool
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.SubqueryExpr:
			sub = n
		case *parser.Call:
			ts = ts || n.Func.Name == "timestamp"
			incr = incr || n.Func.Name == "increase"
		case *parser.VectorSelector:
			if n.Name != "respawnd_program_oom_kills_total" {
				t.Errorf("last OOM reads %s", n.Name)
			}
		}
		return nil
	})
	if sub == nil || !ts || !incr || !keepsLabel(e, "program") || !keepsLabel(e, "instance") {
		t.Errorf("last OOM %q: want, per instance and program, the latest time in a subquery at which the OOM counter increased", expr)
	}
	if b, ok := e.(*parser.BinaryExpr); !ok || b.Op != parser.MUL || b.RHS.String() != "1000" {
		t.Errorf("last OOM %q: Grafana's time units want milliseconds (* 1000)", expr)
	}
	unit := ""
	for _, o := range p.FieldConfig.Overrides {
		for _, prop := range o.Properties {
			if o.Matcher.ID == "byName" && o.Matcher.Options == "last OOM" && prop.ID == "unit" {
				unit, _ = prop.Value.(string)
			}
		}
	}
	if unit != "dateTimeFromNow" {
		t.Errorf("last OOM: unit %q, want dateTimeFromNow", unit)
	}
	sortBy, _ := p.Options["sortBy"].([]any)
	if len(sortBy) != 1 || sortBy[0].(map[string]any)["displayName"] != "last OOM" || sortBy[0].(map[string]any)["desc"] != true {
		t.Errorf("the Programs table sorts by %v, want last OOM, newest first", sortBy)
	}
}

// TestDashboardStateTimeline checks the per-program state timeline: one row
// per instance and program, every state respawnd exports mapped to its own
// value with the name the Programs table uses.
func TestDashboardStateTimeline(t *testing.T) {
	d := loadDashboard(t)
	c := loadContract(t)
	pc := newPromQLChecker(t)
	arm := regexp.MustCompile(`respawnd_program_state\{[^}]*state="(\w+)"\} == 1\) \* (\d+)`)
	found := false
	for _, p := range allPanels(d.Panels) {
		if p.Type != "state-timeline" || len(p.Targets) != 1 || !strings.Contains(p.Targets[0].Expr, "respawnd_program_state") {
			continue
		}
		found = true
		tg := p.Targets[0]
		e, err := pc.parser.ParseExpr(checkable(tg.Expr))
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := e.(*parser.AggregateExpr); !ok || a.Without || !slices.Equal(a.Grouping, []string{"instance", "program"}) {
			t.Errorf("panel %q: want one series per instance and program (max by (instance, program))", p.Title)
		}
		if !tg.Range || !strings.Contains(tg.LegendFormat, "{{program}}") || !strings.Contains(tg.LegendFormat, "{{instance}}") {
			t.Errorf("panel %q: want a range query with program and instance in the legend", p.Title)
		}
		mapped := map[string]string{}
		if p.FieldConfig != nil {
			for _, m := range p.FieldConfig.Defaults.Mappings {
				for v, o := range m.Options {
					mapped[v] = o.Text
				}
			}
		}
		values := map[string]string{}
		for _, m := range arm.FindAllStringSubmatch(tg.Expr, -1) {
			if other, ok := values[m[2]]; ok {
				t.Errorf("panel %q: states %s and %s share the value %s", p.Title, other, m[1], m[2])
			}
			values[m[2]] = m[1]
			if want := strings.ReplaceAll(m[1], "_", " "); !strings.EqualFold(mapped[m[2]], want) {
				t.Errorf("panel %q: value %s (state %s) is shown as %q", p.Title, m[2], m[1], mapped[m[2]])
			}
		}
		for state := range c["respawnd_program_state"]["state"] {
			if !slices.Contains(slices.Collect(maps.Values(values)), state) {
				t.Errorf("panel %q: state %q is not on the timeline (%s)", p.Title, state, contractFile)
			}
		}
	}
	if !found {
		t.Error("no state timeline of respawnd_program_state")
	}
}
