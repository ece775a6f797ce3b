package deploy_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

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
	pc := newPromQLChecker(t)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, name := range []string{"instance", "program"} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no %s variable", name)
			continue
		}
		if v.Type != "query" || !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("%s: want a multi-value query variable with All as .*", name)
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
		for _, err := range pc.check(expandGrafana(m[1])) {
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
			for _, err := range pc.check(expandGrafana(tg.Expr)) {
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
// names every state respawnd exports and that the exits panel gives every
// exit reason its own colour, so that a state or reason added to the
// contract (oom_loop, memory_recycle) is not shown as a bare value.
func TestDashboardKnowsEveryStateAndReason(t *testing.T) {
	d := loadDashboard(t)
	c := loadContract(t)
	mapped := map[string]bool{}   // states with a value mapping in a table
	coloured := map[string]bool{} // series names with a fixed colour in the exits panel
	for _, p := range allPanels(d.Panels) {
		if p.FieldConfig == nil {
			continue
		}
		exits := false
		for _, tg := range p.Targets {
			exits = exits || strings.Contains(tg.Expr, "respawnd_program_exits")
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
