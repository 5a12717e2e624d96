package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/forkwatch/forkwatch/internal/verify"
)

// verifyPoll is how often verify asks Prometheus again while counts are
// still missing (Prometheus scrapes every 2s).
const verifyPoll = 500 * time.Millisecond

// flushMargin is how long after the load's last answer the workers'
// metrics are surely in the exporter: their client flushes every 200ms.
const flushMargin = time.Second

// runVerify is `fwctl verify`: compare the increase Prometheus saw since the
// last load started with what that load sent. Exit 0 when they agree, 1 on
// a difference or an error.
func runVerify(args []string, stdout, stderr io.Writer) int {
	sub := newSubcommand("fwctl verify", "per endpoint and http_status, compare the increase of request_count that\n"+
		"Prometheus saw since the last `fwctl load` started with what that load sent.", stdout, stderr)
	fs := sub.fs
	prom := fs.String("prometheus", "http://127.0.0.1:9090", "Prometheus `URL`")
	record := fs.String("record", verify.DefaultRecordPath, "the load's record `file` (written by fwctl load)")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for Prometheus to scrape the last counts")
	if code, ok := sub.parse(args); !ok {
		return code
	}
	if *wait < 0 {
		fmt.Fprintf(stderr, "fwctl verify: -wait %s: must not be negative\n", *wait)
		return 2
	}
	rec, err := verify.Load(*record)
	if err != nil {
		fmt.Fprintf(stderr, "fwctl verify: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The answer is final once Prometheus has scraped every exporter after
	// the load ended (and the workers flushed), and nothing the load sent
	// is missing: counters only grow, so more than sent stays more.
	deadline := time.Now().Add(*wait)
	p := &verify.Prometheus{URL: *prom}
	var r verify.Report
	for {
		now, err := p.Totals(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "fwctl verify: %v\n", err)
			return 1
		}
		r = verify.CompareLoad(rec, now)
		scraped, ok, err := p.LastScrape(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "fwctl verify: %v\n", err)
			return 1
		}
		final := ok && scraped.After(rec.Finished.Add(flushMargin)) && !r.Missing()
		if final || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(verifyPoll):
		}
	}

	fmt.Fprintf(stdout, "load of %s at %s (%s), mix %s\n", rec.URL, rec.Started.Format(time.RFC3339),
		rec.Finished.Sub(rec.Started).Round(time.Millisecond), rec.Mix)
	fmt.Fprintf(stdout, "Prometheus %s: %s, increase since the load started vs what the load sent\n\n", *prom, verify.Query)
	if err := r.Print(stdout); err != nil {
		fmt.Fprintf(stderr, "fwctl verify: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	sent := rec.SentTotals().Sum()
	diffs := r.Differences()
	switch {
	case rec.Errors > 0:
		fmt.Fprintf(stdout, "verify: FAILED: the load had %d requests without an answer, which the server may or may not have counted\n", rec.Errors)
		return 1
	case diffs > 0 && r.Missing():
		fmt.Fprintf(stdout, "verify: FAILED: %d of %d series differ; counts still missing after waiting %s\n", diffs, len(r.Rows), *wait)
		return 1
	case diffs > 0:
		fmt.Fprintf(stdout, "verify: FAILED: %d of %d series differ: Prometheus saw more than the load sent (other traffic since the load started, or a counter reset)\n", diffs, len(r.Rows))
		return 1
	}
	fmt.Fprintf(stdout, "verify: OK: Prometheus saw exactly the %d requests the load sent, in %d series, difference 0\n", sent, len(r.Rows))
	return 0
}
