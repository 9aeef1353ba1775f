package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile     = "prometheus/chatd.rules.yml"
	rulesTestFile = "prometheus/chatd.rules.test.yml"
	dashboardFile = "grafana/chatd.json"
	operationsDoc = "../docs/OPERATIONS.md"
	// panelsHeading heads the bullet list of dashboard panels in
	// operationsDoc, one "- `Title`: what it shows" a line.
	panelsHeading = "Dashboard panels"
	// promtoolTimeout bounds one promtool run; it takes about a second.
	promtoolTimeout = 2 * time.Minute
)

// requiredPanels must be on the dashboard, whatever else the docs list.
var requiredPanels = []string{
	"Sessions by transport", "Connects and disconnects", "Abnormal WebSocket disconnect rate",
	"Client round trip p99", "Delivery latency p99", "Store latency p99", "Errors by code",
	"Degradation level", "Breakers", "Rollouts", "Anonymous RSS and Go heap", "Connections refused",
}

// requiredAlerts are the seed's three alerts, with the level, breaker and
// rollout alerts that must be there too.
var requiredAlerts = []string{
	"ChatdWebSocketDisconnectRateHigh", "ChatdClientRoundTripSlow", "ChatdMemoryGrowth",
	"ChatdDegraded", "ChatdDegradedToPolling", "ChatdBreakerOpen", "ChatdRolloutHalted",
}

// promtool runs promtool with args in this directory and fails the test
// with its output if it fails. A missing promtool fails too: CI installs it
// through `make deps`, and a skip would hide untested rules.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (%v): run `make deps`, which installs Debian's prometheus package (it ships promtool)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), promtoolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestRulesCheck(t *testing.T) { promtool(t, "check", "rules", rulesFile) }

func TestRulesUnit(t *testing.T) { promtool(t, "test", "rules", rulesTestFile) }

// rule is one rule of a Prometheus rule file.
type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	decodeYAML(t, rulesFile, &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return rules
}

func decodeYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestAlertsDocumented checks that every alert has a severity, a summary, a
// description and a runbook that points at a heading of operationsDoc.
func TestAlertsDocumented(t *testing.T) {
	anchors := docAnchors(t)
	var alerts []string
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts = append(alerts, r.Alert)
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/OPERATIONS.md#")
		if !ok || !anchors[anchor] {
			t.Errorf("%s: runbook %q is not docs/OPERATIONS.md#<a heading's anchor>", r.Alert, r.Annotations["runbook"])
		}
	}
	for _, a := range requiredAlerts {
		if !slices.Contains(alerts, a) {
			t.Errorf("%s: no alert %s", rulesFile, a)
		}
	}
}

// TestAlertsTested checks that the unit tests make every alert fire and
// also hold it silent somewhere.
func TestAlertsTested(t *testing.T) {
	var f struct {
		Tests []struct {
			Name  string `yaml:"name"`
			Cases []struct {
				Alert     string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil { // not strict: we read a few fields only
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alert] = true
			} else {
				silent[c.Alert] = true
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert != "" && (!fires[r.Alert] || !silent[r.Alert]) {
			t.Errorf("%s: %s must make it fire (%v) and hold it silent (%v)", r.Alert, rulesTestFile, fires[r.Alert], silent[r.Alert])
		}
	}
}

// TestRulesMetrics checks that the rules read only the contract's metrics
// and the series the rules themselves record.
func TestRulesMetrics(t *testing.T) {
	rules := loadRules(t)
	recorded := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	for _, r := range rules {
		name := r.Alert + r.Record
		names := metricNames(r.Expr)
		if len(names) == 0 {
			t.Errorf("%s: reads no metric: %q", name, r.Expr)
		}
		for _, m := range names {
			if !inContract(m) && !recorded[m] {
				t.Errorf("%s reads %s: not a metric of the contract nor a recorded series", name, m)
			}
		}
	}
}

// dashboard is what the tests read of a Grafana dashboard.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// variable is a dashboard variable. Query is a string, or for a query
// variable from a newer Grafana an object.
type variable struct {
	Type  string          `json:"type"`
	Name  string          `json:"name"`
	Query json.RawMessage `json:"query"`
}

type panel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func loadDashboard(t *testing.T) (d dashboard, panels []panel) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			panels = append(panels, p.Panels...)
			continue
		}
		panels = append(panels, p)
	}
	return d, panels
}

