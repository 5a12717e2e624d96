//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/forkwatch/forkwatch/internal/stacktest"
	"github.com/forkwatch/forkwatch/statsd"
)

// The fixed label sets of request_count for the demo app: whatever a client
// sends, a label value outside these is a bug.
var (
	allowedMethods   = set("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "OTHER")
	allowedEndpoints = set("/test/", "/test1/", "/test", "/test1", "unmatched")
	allowedStatuses  = set("200", "301", "400", "404", "408", "413", "431", "500")
	requestKeys      = "app_name,endpoint,http_status,method"
)

// maxFloodSeries bounds request_count's series after a flood: each method
// label on each of the demo app's five endpoint/status pairs (/test/ 200,
// /test1/ 500, /test 301, /test1 301, unmatched 404), plus one series per
// rejection status (method OTHER, endpoint unmatched: 400, 408, 413, 431).
var maxFloodSeries = len(allowedMethods)*5 + 4

func set(vs ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// statusLine finds each response in what a connection returned, pipelined
// ones included (a response follows the previous body directly, so not only
// at line starts). No body the demo app sends contains it.
var statusLine = regexp.MustCompile(`HTTP/1\.1 (\d{3}) `)

// exchange sends req on a new connection, half-closes, and reads until the
// server closes. It returns the status of every response that came back.
func exchange(addr string, req []byte) ([]string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(req); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(io.LimitReader(c, 1<<20))
	var statuses []string
	for _, m := range statusLine.FindAllSubmatch(got, -1) {
		statuses = append(statuses, string(m[1]))
	}
	return statuses, err
}

// hostileRequest makes one request of the flood: valid routes, random
// methods and paths (separators, percent-encodings, non-UTF-8, control
// bytes), huge paths, garbage bytes, broken headers and bodies.
func hostileRequest(r *rand.Rand) []byte {
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT",
		"get", "BREW", "G\xc3\x89T", strings.Repeat("X", 40), "GE|T", "M:#,", "\x00", "PRI"}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789%/._-~:|#,@\"\\{}?&=+ \t\x00\x01\x7f\x80\xc3\xff\xfe"
	randBytes := func(n int, from string) string {
		b := make([]byte, n)
		for i := range b {
			if from == "" {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = from[r.IntN(len(from))]
			}
		}
		return string(b)
	}
	method := methods[r.IntN(len(methods))]
	tail := " HTTP/1.1\r\nHost: x\r\n\r\n"
	switch k := r.IntN(100); {
	case k < 10:
		return []byte(method + " " + []string{"/test/", "/test1/", "/test", "/test1", "/test/?a=|#,:"}[r.IntN(5)] + tail)
	case k < 55:
		path := "/" + randBytes(1+r.IntN(60), alphabet)
		if r.IntN(7) == 0 {
			path += "\xff\xfe%00%0a%7c%23%2c%3a"
		}
		return []byte(method + " " + path + tail)
	case k < 62:
		return []byte(method + " /" + randBytes(1000+r.IntN(12000), alphabet[:40]) + tail) // 8 KiB limit: some 431
	case k < 77:
		g := randBytes(1+r.IntN(300), "")
		if r.IntN(2) == 0 {
			g += "\r\n\r\n"
		}
		return []byte(g)
	case k < 90:
		hdr := []string{"X-" + randBytes(5, "") + ": v", "NoColon", ": empty", "X-Bad: \x00\xff", "Content-Length: -1",
			"Content-Length: 1, 2", "Transfer-Encoding: zip", " folded: x", "Host: second"}[r.IntN(9)]
		return []byte(method + " /test/ HTTP/1.1\r\nHost: x\r\n" + hdr + "\r\n\r\n")
	default:
		switch r.IntN(4) {
		case 0: // says more than it sends: a truncated body
			return []byte("POST /test/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + randBytes(10, ""))
		case 1: // over the 1 MiB body limit by its word alone: 413
			return []byte("POST /test/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc")
		case 2:
			return []byte("POST /test/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + randBytes(20, "") + "\r\n0\r\n\r\n")
		default: // sends more than it says: the rest is parsed as a next request
			return []byte("POST /test1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab" + randBytes(20, alphabet) + "\r\n\r\n")
		}
	}
}

// TestHostileFlood: 10,000 hostile requests on raw TCP connections. Every
// response a client received is counted in the exporter under its status,
// nothing else is, and request_count stays within a few series whose labels
// all come from the fixed sets.
func TestHostileFlood(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr)

	const n, conc = 10000, 8
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var mu sync.Mutex
	received := map[string]int{}
	var silent, errs int
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := g; i < n; i += conc {
				req := hostileRequest(r)
				statuses, err := exchange(app.Addr, req)
				mu.Lock()
				for _, s := range statuses {
					received[s]++
				}
				if len(statuses) == 0 {
					silent++
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = fmt.Errorf("request %q: %w", req[:min(len(req), 60)], err)
					}
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for _, c := range received {
		total += c
	}
	t.Logf("%d requests in %v: %d responses %v, %d connections without a response, %d client errors", n, elapsed.Round(time.Millisecond), total, received, silent, errs)
	if errs > 0 {
		t.Errorf("%d client errors, first: %v", errs, firstErr)
	}
	if total < n*8/10 {
		t.Fatalf("only %d responses to %d requests", total, n)
	}

	// The workers' own totals, reported when they exit, are what was
	// recorded: once the exporter has that many, nothing more can come.
	app.StopWithin(t, 30*time.Second)
	handled := 0
	for _, h := range handledPerWorker(app.Log()) {
		handled += h
	}
	if handled != total {
		t.Errorf("workers recorded %d requests, clients received %d responses", handled, total)
	}
	var fams map[string]*dto.MetricFamily
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		// Counts and latency samples of the last flush can reach the
		// exporter's event queue in different batches: wait for both.
		fams = stacktest.Scrape(t, exporter.URL)
		got := stacktest.Sum(fams, "request_count", nil)
		lat := stacktest.Sum(fams, "request_latency_seconds", nil)
		return got == float64(handled) && lat == float64(handled),
			fmt.Sprintf("sum(request_count) = %v, latency count %v, workers recorded %d", got, lat, handled)
	})
	for s, c := range received {
		if got := stacktest.Sum(fams, "request_count", map[string]string{"http_status": s}); got != float64(c) {
			t.Errorf("request_count{http_status=%q} = %v, clients received %d", s, got, c)
		}
	}
	if got := stacktest.Sum(fams, "request_latency_seconds", nil); got != float64(total) {
		t.Errorf("request_latency_seconds_count = %v, want %d", got, total)
	}
	series := stacktest.Samples(fams, "request_count")
	if len(series) > maxFloodSeries {
		t.Errorf("%d request_count series, want at most %d", len(series), maxFloodSeries)
	}
	checkLabels(t, series)
	checkFamilies(t, fams)
	t.Logf("%d request_count series after the flood", len(series))
}

// checkLabels requires every series to have exactly the contract's label
// keys with values from the fixed sets.
func checkLabels(t *testing.T, series []stacktest.Series) {
	t.Helper()
	for _, s := range series {
		var keys []string
		for k := range s.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		l := s.Labels
		if strings.Join(keys, ",") != requestKeys || l["app_name"] != "webapp" || !allowedMethods[l["method"]] ||
			!allowedEndpoints[l["endpoint"]] || !allowedStatuses[l["http_status"]] {
			t.Errorf("request_count series %v outside the fixed label sets", l)
		}
	}
}

// checkFamilies requires the exporter to expose forkwatch's metrics and its
// own, nothing else.
func checkFamilies(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	ours := set(statsd.RequestCount, statsd.RequestLatency, statsd.Workers, statsd.WorkerRestarts+"_total",
		statsd.WorkersConfigured, statsd.WorkersBusy, statsd.BuildInfo)
	for name := range fams {
		if !ours[name] && !exporterOwn(name) {
			t.Errorf("exporter exposes %s, which forkwatch does not send", name)
		}
	}
}

// exporterOwn tells the exporter's metrics about itself by their prefixes.
func exporterOwn(name string) bool {
	for _, p := range []string{"statsd_exporter_", "statsd_metric_mapper_", "go_", "process_", "promhttp_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// TestRejectionCounts: malformed requests get 400, oversize bodies 413 and
// oversize headers 431, each received by the client (also when it sends far
// more than the socket buffers hold before reading) and each counted in the
// exporter under endpoint unmatched.
func TestRejectionCounts(t *testing.T) {
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 2, "-statsd-addr", exporter.StatsdAddr, "-max-header-bytes", "4096", "-max-body-bytes", "4096")
	big := strings.Repeat("a", 8<<20)
	cases := []struct {
		name   string
		req    string
		n      int
		status string
	}{
		{"no Host", "GET /test/ HTTP/1.1\r\n\r\n", 40, "400"},
		{"bad Content-Length", "GET /test/ HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 40, "400"},
		{"no version", "GET /test/\r\nHost: x\r\n\r\n", 40, "400"},
		{"binary", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 40, "400"},
		{"body 5 kB", "POST /test/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + big[:5000], 40, "413"},
		{"body claimed 1 GB", "POST /test/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nabc", 40, "413"},
		{"body 8 MB", "POST /test/ HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, 3, "413"},
		{"header 5 kB", "GET /test/ HTTP/1.1\r\nHost: x\r\nX-Big: " + big[:5000] + "\r\n\r\n", 40, "431"},
		{"header 200 kB", "GET /test/ HTTP/1.1\r\nHost: x\r\nX-Big: " + big[:200000] + "\r\n\r\n", 20, "431"},
		{"header 8 MB", "GET /test/ HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 3, "431"},
	}
	want := map[string]int{}
	for _, tc := range cases {
		for i := 0; i < tc.n; i++ {
			statuses, err := exchange(app.Addr, []byte(tc.req))
			if err != nil || len(statuses) != 1 || statuses[0] != tc.status {
				t.Fatalf("%s, request %d: got %v, %v; want %s", tc.name, i, statuses, err, tc.status)
			}
		}
		want[tc.status] += tc.n
	}
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		fams := stacktest.Scrape(t, exporter.URL)
		diff := ""
		for s, n := range want {
			if got := stacktest.Sum(fams, "request_count", map[string]string{"endpoint": "unmatched", "http_status": s}); got != float64(n) {
				diff += fmt.Sprintf(" %s: %v (want %d)", s, got, n)
			}
		}
		if got, all := stacktest.Sum(fams, "request_count", nil), len(cases); diff == "" && got != float64(want["400"]+want["413"]+want["431"]) {
			diff = fmt.Sprintf(" total %v over %d cases", got, all)
		}
		return diff == "", "request_count{endpoint=unmatched}:" + diff
	})
}

// TestSlowloris: 100 clients that send one header byte per second each hold
// a connection to a single worker limited to 150. Normal requests are served
// meanwhile at normal latency; every slow client is cut off at -read-timeout
// with a 408 that is counted; and the slots come back: a second wave of 100
// (more than the 50 left if the first still held theirs) is served and cut
// off the same way, not refused with 503.
func TestSlowloris(t *testing.T) {
	const readTimeout = 2 * time.Second
	const slow = 100
	exporter := stacktest.Exporter(t)
	app := stacktest.StartApp(t, 1, "-statsd-addr", exporter.StatsdAddr,
		"-read-timeout", readTimeout.String(), "-max-conns", "150")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(app.URL + "/test/")
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}
	var baseline []time.Duration
	for i := 0; i < 50; i++ {
		d, err := get()
		if err != nil {
			t.Fatalf("baseline request: %v", err)
		}
		baseline = append(baseline, d)
	}
	normal := len(baseline)
	for wave := 1; wave <= 2; wave++ {
		results := make(chan string, slow)
		for i := 0; i < slow; i++ {
			go func() { results <- slowClient(app.Addr, readTimeout) }()
		}
		// Normal requests while the slow ones hold their connections.
		var during []time.Duration
		deadline := time.Now().Add(readTimeout - 300*time.Millisecond)
		for time.Now().Before(deadline) {
			d, err := get()
			if err != nil {
				t.Fatalf("wave %d: normal request during slowloris: %v", wave, err)
			}
			during = append(during, d)
			time.Sleep(20 * time.Millisecond) // pacing the normal traffic, not waiting for anything
		}
		normal += len(during)
		for i := 0; i < slow; i++ {
			if msg := <-results; msg != "" {
				t.Errorf("wave %d: slow client: %s", wave, msg)
			}
		}
		b, d := pct(baseline, 99), pct(during, 99)
		t.Logf("wave %d: %d normal requests during, p99 %v (baseline p99 %v), max %v", wave, len(during), d, b, pct(during, 100))
		// Queued behind the slow clients, a request would wait for the read
		// timeout; served beside them, it takes what it always takes.
		if max := pct(during, 100); max > readTimeout/4 {
			t.Errorf("wave %d: a normal request took %v during slowloris (baseline p99 %v)", wave, max, b)
		}
	}
	stacktest.Eventually(t, 30*time.Second, func() (bool, string) {
		fams := stacktest.Scrape(t, exporter.URL)
		timedOut := stacktest.Sum(fams, "request_count", map[string]string{"endpoint": "unmatched", "http_status": "408"})
		ok := stacktest.Sum(fams, "request_count", map[string]string{"endpoint": "/test/", "http_status": "200"})
		all := stacktest.Sum(fams, "request_count", nil)
		return timedOut == 2*slow && ok == float64(normal) && all == float64(2*slow+normal),
			fmt.Sprintf("408s %v (want %d), 200s %v (want %d), all %v", timedOut, 2*slow, ok, normal, all)
	})
}

// slowClient sends a request's start, then one header byte per second, until
// the server closes. It says what was wrong, or "".
func slowClient(addr string, readTimeout time.Duration) string {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetReadDeadline(start.Add(readTimeout + 5*time.Second))
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(c); got <- b }()
	if _, err := c.Write([]byte("GET /test/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
		return "write: " + err.Error()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case b := <-got:
			cut := time.Since(start)
			if !strings.HasPrefix(string(b), "HTTP/1.1 408 ") {
				return fmt.Sprintf("got %q after %v, want a 408", b[:min(len(b), 40)], cut)
			}
			if cut < readTimeout-100*time.Millisecond || cut > readTimeout+2*time.Second {
				return fmt.Sprintf("cut off after %v, want about %v", cut, readTimeout)
			}
			return ""
		case <-tick.C:
			_, _ = c.Write([]byte("s")) // fails once the server has closed; the read side reports
		}
	}
}

// pct returns the p-th percentile of ds (100: the maximum).
func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}
