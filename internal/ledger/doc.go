// Package ledger is the server side of forkwatch's accounting audit: what
// the workers themselves served, per request_count series, kept apart from
// the DogStatsD path so the two can be compared.
//
//   - In each worker, Tally is a worker.Recorder that counts requests per
//     series (method, endpoint, status) in atomic counters; Message is what
//     the worker sends the supervisor (Child.Send) with each report and
//     after its drain.
//   - In the supervisor, Ledger keeps the latest totals of each live worker
//     and the sum of those that exited, and serves them as JSON (Handler)
//     on the loopback admin address.
//
// The client side (reading Prometheus and comparing) is package verify; this
// package links no Prometheus client, so server binaries stay small.
package ledger
