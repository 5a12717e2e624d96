// Package tally checks a load against Prometheus. It reads request totals
// per endpoint and http_status (from the exporter's /metrics or from the
// Prometheus HTTP API), keeps the record of a load (the totals before it and
// what it sent) in a JSON file, and compares the increase Prometheus saw with
// what the load sent.
//
// The baseline makes the check immune to earlier traffic: only the increase
// since the load started is compared, so readiness probes and earlier curls
// do not count. Traffic from others during the load does, and shows as a
// difference.
package tally

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric is the counter compared; Query is how Prometheus is asked for it.
const (
	Metric = "request_count"
	Query  = "sum by (endpoint, http_status) (" + Metric + ")"
)

// DefaultRecordPath is where `webapp load` saves its record and `webapp
// verify` reads it, relative to the working directory (the project root
// under make).
const DefaultRecordPath = ".run/last-load.json"

// ErrNoRecord is returned by Load when no load has been recorded yet.
var ErrNoRecord = errors.New("tally: no load recorded")

// Key names one series of the comparison.
type Key struct {
	Endpoint string `json:"endpoint"`
	Status   string `json:"http_status"`
}

// Totals are request counts per endpoint and status.
type Totals map[Key]float64

// Sum adds all totals.
func (t Totals) Sum() float64 {
	s := 0.0
	for _, v := range t {
		s += v
	}
	return s
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// ParseExporter sums Metric's samples per endpoint and http_status from a
// Prometheus text exposition.
func ParseExporter(r io.Reader) (Totals, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("tally: parse metrics: %w", err)
	}
	out := Totals{}
	f := fams[Metric]
	if f == nil {
		return out, nil
	}
	for _, m := range f.Metric {
		var k Key
		for _, lp := range m.Label {
			switch lp.GetName() {
			case "endpoint":
				k.Endpoint = lp.GetValue()
			case "http_status":
				k.Status = lp.GetValue()
			}
		}
		switch {
		case m.Counter != nil:
			out[k] += m.Counter.GetValue()
		case m.Untyped != nil:
			out[k] += m.Untyped.GetValue()
		}
	}
	return out, nil
}

// FromExporter reads the totals from an exporter's /metrics at baseURL.
func FromExporter(ctx context.Context, baseURL string) (Totals, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("tally: exporter: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tally: exporter: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tally: exporter %s/metrics: %s", baseURL, resp.Status)
	}
	return ParseExporter(resp.Body)
}

// FromPrometheus runs Query against the Prometheus HTTP API at baseURL.
func FromPrometheus(ctx context.Context, baseURL string) (Totals, error) {
	samples, err := query(ctx, baseURL, Query)
	if err != nil {
		return nil, err
	}
	out := Totals{}
	for _, s := range samples {
		out[Key{s.metric["endpoint"], s.metric["http_status"]}] += s.value
	}
	return out, nil
}

// LastScrape returns the time of the oldest of the latest scrapes of the
// exporters Prometheus has Metric from: once it is past a moment, every
// exporter's counts from before that moment are in Prometheus. ok is false
// when Prometheus has no such series.
func LastScrape(ctx context.Context, baseURL string) (t time.Time, ok bool, err error) {
	samples, err := query(ctx, baseURL, "min(max by (instance) (timestamp("+Metric+")))")
	if err != nil || len(samples) == 0 {
		return time.Time{}, false, err
	}
	sec := samples[0].value
	return time.Unix(0, int64(sec*1e9)), true, nil
}

type sample struct {
	metric map[string]string
	value  float64
}

// query runs an instant query whose result is a vector.
func query(ctx context.Context, baseURL, expr string) ([]sample, error) {
	c, err := api.NewClient(api.Config{Address: baseURL, Client: httpClient})
	if err != nil {
		return nil, fmt.Errorf("tally: prometheus: %w", err)
	}
	v, _, err := promv1.NewAPI(c).Query(ctx, expr, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("tally: prometheus query %q at %s: %w", expr, baseURL, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("tally: prometheus query %q: result is a %s, want a vector", expr, v.Type())
	}
	out := make([]sample, 0, len(vec))
	for _, s := range vec {
		m := make(map[string]string, len(s.Metric))
		for k, v := range s.Metric {
			m[string(k)] = string(v)
		}
		out = append(out, sample{m, float64(s.Value)})
	}
	return out, nil
}

// Settle reads totals until two reads quiet apart agree (the senders have
// flushed what they held), for at most max. It returns the last read and
// whether it settled.
func Settle(ctx context.Context, read func(context.Context) (Totals, error), quiet, max time.Duration) (Totals, bool, error) {
	deadline := time.Now().Add(max)
	last, err := read(ctx)
	if err != nil {
		return nil, false, err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return last, false, ctx.Err()
		case <-time.After(quiet):
		}
		now, err := read(ctx)
		if err != nil {
			return nil, false, err
		}
		if equal(last, now) {
			return now, true, nil
		}
		last = now
	}
	return last, false, nil
}

