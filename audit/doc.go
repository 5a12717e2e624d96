// Package audit proves, against a live system, that every request a worker
// served reached Prometheus: it compares what the workers themselves counted
// with what Prometheus stored.
//
// The pipeline has three steps, one file each:
//
//   - tally.go, in each worker: Tally is a worker.Recorder that counts
//     requests per series (method, endpoint, status) in atomic counters,
//     independently of the DogStatsD client. Its Message is what the worker
//     sends to the supervisor (Child.Send) periodically and after its
//     shutdown drain.
//   - ledger.go, in the supervisor: Ledger keeps the latest totals of each
//     live worker and the sum of the workers that have exited, and serves
//     them as JSON (Handler) on a loopback admin address.
//   - prometheus.go and check.go, in `webapp audit`: the raw samples of
//     request_count since the pool started are added up like PromQL's
//     increase() without extrapolation (a drop, or a change of the
//     exporter's process_start_time_seconds, is a counter reset), and Check
//     compares them per series with the ledger: served, seen, missing.
//
// The audit is exact when one pool sends its app_name to the exporters that
// Prometheus scrapes, and when the traffic has been quiet for a flush
// interval plus a scrape interval (Check can wait for that).
package audit
