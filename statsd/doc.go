// Package statsd sends forkwatch's metrics as DogStatsD lines with the
// datadog-go v5 client, set up so that the counts a statsd_exporter adds up
// are exact, and owns the metric names and tag keys (the contract that
// PromQL queries rely on).
//
// # Where a request's metrics live until they are sent
//
// Record writes only memory: it adds one to its series' cumulative count
// and puts the latency in a ring, both in a Segment. A worker's Segment is a
// memfd the supervisor created, so what the worker recorded and had not yet
// sent survives its death (SIGKILL, OOM, panic); the supervisor sends it
// with SendRemainder. Record never touches the network, never takes a lock
// that a network call holds and never sleeps: its cost is one map lookup and
// two atomic operations, whatever the exporter does.
//
// One flush goroutine per Client reads what lies between the sent
// watermarks and the written data every FlushInterval (or early, when the
// ring is half full), hands it to datadog-go (counts as one Count per
// series, latencies as Histogram samples that the extended client-side
// aggregation packs into name:v1:v2:...|h lines), flushes datadog-go
// synchronously and only then advances the watermarks. It is the only
// caller of datadog-go, so datadog-go's race between Histogram and its own
// flush (a sample appended to a buffer already swapped out is lost) cannot
// happen.
//
// # Guarantees, and which way they err
//
//   - Counts are exact under a worker's death: the count of a request is in
//     the segment before Record returns. A latency sample can be missing
//     only if the worker dies between reserving its ring entry and storing
//     it (a few instructions); SendRemainder reports these as Unwritten.
//   - A crash between datadog-go's socket writes and the watermark stores
//     (microseconds: everything is computed before the send, the stores
//     follow the Flush at once) makes SendRemainder send that one flush
//     again: the error is a duplicate, never a loss.
//   - A flush is sent in chunks of one datagram each; a chunk whose write
//     failed advances nothing and the flush stops there, so the rest is
//     retried next interval and nothing is sent twice. With unixgram a
//     stopped exporter fails every write at once, so an exporter restart
//     loses nothing.
//   - Over UDP a write to a port nobody listens on succeeds; the ICMP
//     refusal only sets the socket's pending error. The UDP writer reads
//     it right after each write (udp.go), and on loopback the refusal is
//     there before the write returns, so there too a restart loses nothing
//     (e2e TestFaultExporterRestartUnderLoad/udp). Across hosts the ICMP
//     may come late or never: what is flushed while the exporter is down
//     is then lost (at most the exporter's downtime of traffic), or, if
//     the refusal is charged to a later datagram that got through, sent
//     twice. The exporter's own counters restart from zero, as with any
//     statsd restart.
//   - Bounded memory: when the ring is full (the exporter unreachable for
//     long) further samples are dropped and counted (Totals.DroppedSamples);
//     counts never drop. Series beyond the table are counted and sent from
//     process memory (Totals.Overflow), so they are exact unless the worker
//     is killed.
//   - Close spends at most Config.CloseTimeout on the final flush; what it
//     could not send stays in the segment for SendRemainder.
//
// The supervisor's Client records no requests; its SetPool, SetBuildInfo and
// WorkerRestart only set values that its flush goroutine sends at its next
// flush.
package statsd
