// Package deploy holds no code: it is the module of respawnd's deployment
// files (container image, Kubernetes manifests, systemd unit, Prometheus
// rules, Grafana dashboard) and of the tests that check them. It is a module
// of its own so that the heavy test-only dependencies (Kubernetes API types,
// prometheus-operator, the PromQL parser, BuildKit's Dockerfile frontend)
// stay out of respawnd's go.mod.
//
// The tests read two files that other files must agree with:
// metrics.prom, the metrics respawnd exports, and web-listen-address, the
// default of respawnd's --web.listen-address flag.
package deploy
