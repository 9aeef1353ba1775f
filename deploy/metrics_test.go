package deploy

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// contractMetrics are the metric names of the metrics contract: what the
// server exports. A rule or a panel may read these and nothing else (besides
// the series the rules record). Keep it in step with the contract.
var contractMetrics = map[string]bool{
	// degrade
	"chat_degrade_level":             true,
	"chat_degrade_auto_level":        true,
	"chat_degrade_floor":             true,
	"chat_degrade_mode":              true,
	"chat_breaker_state":             true,
	"chat_degrade_transitions_total": true,
	// core
	"chat_messages_total":         true,
	"chat_sessions":               true,
	"chat_connects_total":         true,
	"chat_disconnects_total":      true,
	"chat_error_replies_total":    true,
	"chat_process_anon_rss_bytes": true,
	// transports/httpx
	"chat_http_conns_refused_total": true,
	"chat_http_conns_open":          true,
	// rollout plans
	"chat_rollout_percent":     true,
	"chat_rollout_state":       true,
	"chat_rollout_halts_total": true,
	// core/redis
	"chat_redis_errors_total":          true,
	"chat_redis_resyncs_total":         true,
	"chat_redis_dropped_total":         true,
	"chat_redis_breaker_state":         true,
	"chat_redis_reaped_nodes_total":    true,
	"chat_redis_reaped_presence_total": true,
	// the Go and process collectors
	"go_goroutines":                 true,
	"go_memstats_heap_inuse_bytes":  true,
	"process_resident_memory_bytes": true,
	"process_open_fds":              true,
	"process_max_fds":               true,
	"process_cpu_seconds_total":     true,
}

// contractHistograms are the contract's histograms: a query reads their
// _bucket, _sum and _count series.
var contractHistograms = []string{
	"chat_fanout_seconds",
	"chat_delivery_seconds",
	"chat_client_rtt_seconds",
	"chat_store_seconds",
}

// inContract reports whether name is a series the server exports.
func inContract(name string) bool {
	if contractMetrics[name] {
		return true
	}
	for _, h := range contractHistograms {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if name == h+suffix {
				return true
			}
		}
	}
	return false
}

var (
	// Removed first, so that nothing inside them reads as a name.
	reString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	reVariable = regexp.MustCompile(`\$\{?\w+\}?`) // Grafana's $job, ${datasource}, $__rate_interval
	reMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	reRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	reGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	// A number, or a name with the "(" that makes it a function.
	reToken = regexp.MustCompile(`\d[\w.]*(?:[eE][+-]?\d+)?|[A-Za-z_:][\w:]*(\s*\()?`)
)

// keywords are PromQL words that are neither metrics nor functions.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// metricNames returns the metric names a PromQL expression reads, sorted
// and without repeats. It is a scanner, not a parser: it drops strings,
// label matchers, ranges and grouping labels, then keeps every name that is
// not a function call or a keyword.
func metricNames(expr string) []string {
	s := reString.ReplaceAllString(expr, `""`)
	s = reVariable.ReplaceAllString(s, "1")
	s = reMatchers.ReplaceAllString(s, " ")
	s = reRange.ReplaceAllString(s, " ")
	s = reGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, m := range reToken.FindAllStringSubmatch(s, -1) {
		tok := m[0]
		if tok[0] >= '0' && tok[0] <= '9' || m[1] != "" || keywords[strings.ToLower(tok)] {
			continue
		}
		names = append(names, tok)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

var (
	reLabelValues = regexp.MustCompile(`^\s*label_values\(\s*(.+),\s*\w+\s*\)\s*$`)
	reQueryResult = regexp.MustCompile(`^\s*query_result\((.+)\)\s*$`)
)

// variableExpr returns the PromQL expression inside a Grafana variable
// query: label_values(expr, label) or query_result(expr).
func variableExpr(query string) (string, bool) {
	for _, re := range []*regexp.Regexp{reLabelValues, reQueryResult} {
		if m := re.FindStringSubmatch(query); m != nil {
			return m[1], true
		}
	}
	return "", false
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`chat_sessions`, []string{"chat_sessions"}},
		{`60 * sum by (job, instance) (rate(chat_disconnects_total{transport="websocket", code!~"1000|1001"}[5m]))
		   / clamp_min(instance:chat_ws_sessions:avg5m, 1) > 0.01`,
			[]string{"chat_disconnects_total", "instance:chat_ws_sessions:avg5m"}},
		{`histogram_quantile(0.99, sum by (le) (rate(chat_store_seconds_bucket{job=~"$job"}[$__rate_interval])))`,
			[]string{"chat_store_seconds_bucket"}},
		{`deriv(a_bytes[1h]) * 3600 > 5e6 or on (job, instance) label_replace(b_bytes and on(job) c, "source", "x (y)", "", "")`,
			[]string{"a_bytes", "b_bytes", "c"}},
		{`x * on (job) group_left (mode) y offset 5m unless bool z == Inf`, []string{"x", "y", "z"}},
		{`sum(rate(m{l="{not_a_metric}"}[1m:10s]))`, []string{"m"}},
		{`max_over_time(up [5m])`, []string{"up"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestVariableExpr(t *testing.T) {
	for _, tc := range []struct {
		query, want string
		ok          bool
	}{
		{`label_values(chat_degrade_level{job=~"$job"}, instance)`, `chat_degrade_level{job=~"$job"}`, true},
		{`query_result(max by (job) (chat_degrade_level))`, `max by (job) (chat_degrade_level)`, true},
		{`label_values(job)`, "", false},
	} {
		got, ok := variableExpr(tc.query)
		if got != tc.want || ok != tc.ok {
			t.Errorf("variableExpr(%q) = %q, %v; want %q, %v", tc.query, got, ok, tc.want, tc.ok)
		}
	}
}
