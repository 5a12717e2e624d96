package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one series of a Report.
type Row struct {
	Key
	// Served is what the workers counted.
	Served int64
	// Seen is how much Prometheus saw request_count grow since the pool
	// started.
	Seen int64
	// Missing is Served - Seen: counts lost on the way. Negative means
	// Prometheus saw more than was served (duplicates, or another sender
	// with the same app_name).
	Missing int64
}

// Report compares a pool's ledger with Prometheus, per series.
type Report struct {
	AppName string
	Started time.Time
	Rows    []Row
	// Served, Seen and Missing add up the rows.
	Served, Seen, Missing int64
}

// OK reports whether every series matches exactly.
func (r Report) OK() bool {
	for _, row := range r.Rows {
		if row.Missing != 0 {
			return false
		}
	}
	return true
}

// Row returns the row of series k (zero if absent).
func (r Report) Row(k Key) Row {
	for _, row := range r.Rows {
		if row.Key == k {
			return row
		}
	}
	return Row{Key: k}
}

// FetchLedger reads a supervisor's admin endpoint (its base URL).
func FetchLedger(ctx context.Context, adminURL string) (Snapshot, error) {
	var s Snapshot
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(adminURL, "/")+LedgerPath, nil)
	if err != nil {
		return s, fmt.Errorf("audit: read ledger: %w", err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return s, fmt.Errorf("audit: read ledger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("audit: read ledger %s: HTTP %d", adminURL, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("audit: read ledger %s: %w", adminURL, err)
	}
	return s, nil
}

// Check reads the ledger at adminURL, then the raw samples in prom, and
// compares them. The ledger is read first: a request served in between is
// then at worst seen but not yet served (negative missing), which Wait rides
// out, never hidden.
func Check(ctx context.Context, prom *Prometheus, adminURL string) (Report, error) {
	snap, err := FetchLedger(ctx, adminURL)
	if err != nil {
		return Report{}, err
	}
	seen, err := prom.Seen(ctx, snap.AppName, snap.Started)
	if err != nil {
		return Report{}, err
	}
	return compare(snap, seen), nil
}

func compare(snap Snapshot, seen map[Key]float64) Report {
	served := snap.Served()
	all := Totals{}
	for k := range served {
		all[k] = 0
	}
	for k := range seen {
		all[k] = 0
	}
	r := Report{AppName: snap.AppName, Started: snap.Started}
	for _, k := range all.Keys() {
		row := Row{Key: k, Served: int64(served[k]), Seen: int64(math.Round(seen[k]))}
		row.Missing = row.Served - row.Seen
		r.Rows = append(r.Rows, row)
		r.Served += row.Served
		r.Seen += row.Seen
		r.Missing += row.Missing
	}
	return r
}

// Wait runs Check until every series matches or timeout has passed, and
// returns the last report. Counts reach Prometheus a flush interval plus a
// scrape interval after the request, so a check right after traffic needs
// a few seconds.
func Wait(ctx context.Context, prom *Prometheus, adminURL string, timeout, every time.Duration) (Report, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := Check(ctx, prom, adminURL)
		if err != nil || r.OK() || !time.Now().Before(deadline) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(every):
		}
	}
}

// Print writes the report as a table, one line per series and a total.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "app_name=%s, pool started %s\n", r.AppName, r.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tendpoint\thttp_status\tserved\tseen by Prometheus\tmissing\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t\n", row.Method, row.Endpoint, row.Status, row.Served, row.Seen, row.Missing)
	}
	fmt.Fprintf(tw, "total\t\t\t%d\t%d\t%d\t\n", r.Served, r.Seen, r.Missing)
	_ = tw.Flush()
}
