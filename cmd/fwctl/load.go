package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/forkwatch/forkwatch/internal/demo"
	"github.com/forkwatch/forkwatch/internal/loadgen"
	"github.com/forkwatch/forkwatch/internal/verify"
)

// defaultMix covers every kind of answer the demo gives: 200, 500, the 301
// of a bare path, and a 404.
const defaultMix = "/test/=6,/test1/=2,/test=1,/no/such/path=1"

// Baseline settling: the workers' metrics client holds counts for its flush
// interval (200ms), so two equal exporter reads this far apart mean earlier
// requests are all in.
const (
	settleQuiet = time.Second
	settleMax   = 10 * time.Second
)

// runLoad is `fwctl load`: record the totals, send a bounded load, print
// what was sent and save the record `fwctl verify` checks.
func runLoad(args []string, stdout, stderr io.Writer) int {
	sub := newSubcommand("fwctl load", "record the current request totals, send a bounded load over the demo routes,\n"+
		"print what was sent by path and status and save it for `fwctl verify`.", stdout, stderr)
	fs := sub.fs
	base := fs.String("url", "http://127.0.0.1:5000", "base `URL` of the app")
	n := fs.Int("n", 0, "requests to send (default 1000 without -d; with -d, the most to send)")
	d := fs.Duration("d", 0, "send for this long (at most 10m) instead of a count")
	c := fs.Int("c", loadgen.DefaultConcurrency, "concurrent connections (1..1000)")
	mix := fs.String("mix", defaultMix, "`paths` and weights: path=weight,...")
	exporter := fs.String("exporter", "http://127.0.0.1:9102", "statsd_exporter `URL` to read the totals before the load from (\"\": use Prometheus)")
	prom := fs.String("prometheus", "http://127.0.0.1:9090", "Prometheus `URL`, for the totals if the exporter cannot be read")
	record := fs.String("record", verify.DefaultRecordPath, "`file` to save the record for fwctl verify (\"\": no record, no baseline)")
	timeout := fs.Duration("timeout", loadgen.DefaultRequestTimeout, "limit for one request")
	if code, ok := sub.parse(args); !ok {
		return code
	}
	m, err := loadgen.ParseMix(*mix)
	if err != nil {
		fmt.Fprintf(stderr, "fwctl load: %v\n", err)
		return 2
	}
	if *c < 1 {
		fmt.Fprintf(stderr, "fwctl load: -c %d: must be from 1 to %d\n", *c, loadgen.MaxConcurrency)
		return 2
	}
	if *n == 0 && *d == 0 {
		*n = 1000
	}
	opts := loadgen.Options{URL: *base, Mix: m, Requests: *n, Duration: *d, Concurrency: *c, RequestTimeout: *timeout}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "fwctl load: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rec := &verify.Record{URL: *base, Mix: m.String()}
	if *record != "" {
		if err := recordBaseline(ctx, rec, *exporter, *prom, stderr); err != nil {
			fmt.Fprintf(stderr, "fwctl load: %v\n", err)
			return 1
		}
	}

	progress := newProgressPrinter(stderr)
	opts.Progress, opts.ProgressEvery = progress.print, progress.every
	rec.Started = time.Now()
	res, err := loadgen.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "fwctl load: %v\n", err)
		return 1
	}
	rec.Finished = time.Now()
	rec.Errors = res.Errors
	for k, v := range res.Counts {
		rec.Sent = append(rec.Sent, verify.Sent{Path: k.Path, Endpoint: demo.Endpoint(k.Path), Status: k.Status, Count: v})
	}
	sort.Slice(rec.Sent, func(i, j int) bool {
		a, b := rec.Sent[i], rec.Sent[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Status < b.Status
	})
	printSent(stdout, rec.Sent)
	fmt.Fprintf(stdout, "sent %d requests in %s (%.0f req/s), %d errors\n", res.Sent,
		res.Elapsed.Round(time.Millisecond), float64(res.Sent)/res.Elapsed.Seconds(), res.Errors)
	if res.FirstError != "" {
		fmt.Fprintf(stdout, "first error: %s\n", res.FirstError)
	}
	if *record != "" {
		if err := rec.Save(*record); err != nil {
			fmt.Fprintf(stderr, "fwctl load: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "recorded in %s; `fwctl verify -record %s` (make verify) compares it with Prometheus\n", *record, *record)
	}
	switch {
	case res.Errors > 0:
		return 1
	case *d == 0 && res.Sent < *n:
		fmt.Fprintf(stderr, "fwctl load: stopped after %d of %d requests\n", res.Sent, *n)
		return 1
	}
	return 0
}

// recordBaseline reads the totals before the load: from the exporter (which
// has them the moment the workers flush) after they settle, else from
// Prometheus (up to one scrape interval behind).
func recordBaseline(ctx context.Context, rec *verify.Record, exporter, prom string, stderr io.Writer) error {
	if exporter != "" {
		t, settled, err := verify.Settle(ctx, func(ctx context.Context) (verify.Totals, error) {
			return verify.FromExporter(ctx, exporter)
		}, verify.Equal, settleQuiet, settleMax)
		if err == nil {
			if !settled {
				fmt.Fprintf(stderr, "fwctl load: warning: the exporter's totals kept changing for %s: other traffic is running, verify will see it\n", settleMax)
			}
			rec.BaselineSource = exporter
			rec.SetBaseline(t)
			return nil
		}
		fmt.Fprintf(stderr, "fwctl load: warning: %v; reading the baseline from Prometheus instead\n", err)
	}
	if prom == "" {
		return errors.New("no exporter or Prometheus to read the totals before the load from (or give -record \"\")")
	}
	t, err := (&verify.Prometheus{URL: prom}).Totals(ctx)
	if err != nil {
		return fmt.Errorf("totals before the load: %w", err)
	}
	rec.BaselineSource = prom
	rec.SetBaseline(t)
	return nil
}

func printSent(w io.Writer, sent []verify.Sent) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tendpoint\tstatus\trequests")
	for _, s := range sent {
		status := fmt.Sprint(s.Status)
		if s.Status == 0 {
			status = "error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Path, s.Endpoint, status, s.Count)
	}
	tw.Flush()
}

// progressPrinter shows the load's progress: one line redrawn in place on a
// terminal, a plain line a second otherwise (logs, CI).
type progressPrinter struct {
	w     io.Writer
	tty   bool
	every time.Duration
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	p := &progressPrinter{w: w, every: time.Second}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		p.tty, p.every = true, 200*time.Millisecond
	}
	return p
}

func (p *progressPrinter) print(pr loadgen.Progress) {
	of := ""
	if pr.Planned < loadgen.MaxRequests {
		of = fmt.Sprintf("/%d", pr.Planned)
	}
	line := fmt.Sprintf("%d%s requests  %.0f req/s  %d errors  %s", pr.Done, of, pr.Rate(), pr.Errors,
		pr.Elapsed.Round(100*time.Millisecond))
	switch {
	case p.tty && pr.Final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	case !pr.Final:
		fmt.Fprintf(p.w, "load: %s\n", line)
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
