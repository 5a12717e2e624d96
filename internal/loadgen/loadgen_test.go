package loadgen

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseMix(t *testing.T) {
	tests := map[string]struct {
		in   string
		want Mix
		err  string
	}{
		"default":      {in: "/test/=6,/test1/=2,/test=1", want: Mix{{"/test/", 6}, {"/test1/", 2}, {"/test", 1}}},
		"no weight":    {in: "/a, /b=3", want: Mix{{"/a", 1}, {"/b", 3}}},
		"empty":        {in: " , ", err: "names no path"},
		"no slash":     {in: "test=1", err: "must start with /"},
		"zero weight":  {in: "/a=0", err: "weight"},
		"not a number": {in: "/a=x", err: "weight"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseMix(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadOptions) {
					t.Fatalf("ParseMix(%q) error %v, want one containing %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, _ := ParseMix(got.String()); !slices.Equal(back, got) {
				t.Errorf("String() %q does not parse back", got.String())
			}
		})
	}
}

func TestCycleInterleaves(t *testing.T) {
	got := Mix{{"/a", 3}, {"/b", 1}, {"/c", 2}}.cycle()
	want := []string{"/a", "/b", "/c", "/a", "/c", "/a"}
	if !slices.Equal(got, want) {
		t.Errorf("cycle = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{URL: "http://127.0.0.1:1", Mix: Mix{{"/", 1}}, Requests: 1}
	tests := map[string]func(*Options){
		"no scheme":       func(o *Options) { o.URL = "127.0.0.1:1" },
		"no mix":          func(o *Options) { o.Mix = nil },
		"no bound":        func(o *Options) { o.Requests = 0 },
		"too many":        func(o *Options) { o.Requests = MaxRequests + 1 },
		"too long":        func(o *Options) { o.Requests, o.Duration = 0, MaxDuration+time.Second },
		"too concurrent":  func(o *Options) { o.Concurrency = MaxConcurrency + 1 },
		"negative wait":   func(o *Options) { o.RequestTimeout = -1 },
		"negative amount": func(o *Options) { o.Requests = -1 },
		"negative rate":   func(o *Options) { o.Rate = -1 },
		"rate too high":   func(o *Options) { o.Rate = MaxRate + 1 },
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			o := ok
			change(&o)
			if err := o.Validate(); !errors.Is(err, ErrBadOptions) {
				t.Errorf("Validate() = %v, want an ErrBadOptions error", err)
			}
		})
	}
}

// server serves loopback HTTP: "/ok" 200, "/fail" 500, else 404, and counts
// what it served per path.
func server(t *testing.T) (string, func() map[string]int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		seen[string(ctx.Path())]++
		mu.Unlock()
		switch string(ctx.Path()) {
		case "/ok":
		case "/fail":
			ctx.SetStatusCode(500)
		default:
			ctx.SetStatusCode(404)
		}
	}}
	go s.Serve(ln)
	t.Cleanup(func() { _ = s.Shutdown() })
	return "http://" + ln.Addr().String(), func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps(seen)
	}
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestRunCountsEveryAnswer(t *testing.T) {
	url, served := server(t)
	var calls []Progress
	res, err := Run(context.Background(), Options{
		URL: url, Mix: Mix{{"/ok", 3}, {"/fail", 1}, {"/missing", 1}}, Requests: 1000, Concurrency: 4,
		Progress: func(p Progress) { calls = append(calls, p) }, ProgressEvery: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Key]int{{"/ok", 200}: 600, {"/fail", 500}: 200, {"/missing", 404}: 200}
	if len(res.Counts) != len(want) {
		t.Errorf("counts %v, want %v", res.Counts, want)
	}
	for k, n := range want {
		if res.Counts[k] != n {
			t.Errorf("counts[%v] = %d, want %d", k, res.Counts[k], n)
		}
	}
	if res.Sent != 1000 || res.Errors != 0 {
		t.Errorf("sent %d with %d errors, want 1000 and 0", res.Sent, res.Errors)
	}
	// The server saw each request exactly once: no retries.
	if got := served(); got["/ok"] != 600 || got["/fail"] != 200 || got["/missing"] != 200 {
		t.Errorf("server saw %v, want the same as sent", got)
	}
	if len(calls) == 0 || !calls[len(calls)-1].Final || calls[len(calls)-1].Done != 1000 {
		t.Errorf("progress calls %+v: want a final one with Done 1000", calls)
	}
}

func TestRunTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	res, err := Run(context.Background(), Options{URL: "http://" + addr, Mix: Mix{{"/x", 1}}, Requests: 5, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 5 || res.Counts[Key{"/x", 0}] != 5 || res.FirstError == "" {
		t.Errorf("result %+v: want 5 errors counted under status 0 and the first error's text", res)
	}
}

func TestRunDurationStops(t *testing.T) {
	url, _ := server(t)
	start := time.Now()
	res, err := Run(context.Background(), Options{URL: url, Mix: Mix{{"/ok", 1}}, Duration: 300 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second || res.Sent == 0 {
		t.Errorf("a 300ms run took %s and sent %d", took, res.Sent)
	}
	if res.Errors != 0 || res.Counts[Key{"/ok", 200}] != res.Sent {
		t.Errorf("result %+v: every request sent must be counted as answered", res)
	}
}

// TestRunRate: a paced run takes as long as its schedule says (request i not
// before i/Rate), however fast the server answers, and keeps latencies.
func TestRunRate(t *testing.T) {
	url, served := server(t)
	const n, rate = 60, 200.0 // the last request is due after 295ms
	res, err := Run(context.Background(), Options{URL: url, Mix: Mix{{"/ok", 1}}, Requests: n, Concurrency: 4,
		Rate: rate, Latencies: true})
	if err != nil {
		t.Fatal(err)
	}
	if least := time.Duration(float64(n-1) / rate * float64(time.Second)); res.Elapsed < least || res.Elapsed > 5*time.Second {
		t.Errorf("%d requests at %g/s took %s, want at least %s", n, rate, res.Elapsed, least)
	}
	if res.Sent != n || served()["/ok"] != n {
		t.Errorf("sent %d, served %d, want %d", res.Sent, served()["/ok"], n)
	}
	if len(res.Latencies) != n || !slices.IsSorted(res.Latencies) || res.Latencies[0] <= 0 {
		t.Fatalf("%d latencies, want %d sorted and positive", len(res.Latencies), n)
	}
	if p50, p99 := res.Percentile(0.5), res.Percentile(0.99); p50 != res.Latencies[29] || p99 != res.Latencies[59] {
		t.Errorf("p50 %s, p99 %s: want the 30th and the 60th of %v", p50, p99, res.Latencies)
	}
}

func TestPercentileEmpty(t *testing.T) {
	if got := (&Result{}).Percentile(0.5); got != 0 {
		t.Errorf("Percentile without latencies = %s, want 0", got)
	}
}
