package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseHealth(t *testing.T) {
	httpProbe := func(url string, r StatusRange, headers map[string]string) *HTTPProbe {
		return &HTTPProbe{URL: url, ExpectStatus: r, Headers: headers}
	}
	withDefaults := func(h Health) *Health {
		d := DefaultHealth()
		d.HTTP, d.TCP, d.Exec = h.HTTP, h.TCP, h.Exec
		return &d
	}
	tests := []struct {
		name   string
		lines  []string
		health *Health
		notify *Notify
	}{
		{"none", nil, nil, nil},
		{"null sections are left out", []string{"health: ~", "notify:"}, nil, nil},
		{"http with defaults", []string{"health: {http: {url: http://127.0.0.1:8080/healthz}}"},
			withDefaults(Health{HTTP: httpProbe("http://127.0.0.1:8080/healthz", DefaultStatusRange, nil)}), nil},
		{"http with everything", []string{
			"health:",
			`  http: {url: "https://[::1]:8443/ready", expect_status: "200-299", headers: {X-Probe: "1", Host: api.internal, X-Empty: ~}}`,
			"  period: 5s",
			"  timeout: 2s",
			"  failures: 5",
			"  startup_grace: 30s",
		}, &Health{
			HTTP:   httpProbe("https://[::1]:8443/ready", StatusRange{200, 299}, map[string]string{"X-Probe": "1", "Host": "api.internal", "X-Empty": ""}),
			Period: 5 * time.Second, Timeout: 2 * time.Second, Failures: 5, StartupGrace: 30 * time.Second,
		}, nil},
		{"one status as a string", []string{`health: {http: {url: "http://a/", expect_status: "204"}}`},
			withDefaults(Health{HTTP: httpProbe("http://a/", StatusRange{204, 204}, nil)}), nil},
		{"one status as an integer", []string{"health: {http: {url: http://a/, expect_status: 204}}"},
			withDefaults(Health{HTTP: httpProbe("http://a/", StatusRange{204, 204}, nil)}), nil},
		{"null expect_status is the default", []string{"health: {http: {url: http://a/, expect_status: ~, headers: ~}}"},
			withDefaults(Health{HTTP: httpProbe("http://a/", DefaultStatusRange, nil)}), nil},
		{"tcp", []string{`health: {tcp: {address: "127.0.0.1:5432"}}`},
			withDefaults(Health{TCP: &TCPProbe{Address: "127.0.0.1:5432"}}), nil},
		{"exec", []string{"health:", "  exec: {command: [/usr/local/bin/check-db, --quick, 1]}", "  period: ~"},
			withDefaults(Health{Exec: &ExecProbe{Command: []string{"/usr/local/bin/check-db", "--quick", "1"}}}), nil},
		{"exec by name", []string{"health: {exec: {command: [check-db]}}"},
			withDefaults(Health{Exec: &ExecProbe{Command: []string{"check-db"}}}), nil},
		{"notify ready", []string{"notify: {ready: true}"},
			nil, &Notify{Ready: true, StartTimeout: DefaultStartTimeout}},
		{"notify watchdog", []string{"notify: {watchdog: 30s}"},
			nil, &Notify{StartTimeout: DefaultStartTimeout, Watchdog: 30 * time.Second}},
		{"notify everything", []string{"notify:", "  ready: true", "  start_timeout: 2m", "  watchdog: 1m"},
			nil, &Notify{Ready: true, StartTimeout: 2 * time.Minute, Watchdog: time.Minute}},
		{"both", []string{"health: {tcp: {address: \"[::1]:6379\"}}", "notify: {ready: true, start_timeout: ~}"},
			withDefaults(Health{TCP: &TCPProbe{Address: "[::1]:6379"}}), &Notify{Ready: true, StartTimeout: DefaultStartTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("demo.yaml", []byte(withProgram(tt.lines...)))
			if err != nil {
				t.Fatal(err)
			}
			p := c.Programs[0]
			if !reflect.DeepEqual(p.Health, tt.health) {
				t.Errorf("health:\n got %#v\nwant %#v", p.Health, tt.health)
			}
			if !reflect.DeepEqual(p.Notify, tt.notify) {
				t.Errorf("notify:\n got %#v\nwant %#v", p.Notify, tt.notify)
			}
			if p.Health != nil && p.Health.Probe() == "" {
				t.Error("Probe() names no probe")
			}
		})
	}
}

