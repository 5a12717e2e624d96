//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/loadgen"
	"github.com/forkwatch/forkwatch/internal/stacktest"
	"github.com/forkwatch/forkwatch/internal/verify"
)

// loadResult counts what a load run got back.
type loadResult struct {
	ok, failed int64
	firstErr   string
	byStatus   map[int]int64
}

func (r *loadResult) String() string {
	return fmt.Sprintf("%d ok, %d failed (first failure: %s)", r.ok, r.failed, r.firstErr)
}

// runLoad sends GET target from conc keep-alive clients until ctx is done
// or max requests have been sent, through the project's one load generator.
// A request reset by a dying worker is tried again, like Go's http.Transport
// does (the kill tests count what the clients finally got); a 3xx or higher
// counts as failed.
func runLoad(ctx context.Context, target string, conc int, max int64) *loadResult {
	u, err := url.Parse(target)
	if err != nil {
		return &loadResult{failed: 1, firstErr: err.Error()}
	}
	res, err := loadgen.Run(ctx, loadgen.Options{
		URL: u.Scheme + "://" + u.Host, Mix: loadgen.Mix{{Path: u.Path, Weight: 1}},
		Requests: int(min(max, loadgen.MaxRequests)), Duration: loadgen.MaxDuration,
		Concurrency: conc, Attempts: 5,
	})
	if err != nil {
		return &loadResult{failed: 1, firstErr: err.Error()}
	}
	r := &loadResult{byStatus: map[int]int64{}, firstErr: res.FirstError}
	for k, n := range res.Counts {
		switch {
		case k.Status == 0:
			r.failed += int64(n)
		case k.Status >= 300:
			r.failed += int64(n)
			r.byStatus[k.Status] += int64(n)
			if r.firstErr == "" {
				r.firstErr = fmt.Sprintf("HTTP %d", k.Status)
			}
		default:
			r.ok += int64(n)
			r.byStatus[k.Status] += int64(n)
		}
	}
	return r
}

// startLoad runs runLoad in the background; wait returns its result.
func startLoad(ctx context.Context, url string, conc int, max int64) (wait func() *loadResult) {
	done := make(chan *loadResult, 1)
	go func() { done <- runLoad(ctx, url, conc, max) }()
	return func() *loadResult { return <-done }
}

// counterWatch scrapes the exporter every interval and records any series
// of request_count whose value went down between two scrapes.
type counterWatch struct {
	mu        sync.Mutex
	last      map[string]float64
	decreases []string
	scrapes   int
	stop      chan struct{}
	done      chan struct{}
}

func watchCounters(t *testing.T, exporterURL string) *counterWatch {
	t.Helper()
	w := &counterWatch{last: map[string]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			// Not stacktest.Scrape: t.Fatal must not be called from
			// this goroutine. A failed scrape is just skipped.
			fams, err := verify.Scrape(context.Background(), exporterURL)
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.scrapes++
			for _, name := range []string{"request_count", "request_latency_seconds"} {
				for _, s := range stacktest.Samples(fams, name) {
					key := name + fmt.Sprint(s.Labels)
					if prev, ok := w.last[key]; ok && s.Value < prev {
						w.decreases = append(w.decreases, fmt.Sprintf("%s: %v -> %v", key, prev, s.Value))
					}
					w.last[key] = s.Value
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.end)
	return w
}

// end stops watching and returns the decreases seen and the scrape count.
func (w *counterWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *counterWatch) result() ([]string, int) {
	w.end()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.decreases, w.scrapes
}

// settledSum waits until the exporter's sum of name over match stops
// changing for a second (workers flush every 200ms) and returns it.
func settledSum(t *testing.T, exporterURL, name string, match map[string]string) float64 {
	t.Helper()
	read := func(ctx context.Context) (float64, error) {
		fams, err := verify.Scrape(ctx, exporterURL)
		return verify.Sum(fams, name, match), err
	}
	v, ok, err := verify.Settle(context.Background(), read, func(a, b float64) bool { return a == b }, time.Second, 30*time.Second)
	if err != nil || !ok {
		t.Fatalf("%s did not settle within 30s (last %v): %v", name, v, err)
	}
	return v
}
