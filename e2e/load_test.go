package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"forkwatch/internal/stacktest"
)

// loadResult counts what a load run got back.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   string
	byStatus   map[int]int64
}

func (r *loadResult) String() string {
	return fmt.Sprintf("%d ok, %d failed (first failure: %s)", r.ok.Load(), r.failed.Load(), r.firstErr)
}

// runLoad sends GET url from conc keep-alive clients until ctx is done or
// max requests have been sent, like hey does. It returns once all clients
// have finished their last request.
func runLoad(ctx context.Context, url string, conc int, max int64) *loadResult {
	r := &loadResult{byStatus: map[int]int64{}}
	tr := &http.Transport{MaxIdleConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && sent.Add(1) <= max {
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				r.mu.Lock()
				if err != nil || resp.StatusCode >= 300 {
					r.failed.Add(1)
					if r.firstErr == "" {
						if err != nil {
							r.firstErr = err.Error()
						} else {
							r.firstErr = resp.Status
						}
					}
				} else {
					r.ok.Add(1)
				}
				if err == nil {
					r.byStatus[resp.StatusCode]++
				}
				r.mu.Unlock()
			}
		}()
	}
	wg.Wait()
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
			fams := stacktest.Scrape(t, exporterURL)
			w.mu.Lock()
			w.scrapes++
			for _, name := range []string{"request_count", "request_latency_seconds_count"} {
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
	prev, stableSince := -1.0, time.Now()
	var v float64
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		v = stacktest.Sum(stacktest.Scrape(t, exporterURL), name, match)
		if v != prev {
			prev, stableSince = v, time.Now()
		}
		return time.Since(stableSince) >= time.Second, fmt.Sprintf("%s still changing: %v", name, v)
	})
	return v
}
