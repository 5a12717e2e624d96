package main

import (
	"testing"
	"time"
)

// Outputs captured from wrk 4 and hey on Debian.
const wrkOut = `Running 1s test @ http://127.0.0.1:19501/test/
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   389.03us  553.69us   9.46ms   95.71%
    Req/Sec    14.75k     2.82k   22.42k    72.73%
  Latency Distribution
     50%  298.00us
     75%  468.00us
     90%  692.00us
     99%    2.16ms
  32291 requests in 1.10s, 3.70MB read
Requests/sec:  29366.96
Transfer/sec:      3.36MB
`

const wrkErrOut = `Running 5s test @ http://127.0.0.1:15102/test/
  2 threads and 50 connections
  Latency Distribution
     50%   12.39ms
     75%   18.96ms
     90%   24.06ms
     99%   39.82ms
  16380 requests in 5.02s, 1.28MB read
  Socket errors: connect 0, read 16368, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   3264.45
`

func TestParseLoad(t *testing.T) {
	tests := []struct {
		name  string
		parse func(string) (loadResult, error)
		out   string
		want  loadResult
	}{
		{"wrk", parseWrk, wrkOut, loadResult{Requests: 32291, ReqPerSec: 29366.96, P50: 298 * time.Microsecond,
			P99: 2160 * time.Microsecond, Took: 1100 * time.Millisecond}},
		{"wrk with errors", parseWrk, wrkErrOut, loadResult{Requests: 16380, Non2xx: 7, Errors: 16370, ReqPerSec: 3264.45,
			P50: 12390 * time.Microsecond, P99: 39820 * time.Microsecond, Took: 5020 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			got.Output = ""
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("parseWrk accepted output without a request count")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSpreadAndJudge(t *testing.T) {
	sp := spreadOf([]float64{1.10, 0.95, 1.02})
	if sp.med != 1.02 || sp.lo != 0.95 || sp.hi != 1.10 || sp.n != 3 {
		t.Fatalf("spreadOf = %+v", sp)
	}
	if got := sp.format("%.2f"); got != "1.02 [0.95..1.10]" {
		t.Errorf("format = %q", got)
	}
	tests := map[string]struct {
		sp    spread
		ok    func(float64) bool
		limit float64
		want  string
	}{
		"met clearly":       {spreadOf([]float64{0.99, 1.0}), atLeast(0.98), 0.98, "met"},
		"missed clearly":    {spreadOf([]float64{0.8, 0.9}), atLeast(0.98), 0.98, "**MISSED**"},
		"met within noise":  {sp, atMost(1.05), 1.05, "met (rounds on both sides: within noise)"},
		"missed with noise": {sp, atMost(1.0), 1.0, "**MISSED** (rounds on both sides: within noise)"},
		"nothing measured":  {spread{}, atMost(1), 1, "not measured"},
	}
	for name, tc := range tests {
		if got := judge(tc.sp, tc.ok, tc.limit); got != tc.want {
			t.Errorf("%s: judge = %q, want %q", name, got, tc.want)
		}
	}
}
