// Package metrics owns respawnd's Prometheus metrics, built with
// client_golang on a registry of its own.
//
// It uses two mechanisms. Events the daemon sees (exits, restarts, OOM kills)
// are counted by a Recorder, which satisfies the supervisor's Recorder
// interface without importing its behaviour; every exit reason is
// pre-initialised for each program so that series start at 0. State read at
// scrape time (up, state, start and exit times, backoff, memory, OOM sources,
// configuration reloads) comes from a Collector that asks a Source for a
// snapshot on every scrape; there is no background poller.
//
// It deliberately holds no state that decisions depend on, reads no kernel
// interface itself and knows nothing of HTTP: the caller serves the Registry.
package metrics
