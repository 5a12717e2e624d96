package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/forkwatch/forkwatch/internal/verify"
)

// runAudit compares the supervisor's ledger (-admin) with the raw
// request_count samples in Prometheus (-prometheus) and prints, per series,
// served, seen by Prometheus and missing. Exit 0: all match; 1: some count is
// missing (or extra) or a source could not be read; 2: bad usage.
func runAudit(args []string, stdout, stderr io.Writer) int {
	sub := newSubcommand("fwctl audit", "compare what the workers served (the supervisor's ledger, -admin-addr) with\n"+
		"what Prometheus saw (raw request_count samples since the pool started, counter resets\n"+
		"and exporter restarts included). Exit 1 if any series is missing counts.", stdout, stderr)
	fs := sub.fs
	promURL := fs.String("prometheus", "http://127.0.0.1:9090", "Prometheus base `URL`")
	adminURL := fs.String("admin", "http://127.0.0.1:5050", "the supervisor's admin endpoint `URL` (its -admin-addr)")
	wait := fs.Duration("wait", 15*time.Second, "while some count is missing, check again every second for this long (0: once)")
	if code, ok := sub.parse(args); !ok {
		return code
	}
	if *wait < 0 {
		return sub.usage("-wait %s: must not be negative", *wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+time.Minute)
	defer cancel()
	r, snap, err := verify.WaitAudit(ctx, &verify.Prometheus{URL: *promURL}, *adminURL, *wait, time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "fwctl audit: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "app_name=%s, pool started %s\n", snap.AppName, snap.Started.Format(time.RFC3339))
	if err := r.Print(stdout); err != nil {
		return 1
	}
	served, seen := r.Totals()
	if snap.DroppedSamples > 0 {
		// Counts are exact regardless; these requests' latencies are not in
		// the histogram.
		fmt.Fprintf(stdout, "note: the workers dropped %d latency samples (their buffers full while the exporter was unreachable)\n", snap.DroppedSamples)
	}
	if !r.OK() {
		fmt.Fprintf(stdout, "MISMATCH: %d served, %d seen by Prometheus, %d missing\n", served, seen, served-seen)
		return 1
	}
	fmt.Fprintf(stdout, "exact: %d served, %d seen by Prometheus\n", served, seen)
	return 0
}
