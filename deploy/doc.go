// Package deploy holds the files that run chatd in production but are not
// Go: the Prometheus alerting and recording rules
// (prometheus/chatd.rules.yml) with their promtool unit tests
// (prometheus/chatd.rules.test.yml), and the Grafana dashboard
// (grafana/chatd.json). docs/OPERATIONS.md, section "Alerts and
// dashboard", says what each alert means and how to load them.
//
// The package has no code. Its tests keep the files honest: promtool must
// accept and pass the rules, every panel the docs list must be on the
// dashboard with a query, and every metric a rule or a panel reads must be
// one the server exports under the metrics contract. The tests need
// promtool (`make deps` installs it) and fail without it.
//
// This package imports nothing of the module, and nothing imports it.
package deploy
