// Package api owns respawnd's HTTP API: the JSON types of
// /api/v1/programs and /api/v1/events, the handlers for them and for
// /-/healthy, /-/ready and /-/reload, program control (start, stop,
// restart), the unix control socket that refuses peers other than root, and
// the client the command line uses to talk to the daemon over that socket.
//
// It talks to the daemon through the small interfaces it declares (Source
// and Controller) and imports only the supervisor's and oom's plain data
// types. It deliberately knows nothing of metrics, TLS or authentication:
// the caller serves the handler through exporter-toolkit, which adds those,
// next to /metrics.
package api