// TestDashboardPanels checks the dashboard against the panel list of
// operationsDoc, both ways, and that every panel queries the chosen data
// source.
func TestDashboardPanels(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later", d.SchemaVersion)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool {
		return v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"`
	}) {
		t.Errorf("no Prometheus datasource variable named datasource")
	}
	listed := docPanels(t)
	for _, want := range requiredPanels {
		if !slices.Contains(listed, want) {
			t.Errorf("%s does not list the panel %q", operationsDoc, want)
		}
	}
	seen := map[string]bool{}
	for _, p := range panels {
		if seen[p.Title] {
			t.Errorf("two panels are titled %q", p.Title)
		}
		seen[p.Title] = true
		if !slices.Contains(listed, p.Title) {
			t.Errorf("panel %q is not in the list of %s", p.Title, operationsDoc)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource uid %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no target", p.Title)
		}
		for i, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target %d has no expr", p.Title, i)
			}
		}
	}
	for _, title := range listed {
		if !seen[title] {
			t.Errorf("%s lists %q, which is not on the dashboard", operationsDoc, title)
		}
	}
}

// TestDashboardMetrics checks that every panel and variable reads only the
// contract's metrics (the dashboard does not depend on the recording rules).
func TestDashboardMetrics(t *testing.T) {
	d, panels := loadDashboard(t)
	check := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s reads no metric: %q", where, expr)
		}
		for _, m := range names {
			if !inContract(m) {
				t.Errorf("%s reads %s: not a metric of the contract", where, m)
			}
		}
	}
	for _, p := range panels {
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		query, err := variableQuery(v.Query)
		if err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		expr, ok := variableExpr(query)
		if !ok {
			t.Errorf("variable %s: query %q is not label_values(expr, label) or query_result(expr)", v.Name, query)
			continue
		}
		check("variable "+v.Name, expr)
	}
}

// variableQuery returns a query variable's query: a string, or the query
// field of the object newer Grafanas write.
func variableQuery(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &q); err != nil {
		return "", fmt.Errorf("query %s is neither a string nor an object with a query", raw)
	}
	return q.Query, nil
}

var rePanelItem = regexp.MustCompile("^- `([^`]+)`")

// docPanels returns the panel titles listed under panelsHeading in
// operationsDoc.
func docPanels(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var titles []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = strings.TrimSpace(strings.TrimLeft(line, "#")) == panelsHeading
			continue
		}
		if m := rePanelItem.FindStringSubmatch(line); in && m != nil {
			titles = append(titles, m[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(titles) == 0 {
		t.Fatalf("%s: no \"- `Panel title`\" list under a heading %q", operationsDoc, panelsHeading)
	}
	return titles
}

var (
	reHeading    = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*$`)
	reSlugDelete = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
)

// docAnchors returns the anchors GitHub makes of operationsDoc's headings:
// lower case, punctuation dropped, spaces as hyphens.
func docAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if m := reHeading.FindStringSubmatch(line); m != nil && !fence {
			slug := reSlugDelete.ReplaceAllString(strings.ToLower(m[1]), "")
			anchors[strings.ReplaceAll(slug, " ", "-")] = true
		}
	}
	return anchors
}

func TestDocAnchors(t *testing.T) {
	anchors := docAnchors(t)
	for _, a := range []string{"degradation-levels", "feature-flags-and-gradual-rollout", "alerts-and-dashboard"} {
		if !anchors[a] {
			t.Errorf("no anchor %q among %d headings", a, len(anchors))
		}
	}
}

func TestVariableQuery(t *testing.T) {
	for raw, want := range map[string]string{
		`"label_values(m, job)"`:                       "label_values(m, job)",
		`{"query":"label_values(m, job)","refId":"A"}`: "label_values(m, job)",
		`{"qryType":1,"query":"label_values(m, job)"}`: "label_values(m, job)",
	} {
		if got, err := variableQuery(json.RawMessage(raw)); got != want || err != nil {
			t.Errorf("variableQuery(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	if _, err := variableQuery(json.RawMessage(`[1]`)); err == nil {
		t.Errorf("variableQuery([1]) took an array")
	}
}