// TestHealthDefaults spells out the documented defaults once more.
func TestHealthDefaults(t *testing.T) {
	c, err := Parse("demo.yaml", []byte(withProgram("health: {tcp: {address: \"a:1\"}}", "notify: {watchdog: 1s}")))
	if err != nil {
		t.Fatal(err)
	}
	h, n := c.Programs[0].Health, c.Programs[0].Notify
	checks := []struct {
		name      string
		got, want any
	}{
		{"health.period", h.Period, 10 * time.Second},
		{"health.timeout", h.Timeout, time.Second},
		{"health.failures", h.Failures, 3},
		{"health.startup_grace", h.StartupGrace, time.Duration(0)},
		{"DefaultStatusRange", DefaultStatusRange, StatusRange{Min: 200, Max: 399}},
		{"notify.ready", n.Ready, false},
		{"notify.start_timeout", n.StartTimeout, 90 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// The probe's own defaults apply inside the section only.
	c, err = Parse("demo.yaml", []byte(withProgram()))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Programs[0]; p.Health != nil || p.Notify != nil {
		t.Errorf("a program without health and notify got %+v, %+v", p.Health, p.Notify)
	}
}

func TestParseStatusRange(t *testing.T) {
	good := map[string]StatusRange{
		"204":         {204, 204},
		"200-399":     {200, 399},
		"100-599":     {100, 599},
		"0":           {0, 0},     // read, and refused by the validator
		"399-200":     {399, 200}, // likewise
		"007":         {7, 7},     // digits are digits
		"999999999-1": {999999999, 1},
	}
	for in, want := range good {
		if got, err := parseStatusRange(in); err != nil || got != want {
			t.Errorf("parseStatusRange(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", "200-", "-399", "2xx", "200 - 399", " 200", "200-300-400", "+200", "-200", "0x10", "1e3", "2.0", "1000000000", "２００"} {
		if got, err := parseStatusRange(in); err == nil {
			t.Errorf("parseStatusRange(%q) = %+v, want an error", in, got)
		}
	}
}

// healthErrorTests hold one file for every rule of the health and notify
// sections, with the exact text expected. FuzzParse uses them as seeds.
var healthErrorTests = []struct {
	name string
	in   string
	want []string
}{
	// The section and its probe.
	{"health a string", withProgram("health: http"), []string{
		`demo.yaml:4: programs[0].health: must be a mapping, not the string "http"`}},
	{"empty health", withProgram("health: {}"), []string{
		"demo.yaml:4: programs[0].health: must set one of http, tcp or exec"}},
	{"no probe", withProgram("health:", "  period: 5s"), []string{
		"demo.yaml:4: programs[0].health: must set one of http, tcp or exec"}},
	{"null probe", withProgram("health:", "  http: ~"), []string{
		"demo.yaml:4: programs[0].health: must set one of http, tcp or exec"}},
	{"two probes", withProgram("health:", "  http: {url: http://a/}", `  tcp: {address: "a:1"}`), []string{
		"demo.yaml:6: programs[0].health.tcp: must not be set together with http: a health check has one probe"}},
	{"three probes", withProgram("health:", `  tcp: {address: "a:1"}`, "  exec: {command: [c]}", "  http: {url: http://a/}"), []string{
		"demo.yaml:5: programs[0].health.tcp: must not be set together with http: a health check has one probe",
		"demo.yaml:6: programs[0].health.exec: must not be set together with http: a health check has one probe"}},
	{"probe undecodable", withProgram("health: {tcp: 5432}"), []string{
		"demo.yaml:4: programs[0].health.tcp: must be a mapping, not an integer"}},
	{"unknown health key", withProgram("health:", "  tcp: {address: \"a:1\"}", "  interval: 5s"), []string{
		"demo.yaml:6: programs[0].health.interval: unknown key (known keys: http, tcp, exec, period, timeout, failures, startup_grace)"}},
	{"misspelt health key", withProgram("health:", "  tcp: {address: \"a:1\"}", "  failure: 5"), []string{
		`demo.yaml:6: programs[0].health.failure: unknown key, did you mean "failures"?`}},
	{"unknown http key", withProgram("health: {http: {uri: http://a/}}"), []string{
		`demo.yaml:4: programs[0].health.http.uri: unknown key, did you mean "url"?`,
		"demo.yaml:4: programs[0].health.http.url: is required"}},
	{"duplicate health key", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 5s", "  period: 6s"), []string{
		"demo.yaml:7: programs[0].health.period: duplicate key, first on line 6"}},

	// http.
	{"url missing", withProgram("health:", "  http: {}"), []string{
		"demo.yaml:5: programs[0].health.http.url: is required"}},
	{"url null", withProgram("health:", "  http: {url: ~}"), []string{
		"demo.yaml:5: programs[0].health.http.url: is required"}},
	{"url empty", withProgram("health:", "  http:", `    url: ""`), []string{
		"demo.yaml:6: programs[0].health.http.url: must not be empty"}},
	{"url a list", withProgram("health: {http: {url: [http://a/]}}"), []string{
		"demo.yaml:4: programs[0].health.http.url: must be a string, not a list"}},
	{"url relative", withProgram("health: {http: {url: /healthz}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: must be an absolute http:// or https:// URL, not "/healthz"`}},
	{"url without scheme", withProgram("health: {http: {url: \"127.0.0.1:8080/healthz\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: invalid URL "127.0.0.1:8080/healthz": first path segment in URL cannot contain colon`}},
	{"url another scheme", withProgram("health: {http: {url: \"ftp://a/\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: must be an absolute http:// or https:// URL, not "ftp://a/"`}},
	{"url without host", withProgram("health: {http: {url: \"http:///healthz\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: must name a host, as in http://127.0.0.1:8080/healthz, not "http:///healthz"`}},
	{"url with only a port", withProgram("health: {http: {url: \"http://:8080/\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: must name a host, as in http://127.0.0.1:8080/healthz, not "http://:8080/"`}},
	{"url opaque", withProgram("health: {http: {url: \"http:localhost\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: must name a host, as in http://127.0.0.1:8080/healthz, not "http:localhost"`}},
	{"url bad host", withProgram("health: {http: {url: \"http://a b/\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: invalid URL "http://a b/": invalid character " " in host name`}},
	{"url control character", withProgram("health: {http: {url: \"http://a/\\r\\nX: 1\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: invalid URL "http://a/\r\nX: 1": net/url: invalid control character in URL`}},
	{"url port 0", withProgram("health: {http: {url: \"http://a:0/\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: port must be a number from 1 to 65535, not "0"`}},
	{"url port too large", withProgram("health: {http: {url: \"http://a:65536/\"}}"), []string{
		`demo.yaml:4: programs[0].health.http.url: port must be a number from 1 to 65535, not "65536"`}},
	{"url too long", withProgram("health: {http: {url: \"http://a/" + strings.Repeat("x", MaxURLLen-8) + "\"}}"), []string{
		"demo.yaml:4: programs[0].health.http.url: must be at most 8192 bytes, not 8193"}},
	{"status not a range", withProgram("health: {http: {url: http://a/, expect_status: 2xx}}"), []string{
		`demo.yaml:4: programs[0].health.http.expect_status: invalid status range "2xx" (want a status such as 204 or a range such as 200-399)`}},
	{"status half a range", withProgram("health: {http: {url: http://a/, expect_status: 200-}}"), []string{
		`demo.yaml:4: programs[0].health.http.expect_status: invalid status range "200-" (want a status such as 204 or a range such as 200-399)`}},
	{"status a number", withProgram("health: {http: {url: http://a/, expect_status: 2.5}}"), []string{
		"demo.yaml:4: programs[0].health.http.expect_status: must be a status such as 204 or a range such as 200-399, not a number"}},
	{"status a list", withProgram("health: {http: {url: http://a/, expect_status: [200, 204]}}"), []string{
		"demo.yaml:4: programs[0].health.http.expect_status: must be a status such as 204 or a range such as 200-399, not a list"}},
	{"status above 599", withProgram("health: {http: {url: http://a/, expect_status: 600}}"), []string{
		"demo.yaml:4: programs[0].health.http.expect_status: statuses must be from 100 to 599, not 600"}},
	{"status below 100", withProgram("health: {http: {url: http://a/, expect_status: 99-200}}"), []string{
		"demo.yaml:4: programs[0].health.http.expect_status: statuses must be from 100 to 599, not 99-200"}},
	{"status range upside down", withProgram("health: {http: {url: http://a/, expect_status: 399-200}}"), []string{
		"demo.yaml:4: programs[0].health.http.expect_status: must go from the lower status to the higher, not 399-200"}},
	{"headers a list", withProgram("health: {http: {url: http://a/, headers: [X-A]}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers: must be a mapping, not a list"}},
	{"header name not a token", withProgram("health:", "  http:", "    url: http://a/", `    headers: {"X Probe": 1, "X:Y": 2, "": 3}`), []string{
		`demo.yaml:7: programs[0].health.http.headers[""]: invalid header name "": must be an HTTP token (letters, digits and !#$%&'*+-.^_` + "`" + `|~)`,
		`demo.yaml:7: programs[0].health.http.headers["X Probe"]: invalid header name "X Probe": must be an HTTP token (letters, digits and !#$%&'*+-.^_` + "`" + `|~)`,
		`demo.yaml:7: programs[0].health.http.headers["X:Y"]: invalid header name "X:Y": must be an HTTP token (letters, digits and !#$%&'*+-.^_` + "`" + `|~)`}},
	{"header value with CR LF", withProgram("health: {http: {url: http://a/, headers: {X-A: \"1\\r\\nX-B: 2\"}}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers.X-A: value must not contain control characters such as CR, LF or NUL"}},
	{"header value with NUL", withProgram("health: {http: {url: http://a/, headers: {X-A: \"\\0\"}}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers.X-A: value must not contain control characters such as CR, LF or NUL"}},
	{"header value a mapping", withProgram("health: {http: {url: http://a/, headers: {X-A: {b: 1}}}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers.X-A: must be a string, not a mapping"}},
	{"header twice in two cases", withProgram("health:", "  http:", "    url: http://a/", "    headers:", "      x-probe: 1", "      X-Probe: 2"), []string{
		`demo.yaml:8: programs[0].health.http.headers.x-probe: duplicate header: names are case-insensitive, and "X-Probe" is set too`}},
	{"header key twice", withProgram("health: {http: {url: http://a/, headers: {X-A: 1, X-A: 2}}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers.X-A: duplicate key, first on line 4"}},
	{"bad Host", withProgram("health: {http: {url: http://a/, headers: {Host: \"a b\"}}}"), []string{
		`demo.yaml:4: programs[0].health.http.headers.Host: invalid Host "a b": want host or host:port`}},
	{"empty host", withProgram("health: {http: {url: http://a/, headers: {host: \"\"}}}"), []string{
		`demo.yaml:4: programs[0].health.http.headers.host: invalid Host "": want host or host:port`}},
	{"too many headers", withProgram("health: {http: {url: http://a/, headers: {" + manyHeaders(MaxHealthHeaders+1) + "}}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers: must have at most 32 headers, not 33"}},
	{"header too long", withProgram("health: {http: {url: http://a/, headers: {X-A: " + strings.Repeat("x", MaxHeaderLen-4) + "}}}"), []string{
		"demo.yaml:4: programs[0].health.http.headers.X-A: must be at most 8192 bytes as Name: value, not 8193"}},

	// tcp.
	{"address missing", withProgram("health: {tcp: {}}"), []string{
		"demo.yaml:4: programs[0].health.tcp.address: is required"}},
	{"address empty", withProgram("health:", "  tcp:", "    address: \"\""), []string{
		"demo.yaml:6: programs[0].health.tcp.address: must not be empty"}},
	{"address without port", withProgram("health: {tcp: {address: localhost}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: invalid address "localhost": want host:port, such as 127.0.0.1:5432 or [::1]:5432`}},
	{"address IPv6 without brackets", withProgram("health: {tcp: {address: \"::1:5432\"}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: invalid address "::1:5432": want host:port, such as 127.0.0.1:5432 or [::1]:5432`}},
	{"address without host", withProgram("health: {tcp: {address: \":5432\"}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: must name a host, as in 127.0.0.1:5432, not ":5432"`}},
	{"address with a service name", withProgram("health: {tcp: {address: \"db:postgresql\"}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: port must be a number from 1 to 65535, not "postgresql"`}},
	{"address port 0", withProgram("health: {tcp: {address: \"db:0\"}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: port must be a number from 1 to 65535, not "0"`}},
	{"address port too large", withProgram("health: {tcp: {address: \"db:65536\"}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: port must be a number from 1 to 65535, not "65536"`}},
	{"address port signed", withProgram("health: {tcp: {address: \"db:+80\"}}"), []string{
		`demo.yaml:4: programs[0].health.tcp.address: port must be a number from 1 to 65535, not "+80"`}},
	{"address host with a space", withProgram("health: {tcp: {address: \"a b:80\"}}"), []string{
		"demo.yaml:4: programs[0].health.tcp.address: host must not contain spaces or control characters"}},
	{"address too long", withProgram("health: {tcp: {address: \"" + strings.Repeat("a", MaxAddressLen-4) + ":5432\"}}"), []string{
		"demo.yaml:4: programs[0].health.tcp.address: must be at most 261 bytes, not 262"}},

	// exec.
	{"exec without command", withProgram("health: {exec: {}}"), []string{
		"demo.yaml:4: programs[0].health.exec.command: is required"}},
	{"exec empty command", withProgram("health:", "  exec:", "    command: []"), []string{
		"demo.yaml:6: programs[0].health.exec.command: must not be empty"}},
	{"exec command a string", withProgram("health: {exec: {command: /usr/bin/check --quick}}"), []string{
		`demo.yaml:4: programs[0].health.exec.command: must be a list of arguments such as ["/usr/bin/api", "--port", "8080"], not the string "/usr/bin/check --quick"`}},
	{"exec relative command", withProgram("health: {exec: {command: [bin/check]}}"), []string{
		`demo.yaml:4: programs[0].health.exec.command[0]: must be an absolute path or a name looked up in PATH, not the relative path "bin/check"`}},
	{"exec empty argv0", withProgram("health: {exec: {command: [\"\", x]}}"), []string{
		"demo.yaml:4: programs[0].health.exec.command[0]: must not be empty"}},
	{"exec NUL", withProgram("health: {exec: {command: [/bin/check, \"a\\0\"]}}"), []string{
		"demo.yaml:4: programs[0].health.exec.command[1]: must not contain a NUL byte"}},
	{"exec too many arguments", withProgram("health: {exec: {command: [" + strings.Repeat("a, ", MaxCommandArgs) + "a]}}"), []string{
		"demo.yaml:4: programs[0].health.exec.command: must have at most 4096 arguments, not 4097"}},

	// Timing.
	{"period too short", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 50ms", "  timeout: 50ms"), []string{
		"demo.yaml:6: programs[0].health.period: must be at least 100ms, not 50ms"}},
	{"period too long", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 25h"), []string{
		"demo.yaml:6: programs[0].health.period: must be at most 24h0m0s, not 25h0m0s"}},
	{"period zero", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 0s"), []string{
		"demo.yaml:6: programs[0].health.period: must be at least 100ms, not 0s"}},
	{"period not a duration", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 10", "  timeout: 20s"), []string{
		`demo.yaml:6: programs[0].health.period: invalid duration "10" (want Go syntax such as 100ms, 30s or 1m30s)`}},
	{"timeout zero", withProgram("health:", "  tcp: {address: \"a:1\"}", "  timeout: 0s"), []string{
		"demo.yaml:6: programs[0].health.timeout: must be positive, not 0s"}},
	{"timeout negative", withProgram("health:", "  tcp: {address: \"a:1\"}", "  timeout: -1s"), []string{
		"demo.yaml:6: programs[0].health.timeout: must be positive, not -1s"}},
	{"timeout above default period", withProgram("health:", "  tcp: {address: \"a:1\"}", "  timeout: 20s"), []string{
		"demo.yaml:6: programs[0].health.timeout: must not exceed period (10s): a probe may not outlast its period"}},
	{"period below default timeout", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 500ms"), []string{
		"demo.yaml:6: programs[0].health.period: must not be less than timeout (1s): a probe may not outlast its period"}},
	{"timeout above period", withProgram("health:", "  tcp: {address: \"a:1\"}", "  period: 2s", "  timeout: 3s"), []string{
		"demo.yaml:7: programs[0].health.timeout: must not exceed period (2s): a probe may not outlast its period"}},
	{"failures zero", withProgram("health:", "  tcp: {address: \"a:1\"}", "  failures: 0"), []string{
		"demo.yaml:6: programs[0].health.failures: must be at least 1, not 0"}},
	{"failures too many", withProgram("health:", "  tcp: {address: \"a:1\"}", "  failures: 101"), []string{
		"demo.yaml:6: programs[0].health.failures: must be at most 100, not 101"}},
	{"failures a string", withProgram("health:", "  tcp: {address: \"a:1\"}", "  failures: \"3\""), []string{
		`demo.yaml:6: programs[0].health.failures: must be an integer, not the string "3"`}},
	{"startup_grace negative", withProgram("health:", "  tcp: {address: \"a:1\"}", "  startup_grace: -1s"), []string{
		"demo.yaml:6: programs[0].health.startup_grace: must be at least 0s, not -1s"}},
	{"startup_grace too long", withProgram("health:", "  tcp: {address: \"a:1\"}", "  startup_grace: 61m"), []string{
		"demo.yaml:6: programs[0].health.startup_grace: must be at most 1h0m0s, not 1h1m0s"}},

	// notify.
	{"notify a boolean", withProgram("notify: true"), []string{
		"demo.yaml:4: programs[0].notify: must be a mapping, not a boolean"}},
	{"empty notify", withProgram("notify: {}"), []string{
		"demo.yaml:4: programs[0].notify: has no effect: set ready, watchdog or both"}},
	{"notify not ready", withProgram("notify:", "  ready: false", "  watchdog: 0s"), []string{
		"demo.yaml:4: programs[0].notify: has no effect: set ready, watchdog or both"}},
	{"notify with only start_timeout", withProgram("notify: {start_timeout: 30s}"), []string{
		"demo.yaml:4: programs[0].notify: has no effect: set ready, watchdog or both"}},
	{"start_timeout without ready", withProgram("notify:", "  watchdog: 30s", "  start_timeout: 90s"), []string{
		"demo.yaml:6: programs[0].notify.start_timeout: has no effect without ready: true (it bounds the wait for READY=1)"}},
	{"ready not a boolean", withProgram("notify: {ready: yes, start_timeout: 30s}"), []string{
		`demo.yaml:4: programs[0].notify.ready: must be true or false, not the string "yes"`}},
	{"misspelt notify key", withProgram("notify: {ready: true, watchdg: 30s}"), []string{
		`demo.yaml:4: programs[0].notify.watchdg: unknown key, did you mean "watchdog"?`}},
	{"unknown notify key", withProgram("notify: {ready: true, WatchdogSec: 30s}"), []string{
		"demo.yaml:4: programs[0].notify.WatchdogSec: unknown key (known keys: ready, start_timeout, watchdog)"}},
	{"start_timeout too short", withProgram("notify: {ready: true, start_timeout: 99ms}"), []string{
		"demo.yaml:4: programs[0].notify.start_timeout: must be at least 100ms, not 99ms"}},
	{"start_timeout too long", withProgram("notify: {ready: true, start_timeout: 2h}"), []string{
		"demo.yaml:4: programs[0].notify.start_timeout: must be at most 1h0m0s, not 2h0m0s"}},
	{"watchdog too short", withProgram("notify: {watchdog: 50ms}"), []string{
		"demo.yaml:4: programs[0].notify.watchdog: must be 0 (no watchdog) or at least 100ms, not 50ms"}},
	{"watchdog negative", withProgram("notify: {ready: true, watchdog: -1s}"), []string{
		"demo.yaml:4: programs[0].notify.watchdog: must be 0 (no watchdog) or at least 100ms, not -1s"}},
	{"watchdog too long", withProgram("notify: {watchdog: 25h}"), []string{
		"demo.yaml:4: programs[0].notify.watchdog: must be at most 24h0m0s, not 25h0m0s"}},
	{"env sets what notify sets", withProgram("notify: {ready: true}", "env:", "  WATCHDOG_PID: 1", "  NOTIFY_SOCKET: /run/x", "  WATCHDOG_USEC: 1"), []string{
		"demo.yaml:6: programs[0].env.WATCHDOG_PID: is reserved with notify: respawnd sets it",
		"demo.yaml:7: programs[0].env.NOTIFY_SOCKET: is reserved with notify: respawnd sets it",
		"demo.yaml:8: programs[0].env.WATCHDOG_USEC: is reserved with notify: respawnd sets it"}},
}

// manyHeaders returns n distinct headers written as a flow mapping's
// entries.
func manyHeaders(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("X-H" + strings.Repeat("a", i) + ": 1")
	}
	return b.String()
}

// TestHealthErrors checks every rule of the health and notify sections,
// each by its exact text: file, line, field and message.
func TestHealthErrors(t *testing.T) {
	for _, tt := range healthErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("demo.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestHealthAccepted checks values at the edges of every rule that must
// pass.
func TestHealthAccepted(t *testing.T) {
	for _, lines := range [][]string{
		{"health: {http: {url: \"https://api.internal:8443/healthz?deep=1#x\"}}"},
		{"health: {http: {url: \"HTTP://[::1]:65535/\", expect_status: 100-599}}"},
		{"health: {http: {url: \"http://user:pass@127.0.0.1/\", expect_status: 599}}"},
		{"health: {http: {url: http://a/, headers: {Host: \"api.internal:8080\", X-Token: \"a b\\tc\", X-Bytes: \"\u00e9\", \"!#$%&'*+-.^_`|~\": 1}}}"},
		{"health: {http: {url: http://a/, headers: {" + manyHeaders(MaxHealthHeaders) + "}}}"},
		{"health: {http: {url: http://a/, headers: {X-A: " + strings.Repeat("x", MaxHeaderLen-5) + "}}}"},
		{"health: {http: {url: \"http://a/" + strings.Repeat("x", MaxURLLen-9) + "\"}}"},
		{"health: {tcp: {address: \"[::1]:1\"}}"},
		{"health: {tcp: {address: \"[fe80::1%eth0]:5432\"}}"},
		{"health: {tcp: {address: \"db.internal:65535\"}}"},
		{"health: {tcp: {address: \"" + strings.Repeat("a", MaxAddressLen-5) + ":5432\"}}"},
		{"health: {exec: {command: [check-db]}}"},
		{"health: {exec: {command: [/usr/local/bin/check-db, \"\", ../x]}}"},
		{"health: {tcp: {address: \"a:1\"}, period: 100ms, timeout: 100ms, failures: 1, startup_grace: 0s}"},
		{"health: {tcp: {address: \"a:1\"}, period: 24h, timeout: 24h, failures: 100, startup_grace: 1h}"},
		{"health: {tcp: {address: \"a:1\"}, period: 1s, timeout: 1ns}"},
		{"notify: {ready: true, start_timeout: 100ms}"},
		{"notify: {ready: true, start_timeout: 1h, watchdog: 100ms}"},
		{"notify: {watchdog: 24h}"},
		{"notify: {ready: true, watchdog: 0s}"},
		{"notify: {ready: true, start_timeout: 90s, watchdog: 0s}"},
		// Only a program with notify gets these from respawnd.
		{"env: {NOTIFY_SOCKET: /run/systemd/notify, WATCHDOG_USEC: 1, WATCHDOG_PID: 1}"},
		{"health: {tcp: {address: \"a:1\"}}", "notify: {ready: true}", "env: {WATCHDOG: 1}"},
	} {
		in := withProgram(lines...)
		if _, err := Parse("demo.yaml", []byte(in)); err != nil {
			t.Errorf("Parse(%q):\n%v", in, err)
		}
	}
}

// TestValidateHealthInCode checks the rules on sections built in code,
// which have no defaults: Validate applies none.
func TestValidateHealthInCode(t *testing.T) {
	p := codeProgram("api")
	p.Health = &Health{HTTP: &HTTPProbe{URL: "http://127.0.0.1/"}}
	p.Notify = &Notify{}
	p.Env = map[string]string{"NOTIFY_SOCKET": "x"}
	want := strings.Join([]string{
		"health.http.expect_status: statuses must be from 100 to 599, not 0",
		"health.period: must be at least 100ms, not 0s",
		"health.timeout: must be positive, not 0s",
		"health.failures: must be at least 1, not 0",
		"notify: has no effect: set ready, watchdog or both",
		"env.NOTIFY_SOCKET: is reserved with notify: respawnd sets it",
	}, "\n")
	if err := p.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate():\n got %v\nwant %s", err, want)
	}

	// Built from the defaults, with one probe, it passes.
	h, n := DefaultHealth(), DefaultNotify()
	h.HTTP = &HTTPProbe{URL: "http://127.0.0.1/", ExpectStatus: DefaultStatusRange}
	n.Ready = true
	p = codeProgram("api")
	p.Health, p.Notify = &h, &n
	if err := p.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	// A start_timeout other than the default without ready has no effect;
	// 0 and the default stand for none.
	for _, d := range []time.Duration{0, DefaultStartTimeout} {
		p.Notify = &Notify{Watchdog: time.Second, StartTimeout: d}
		if err := p.Validate(); err != nil {
			t.Errorf("start_timeout %v without ready: %v", d, err)
		}
	}
	p.Notify = &Notify{Watchdog: time.Second, StartTimeout: time.Minute}
	if err, want := p.Validate(), "notify.start_timeout: has no effect without ready: true (it bounds the wait for READY=1)"; err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
	// More than one probe, and too many headers, in code.
	p = codeProgram("api")
	h = DefaultHealth()
	h.TCP = &TCPProbe{Address: "a:1"}
	h.Exec = &ExecProbe{Command: []string{"check"}}
	h.HTTP = &HTTPProbe{URL: "http://a/", ExpectStatus: StatusRange{204, 204}, Headers: map[string]string{}}
	for i := range MaxHealthHeaders + 1 {
		h.HTTP.Headers["X-"+strings.Repeat("a", i+1)] = ""
	}
	p.Health = &h
	want = strings.Join([]string{
		"health.tcp: must not be set together with http: a health check has one probe",
		"health.exec: must not be set together with http: a health check has one probe",
		"health.http.headers: must have at most 32 headers, not 33",
	}, "\n")
	if err := p.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate():\n got %v\nwant %s", err, want)
	}
}

// TestHashHealthDefaultsLeftOut checks that the defaults of health and
// notify, spelled out, hash as left out, while the sections themselves
// count.
func TestHashHealthDefaultsLeftOut(t *testing.T) {
	hash := func(lines ...string) string {
		t.Helper()
		c, err := Parse("demo.yaml", []byte(withProgram(lines...)))
		if err != nil {
			t.Fatal(err)
		}
		return c.Programs[0].Hash()
	}
	bare := hash()
	same := [][]string{
		{"health: ~", "notify: ~"},
	}
	for _, lines := range same {
		if got := hash(lines...); got != bare {
			t.Errorf("%q hashes unlike a program without health and notify", lines)
		}
	}
	pairs := [][2][]string{
		{
			{"health: {http: {url: http://a/}}"},
			{"health:", "  http: {url: http://a/, expect_status: 200-399, headers: {}}", "  period: 10s", "  timeout: 1s", "  failures: 3", "  startup_grace: 0s"},
		},
		{
			{"health: {http: {url: http://a/, expect_status: 204}}"},
			{"health: {http: {url: http://a/, expect_status: \"204-204\"}}"},
		},
		{
			{"health: {tcp: {address: \"a:1\"}}"},
			{"health: {tcp: {address: \"a:1\"}, period: ~, timeout: ~, failures: ~, startup_grace: ~}"},
		},
		{
			{"notify: {ready: true}"},
			{"notify: {ready: true, start_timeout: 90s, watchdog: 0s}"},
		},
		{
			{"notify: {watchdog: 30s}"},
			{"notify: {ready: false, watchdog: 30000ms}"},
		},
	}
	seen := map[string]int{}
	for i, pair := range pairs {
		a, b := hash(pair[0]...), hash(pair[1]...)
		if a != b {
			t.Errorf("defaults spelled out change the hash:\n%q\n%q", pair[0], pair[1])
		}
		if a == bare {
			t.Errorf("%q hashes like a program without it", pair[0])
		}
		if j, dup := seen[a]; dup {
			t.Errorf("pairs %d and %d hash alike", j, i)
		}
		seen[a] = i
	}
	// A changed field changes the hash.
	changed := [][]string{
		{"health: {http: {url: http://b/}}"},
		{"health: {http: {url: http://a/, expect_status: 200-299}}"},
		{"health: {http: {url: http://a/, headers: {X-A: 1}}}"},
		{"health: {http: {url: http://a/}, period: 11s}"},
		{"health: {http: {url: http://a/}, timeout: 2s}"},
		{"health: {http: {url: http://a/}, failures: 4}"},
		{"health: {http: {url: http://a/}, startup_grace: 1s}"},
		{"health: {exec: {command: [/bin/check]}}"},
		{"health: {tcp: {address: \"a:2\"}}"},
		{"notify: {ready: true, start_timeout: 91s}"},
		{"notify: {ready: true, watchdog: 30s}"},
		{"notify: {watchdog: 31s}"},
	}
	for _, lines := range changed {
		h := hash(lines...)
		if _, dup := seen[h]; dup || h == bare {
			t.Errorf("%q hashes like another program", lines)
		}
		seen[h] = len(seen)
	}
}
