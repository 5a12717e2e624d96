//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/forkwatch/forkwatch/internal/loadgen"
	"github.com/forkwatch/forkwatch/internal/stacktest"
	"github.com/forkwatch/forkwatch/internal/verify"
)

// loadResult counts what a load run got back.
type loadResult struct {
	ok, failed int64
	firstErr   string
	byStatus   map[int]int64
	// p99 is the 99th percentile latency of the answered requests.
	p99 time.Duration
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
	return runPacedLoad(ctx, target, conc, 0, max)
}

// runPacedLoad is runLoad at rate requests per second in total (0: as
// fast as the clients go), for faults whose measure is the latency of a
// load the machine can carry, or whose count must stay below a bound.
func runPacedLoad(ctx context.Context, target string, conc int, rate float64, max int64) *loadResult {
	u, err := url.Parse(target)
	if err != nil {
		return &loadResult{failed: 1, firstErr: err.Error()}
	}
	res, err := loadgen.Run(ctx, loadgen.Options{
		URL: u.Scheme + "://" + u.Host, Mix: loadgen.Mix{{Path: u.Path, Weight: 1}},
		Requests: int(min(max, loadgen.MaxRequests)), Duration: loadgen.MaxDuration,
		Concurrency: conc, Attempts: 5, Rate: rate, Latencies: true,
	})
	if err != nil {
		return &loadResult{failed: 1, firstErr: err.Error()}
	}
	r := &loadResult{byStatus: map[int]int64{}, firstErr: res.FirstError, p99: res.Percentile(0.99)}
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

// plus returns r and o together: the phases of one fault's load.
func (r *loadResult) plus(o *loadResult) *loadResult {
	sum := &loadResult{ok: r.ok + o.ok, failed: r.failed + o.failed, firstErr: r.firstErr,
		byStatus: map[int]int64{}, p99: max(r.p99, o.p99)}
	if sum.firstErr == "" {
		sum.firstErr = o.firstErr
	}
	for _, m := range []map[int]int64{r.byStatus, o.byStatus} {
		for k, v := range m {
			sum.byStatus[k] += v
		}
	}
	return sum
}

// startLoad runs runLoad in the background; wait returns its result.
func startLoad(ctx context.Context, url string, conc int, max int64) (wait func() *loadResult) {
	return startPacedLoad(ctx, url, conc, 0, max)
}

// startPacedLoad runs runPacedLoad in the background; wait returns its result.
func startPacedLoad(ctx context.Context, url string, conc int, rate float64, max int64) (wait func() *loadResult) {
	done := make(chan *loadResult, 1)
	go func() { done <- runPacedLoad(ctx, url, conc, rate, max) }()
	return func() *loadResult { return <-done }
}

// faultRow logs one row of docs/faults.md's table (the "fault:" line) and
// checks it is exact: every answer the clients got is counted (0 lost), at
// most the inFlight requests that were counted, reset before their answer
// went out and retried by the client are counted twice, and the latency
// histogram counts every counted request.
func faultRow(t *testing.T, fault string, res *loadResult, counted, latency float64, inFlight int) {
	t.Helper()
	ok, failed := float64(res.ok), float64(res.failed)
	t.Logf("fault: %s: sent %v, answered OK %v, counted %v, latency count %v, lost %v, duplicated %v",
		fault, ok+failed, ok, counted, latency, max(0, ok-counted), max(0, counted-ok))
	if counted < ok || counted > ok+float64(inFlight) {
		t.Errorf("clients got %v answers (%v failed: %s), exporter counted %v: want every answer counted, at most the %d in flight twice",
			ok, failed, res.firstErr, counted, inFlight)
	}
	if latency != counted {
		t.Errorf("latency count %v != request count %v", latency, counted)
	}
}

// counterWatch scrapes the exporter every interval and records any series
// of request_count whose value went down between two scrapes.
type counterWatch struct {
	mu        sync.Mutex
	last      map[string]float64
	decreases []string
	scrapes   int
	lastFams  map[string]*dto.MetricFamily
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
			w.lastFams = fams
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

// lastSum is the sum of name over match in the last successful scrape: the
// exporter's final count once it is gone (read it after end).
func (w *counterWatch) lastSum(name string, match map[string]string) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return verify.Sum(w.lastFams, name, match)
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