func equal(a, b Totals) bool {
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

// Count is one series and its value, the JSON form of Totals.
type Count struct {
	Key
	Value float64 `json:"value"`
}

// Sent is one line of what a load sent: the path requested, the endpoint
// label the server counts it under, the status it got and how many.
type Sent struct {
	Path     string `json:"path"`
	Endpoint string `json:"endpoint"`
	Status   int    `json:"http_status"`
	Count    int    `json:"count"`
}

// Record is what `webapp load` saves and `webapp verify` checks.
type Record struct {
	// Started and Finished bound the load.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// URL is the app the load was sent to; Mix the mix of paths.
	URL string `json:"url"`
	Mix string `json:"mix"`
	// BaselineSource says where Baseline was read: the exporter's URL, or
	// Prometheus's.
	BaselineSource string `json:"baseline_source"`
	// Baseline are the totals just before the load.
	Baseline []Count `json:"baseline"`
	// Sent is what the load sent, by path and status (status 0: no answer).
	Sent []Sent `json:"sent"`
	// Errors counts requests that got no answer; the server may or may not
	// have counted them, so a record with errors cannot verify exactly.
	Errors int `json:"errors"`
}

// SetBaseline stores t as the record's baseline.
func (r *Record) SetBaseline(t Totals) { r.Baseline = counts(t) }

// BaselineTotals returns the baseline as Totals.
func (r *Record) BaselineTotals() Totals {
	out := Totals{}
	for _, c := range r.Baseline {
		out[c.Key] += c.Value
	}
	return out
}

// SentTotals returns what was sent per endpoint and status; requests without
// an answer are left out (they are Errors).
func (r *Record) SentTotals() Totals {
	out := Totals{}
	for _, s := range r.Sent {
		if s.Status != 0 {
			out[Key{s.Endpoint, strconv.Itoa(s.Status)}] += float64(s.Count)
		}
	}
	return out
}

func counts(t Totals) []Count {
	out := make([]Count, 0, len(t))
	for k, v := range t {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].Key, out[j].Key) })
	return out
}

func less(a, b Key) bool {
	if a.Endpoint != b.Endpoint {
		return a.Endpoint < b.Endpoint
	}
	return a.Status < b.Status
}

// Save writes the record to path, creating its directory.
func (r *Record) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("tally: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("tally: save record: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("tally: save record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tally: save record: %w", err)
	}
	return nil
}

// Load reads a record saved by Save.
func Load(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: run `webapp load` (make load) first", ErrNoRecord, path)
	}
	if err != nil {
		return nil, fmt.Errorf("tally: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("tally: record %s: %w", path, err)
	}
	return &r, nil
}

// Line is one row of a comparison.
type Line struct {
	Key
	// Before is the baseline, Now what Prometheus has now, Sent what the
	// load sent.
	Before, Now, Sent float64
}

// Seen is the increase since the baseline.
func (l Line) Seen() float64 { return l.Now - l.Before }

// Diff is the increase minus what was sent: 0 when they agree.
func (l Line) Diff() float64 { return l.Seen() - l.Sent }

// Compare lines up every series that was sent or that changed since the
// baseline, sorted by endpoint and status.
func Compare(r *Record, now Totals) []Line {
	before, sent := r.BaselineTotals(), r.SentTotals()
	keys := map[Key]bool{}
	for k := range sent {
		keys[k] = true
	}
	for k, v := range now {
		if v != before[k] {
			keys[k] = true
		}
	}
	for k := range before {
		if _, ok := now[k]; !ok {
			keys[k] = true // a series that vanished: a reset
		}
	}
	out := make([]Line, 0, len(keys))
	for k := range keys {
		out = append(out, Line{Key: k, Before: before[k], Now: now[k], Sent: sent[k]})
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].Key, out[j].Key) })
	return out
}

// Differences counts the lines that disagree.
func Differences(lines []Line) int {
	n := 0
	for _, l := range lines {
		if l.Diff() != 0 {
			n++
		}
	}
	return n
}
