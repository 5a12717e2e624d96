package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/forkwatch/forkwatch/internal/ledger"
)

// Row is one series of a Report.
type Row struct {
	Key
	// Expected is what should have been counted (what a load sent, or what
	// the workers served); Seen what Prometheus saw.
	Expected, Seen int64
}

// Diff is Seen - Expected: negative means counts lost on the way, positive
// more seen than expected (duplicates, or other traffic).
func (r Row) Diff() int64 { return r.Seen - r.Expected }

// Report compares expected with seen, per series.
type Report struct {
	// Expected names the expected column ("load sent", "workers served").
	Expected string
	Rows     []Row
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

// Totals adds up the rows.
func (r Report) Totals() (expected, seen int64) {
	for _, row := range r.Rows {
		expected += row.Expected
		seen += row.Seen
	}
	return expected, seen
}

// Differences counts the rows that disagree.
func (r Report) Differences() int {
	n := 0
	for _, row := range r.Rows {
		if row.Diff() != 0 {
			n++
		}
	}
	return n
}

// Missing reports whether any series saw less than expected.
func (r Report) Missing() bool {
	for _, row := range r.Rows {
		if row.Diff() < 0 {
			return true
		}
	}
	return false
}

// OK reports whether every series matches exactly.
func (r Report) OK() bool { return r.Differences() == 0 }

func compare(label string, expected Totals, seen map[Key]int64) Report {
	keys := map[Key]bool{}
	for k := range expected {
		keys[k] = true
	}
	for k := range seen {
		keys[k] = true
	}
	r := Report{Expected: label}
	for k := range keys {
		r.Rows = append(r.Rows, Row{Key: k, Expected: int64(expected[k]), Seen: seen[k]})
	}
	sortRows(r.Rows)
	return r
}

// Print writes the report as an aligned table with a total row; rows that
// disagree are marked.
func (r Report) Print(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "method\tendpoint\thttp_status\t%s\tPrometheus saw\tdifference\t\n", r.Expected)
	for _, row := range r.Rows {
		mark := ""
		if row.Diff() != 0 {
			mark = "<- differs"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", row.Method, row.Endpoint, row.Status, row.Expected, row.Seen, signed(row.Diff()), mark)
	}
	e, s := r.Totals()
	fmt.Fprintf(tw, "total\t\t\t%d\t%d\t%s\t\n", e, s, signed(s-e))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+strings.Repeat("\n", strings.Count(line, "\n"))); err != nil {
			return err
		}
	}
	return nil
}

func signed(v int64) string {
	if v > 0 {
		return "+" + strconv.FormatInt(v, 10)
	}
	return strconv.FormatInt(v, 10)
}

// FetchLedger reads a supervisor's ledger from its admin endpoint (base URL).
func FetchLedger(ctx context.Context, adminURL string) (ledger.Snapshot, error) {
	var s ledger.Snapshot
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(adminURL, "/")+ledger.Path, nil)
	if err != nil {
		return s, fmt.Errorf("verify: read ledger: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("verify: read ledger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("verify: read ledger %s: HTTP %d", adminURL, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("verify: read ledger %s: %w", adminURL, err)
	}
	return s, nil
}

// Audit reads the ledger at adminURL, then the raw samples in prom since the
// pool started, and compares them. The ledger is read first: a request
// served in between is then at worst seen but not yet served (a positive
// difference), which WaitAudit rides out, never hidden.
func Audit(ctx context.Context, prom *Prometheus, adminURL string) (Report, ledger.Snapshot, error) {
	snap, err := FetchLedger(ctx, adminURL)
	if err != nil {
		return Report{}, snap, err
	}
	seen, err := prom.Seen(ctx, snap.AppName, snap.Started)
	if err != nil {
		return Report{}, snap, err
	}
	return CompareServed(snap.Served(), seen), snap, nil
}

// CompareServed compares what workers served with what Prometheus saw.
func CompareServed(served, seen Totals) Report {
	s := make(map[Key]int64, len(seen))
	for k, v := range seen {
		s[k] = int64(v)
	}
	return compare("workers served", served, s)
}

// WaitAudit runs Audit until every series matches or timeout has passed,
// and returns the last report. Counts reach Prometheus a flush interval plus
// a scrape interval after the request, so an audit right after traffic
// needs a few seconds.
func WaitAudit(ctx context.Context, prom *Prometheus, adminURL string, timeout, every time.Duration) (Report, ledger.Snapshot, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, snap, err := Audit(ctx, prom, adminURL)
		if err != nil || r.OK() || !time.Now().Before(deadline) {
			return r, snap, err
		}
		select {
		case <-ctx.Done():
			return r, snap, ctx.Err()
		case <-time.After(every):
		}
	}
}
