// Package ledger is the server side of forkwatch's accounting audit: what
// the workers themselves served, per request_count series, kept apart from
// the DogStatsD path so the two can be compared.
//
// The supervisor's Ledger reads each live worker's cumulative counts from
// its metrics segment (statsd.Segment: written by the worker the moment a
// request finishes, readable by the supervisor at any time, and still there
// after the worker was killed), adds the final counts of every worker that
// has exited, and serves the sum as JSON (Handler) on the loopback admin
// address.
//
// The client side (reading Prometheus and comparing) is package verify; this
// package links no Prometheus client, so server binaries stay small.
package ledger
