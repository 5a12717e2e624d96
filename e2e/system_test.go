//go:build e2e

// Package e2e holds the tests that run whole stacks: the real webapp binary
// (supervisor and workers), the real statsd_exporter and, where a test says
// so, the real Prometheus, on free loopback ports. They run one at a time
// (no t.Parallel): the machines have two cores.
package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/forkwatch/forkwatch/internal/stacktest"
)

// demoCase is one kind of request of the fixed mix and what must come back.
type demoCase struct {
	path     string
	n        int
	status   int
	body     string // exact body, or "" to skip
	location string // for 301s
	endpoint string // the endpoint label it must be counted under
}

var demoMix = []demoCase{
	{path: "/test/", n: 300, status: 200, body: "rest", endpoint: "/test/"},
	{path: "/test1/", n: 200, status: 500, body: "runtime error: integer divide by zero", endpoint: "/test1/"},
	{path: "/test", n: 100, status: 301, location: "/test/", endpoint: "/test"},
	{path: "/test1", n: 100, status: 301, location: "/test1/", endpoint: "/test1"},
	{path: "/no/such/path", n: 100, status: 404, endpoint: "unmatched"},
	{path: "/test/extra", n: 100, status: 404, endpoint: "unmatched"},
}

// TestSystem is the whole system: 5 workers, exporter, Prometheus. It sends
// a fixed mix on fresh connections and requires Prometheus's totals to equal
// what was sent, per series.
func TestSystem(t *testing.T) {
	exporter := stacktest.Exporter(t)
	prom := stacktest.Prometheus(t, exporter.URL)
	app := stacktest.StartApp(t, 5, "-statsd-addr", exporter.StatsdAddr)

	// A fresh connection per request, so the kernel spreads them over the
	// workers; no redirects followed, so 301s are seen and counted as such.
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	sent := 0
	wantPairs := map[[2]string]int{}
	wantLatency := map[string]int{}
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for _, c := range demoMix {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(c demoCase, share int) {
				defer wg.Done()
				for i := 0; i < share; i++ {
					if msg := check(client, app.URL, c); msg != "" {
						mu.Lock()
						failures = append(failures, msg)
						mu.Unlock()
					}
				}
			}(c, c.n/4)
		}
		sent += c.n
		wantPairs[[2]string{c.endpoint, strconv.Itoa(c.status)}] += c.n
		wantLatency[c.endpoint] += c.n
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d responses wrong, first: %s", len(failures), failures[0])
	}

	stacktest.Eventually(t, 60*time.Second, func() (bool, string) {
		got := stacktest.Query(t, prom.URL, "sum(request_count)")
		if len(got) != 1 {
			return false, "no sum(request_count) yet"
		}
		return got[0].Value == float64(sent), fmt.Sprintf("sum(request_count) = %v, sent %d", got[0].Value, sent)
	})
	for _, s := range stacktest.Query(t, prom.URL, "sum by (endpoint, http_status) (request_count)") {
		k := [2]string{s.Labels["endpoint"], s.Labels["http_status"]}
		if want := wantPairs[k]; s.Value != float64(want) {
			t.Errorf("request_count{endpoint=%q, http_status=%q} = %v, want %d", k[0], k[1], s.Value, want)
		}
		delete(wantPairs, k)
	}
	for k, n := range wantPairs {
		t.Errorf("request_count{endpoint=%q, http_status=%q} missing in Prometheus, want %d", k[0], k[1], n)
	}
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		got := stacktest.Query(t, prom.URL, "sum by (endpoint) (request_latency_seconds_count)")
		diff := ""
		for _, s := range got {
			if want := wantLatency[s.Labels["endpoint"]]; s.Value != float64(want) {
				diff += fmt.Sprintf(" %s=%v (want %d)", s.Labels["endpoint"], s.Value, want)
			}
		}
		return diff == "" && len(got) == len(wantLatency), "request_latency_seconds_count:" + diff
	})
	// The method label is there and is GET for all of these.
	if got := stacktest.Query(t, prom.URL, `sum(request_count{method="GET", app_name="webapp"})`); len(got) != 1 || got[0].Value != float64(sent) {
		t.Errorf(`sum(request_count{method="GET", app_name="webapp"}) = %v, want %d`, got, sent)
	}

	// Which workers served: each reports its total when it exits.
	if code := app.StopWithin(t, 20*time.Second); code != 0 {
		t.Errorf("supervisor exit code %d, want 0", code)
	}
	served := handledPerWorker(app.Log())
	busy, total := 0, 0
	for _, n := range served {
		total += n
		if n > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("requests served per worker %v: want more than one worker serving", served)
	}
	if total != sent {
		t.Errorf("workers report %d requests handled, sent %d", total, sent)
	}
	t.Logf("sent %d requests; per worker pid: %v", sent, served)
}

// check sends one request of case c and says what was wrong, or "".
func check(client *http.Client, base string, c demoCase) string {
	resp, err := client.Get(base + c.path)
	if err != nil {
		return fmt.Sprintf("GET %s: %v", c.path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode != c.status:
		return fmt.Sprintf("GET %s: status %d, want %d", c.path, resp.StatusCode, c.status)
	case c.body != "" && string(body) != c.body:
		return fmt.Sprintf("GET %s: body %q, want %q", c.path, body, c.body)
	case c.location != "" && resp.Header.Get("Location") != c.location:
		return fmt.Sprintf("GET %s: Location %q, want %q", c.path, resp.Header.Get("Location"), c.location)
	}
	return ""
}

var exitLine = regexp.MustCompile(`msg="worker exited".* pid=(\d+) .*handled=(\d+)`)

// handledPerWorker reads the supervisor's "worker exited" lines.
func handledPerWorker(log string) map[int]int {
	out := map[int]int{}
	for _, m := range exitLine.FindAllStringSubmatch(log, -1) {
		pid, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		out[pid] = n
	}
	return out
}
