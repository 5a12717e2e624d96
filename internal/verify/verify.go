// Package verify checks served against seen: what a load sent, or what the
// workers served (the supervisor's ledger), against what Prometheus (or one
// exporter) shows, per request_count series.
//
// It is the client side of forkwatch's accounting; the server side, which
// must not link a Prometheus client, is package ledger. `fwctl load`,
// `fwctl verify`, `fwctl audit`, `make bench` and the e2e tests all use it:
// one key type (ledger.Key), one reader of Prometheus, one parser of the
// exporter's text format (client_golang's expfmt), one settle loop, one
// table.
//
// Readings are compared as increases, so earlier traffic (readiness probes,
// curls) never counts; traffic from others during a check does, and shows as
// a difference.
package verify

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/forkwatch/forkwatch/internal/ledger"
	"github.com/forkwatch/forkwatch/statsd"
)

// Key names one request_count series (app_name aside).
type Key = ledger.Key

// Totals are request counts per series.
type Totals = ledger.Totals

// Query is how Prometheus is asked for the totals.
const Query = "sum by (method, endpoint, http_status) (" + statsd.RequestCount + ")"

var httpClient = &http.Client{Timeout: 10 * time.Second}

// ParseMetrics parses a Prometheus text exposition (an exporter's /metrics).
func ParseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("verify: parse metrics: %w", err)
	}
	return fams, nil
}

// Scrape reads and parses the /metrics of the exporter at baseURL.
func Scrape(ctx context.Context, baseURL string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("verify: exporter: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("verify: exporter: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("verify: exporter %s/metrics: %s", baseURL, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// Value is a sample's value, whatever its type (a histogram's or summary's
// is its count).
func Value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	}
	return 0
}

// Labels returns a sample's labels as a map.
func Labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.Label))
	for _, lp := range m.Label {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// Sum adds the values of name's samples whose labels include match.
func Sum(fams map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.Metric {
		l := Labels(m)
		for k, v := range match {
			if l[k] != v {
				continue next
			}
		}
		total += Value(m)
	}
	return total
}

// RequestTotals are the request_count totals in an exposition.
func RequestTotals(fams map[string]*dto.MetricFamily) Totals {
	out := Totals{}
	f := fams[statsd.RequestCount]
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		out[keyOf(Labels(m))] += count(Value(m))
	}
	return out
}

// FromExporter reads the request totals from an exporter's /metrics.
func FromExporter(ctx context.Context, baseURL string) (Totals, error) {
	fams, err := Scrape(ctx, baseURL)
	if err != nil {
		return nil, err
	}
	return RequestTotals(fams), nil
}

func keyOf(l map[string]string) Key {
	var st int
	fmt.Sscan(l["http_status"], &st)
	return Key{Method: l["method"], Endpoint: l["endpoint"], Status: st}
}

// count turns a counter's float value into a count.
func count(v float64) uint64 {
	if v <= 0 {
		return 0
	}
	return uint64(math.Round(v))
}

// Settle reads until two reads quiet apart are equal (the senders have
// flushed what they held), for at most max, and returns the last read and
// whether it settled. It is the one "wait until the numbers stop moving"
// loop of the project.
func Settle[T any](ctx context.Context, read func(context.Context) (T, error), equal func(a, b T) bool, quiet, max time.Duration) (T, bool, error) {
	deadline := time.Now().Add(max)
	last, err := read(ctx)
	if err != nil {
		return last, false, err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return last, false, ctx.Err()
		case <-time.After(quiet):
		}
		now, err := read(ctx)
		if err != nil {
			return now, false, err
		}
		if equal(last, now) {
			return now, true, nil
		}
		last = now
	}
	return last, false, nil
}

// Equal reports whether two Totals hold the same counts.
func Equal(a, b Totals) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
