package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// loadMix is the share of requests each demo path gets, out of 10.
var loadMix = []struct {
	path  string
	share int
}{
	{"/test/", 6},
	{"/test1/", 2},
	{"/test", 1},
	{"/no/such/path", 1},
}

// runLoad sends a bounded burst of requests over the demo routes and prints
// the count of each path and status.
func runLoad(args []string) int {
	fs := flag.NewFlagSet("webapp load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("url", "http://127.0.0.1:5000", "base URL of the app")
	n := fs.Int("n", 1000, "requests to send (at most 1,000,000)")
	c := fs.Int("c", 8, "concurrent connections")
	timeout := fs.Duration("timeout", 60*time.Second, "stop after this long even if requests remain")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("webapp load: send a bounded mix of requests (6/10 /test/, 2/10 /test1/, 1/10 /test, 1/10 a 404 path)")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(os.Stderr, "webapp load: %v (see webapp load -h)\n", err)
		return 2
	}
	if *n < 1 || *n > 1_000_000 || *c < 1 || *c > 1000 {
		fmt.Fprintln(os.Stderr, "webapp load: -n must be 1..1000000 and -c 1..1000")
		return 2
	}
	var plan []string
	for i := 0; len(plan) < *n; i++ {
		for _, m := range loadMix {
			for k := 0; k < m.share && len(plan) < *n; k++ {
				plan = append(plan, m.path)
			}
		}
	}
	client := &fasthttp.Client{MaxConnsPerHost: *c}
	deadline := time.Now().Add(*timeout)
	var next atomic.Int64
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(plan) || time.Now().After(deadline) {
					return
				}
				req.SetRequestURI(*base + plan[i])
				key := plan[i] + " "
				if err := client.DoDeadline(req, resp, deadline); err != nil {
					key += "error"
				} else {
					key += fmt.Sprint(resp.StatusCode())
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	keys := make([]string, 0, len(counts))
	total, errs := 0, 0
	for k, v := range counts {
		keys = append(keys, k)
		total += v
		if len(k) > 5 && k[len(k)-5:] == "error" {
			errs += v
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%-24s %d\n", k, counts[k])
	}
	fmt.Printf("sent %d requests in %s (%.0f req/s), %d errors\n", total, took.Round(time.Millisecond), float64(total)/took.Seconds(), errs)
	if errs > 0 || total < *n {
		return 1
	}
	return 0
}
