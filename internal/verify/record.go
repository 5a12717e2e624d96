package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// DefaultRecordPath is where `fwctl load` saves its record and `webapp
// verify` reads it, relative to the working directory (the project root
// under make).
const DefaultRecordPath = ".run/last-load.json"

// ErrNoRecord is returned by Load when no load has been recorded yet.
var ErrNoRecord = errors.New("verify: no load recorded")

// Count is one series and its value, the JSON form of Totals.
type Count struct {
	Key
	Value uint64 `json:"value"`
}

// Sent is one line of what a load sent: the path requested, the endpoint
// label the server counts it under, the status it got and how many.
type Sent struct {
	Path     string `json:"path"`
	Endpoint string `json:"endpoint"`
	Status   int    `json:"http_status"`
	Count    int    `json:"count"`
}

// LoadMethod is the method of every request a load sends.
const LoadMethod = "GET"

// Record is what `fwctl load` saves and `fwctl verify` checks.
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
func (r *Record) SetBaseline(t Totals) {
	r.Baseline = make([]Count, 0, len(t))
	for _, k := range t.Keys() {
		r.Baseline = append(r.Baseline, Count{k, t[k]})
	}
}

// BaselineTotals returns the baseline as Totals.
func (r *Record) BaselineTotals() Totals {
	out := Totals{}
	for _, c := range r.Baseline {
		out[c.Key] += c.Value
	}
	return out
}

// SentTotals returns what was sent per series; requests without an answer
// are left out (they are Errors).
func (r *Record) SentTotals() Totals {
	out := Totals{}
	for _, s := range r.Sent {
		if s.Status != 0 {
			out[Key{Method: LoadMethod, Endpoint: s.Endpoint, Status: s.Status}] += uint64(s.Count)
		}
	}
	return out
}

// Save writes the record to path atomically, creating its directory.
func (r *Record) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("verify: save record: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("verify: save record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("verify: save record: %w", err)
	}
	return nil
}

// Load reads a record saved by Save.
func Load(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: run `fwctl load` (make load) first", ErrNoRecord, path)
	}
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("verify: record %s: %w", path, err)
	}
	return &r, nil
}

// CompareLoad lines up every series the load sent or that changed since the
// baseline: expected is what was sent, seen is now minus the baseline.
func CompareLoad(r *Record, now Totals) Report {
	before, sent := r.BaselineTotals(), r.SentTotals()
	seen := map[Key]int64{}
	for k, v := range now {
		if d := int64(v) - int64(before[k]); d != 0 {
			seen[k] = d
		}
	}
	for k, v := range before {
		if _, ok := now[k]; !ok {
			seen[k] = -int64(v) // a series that vanished: a reset
		}
	}
	return compare("load sent", sent, seen)
}

func sortRows(rows []Row) {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key.Less(rows[j].Key) })
}
