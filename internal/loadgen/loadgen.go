// Package loadgen sends a bounded load of HTTP GET requests over a weighted
// mix of paths and counts every answer by path and status. It is the engine
// of `fwctl load`: it knows HTTP clients and counting, nothing about metrics.
//
// Each request is sent once: the client never retries, so the counts here are
// exactly the requests the server saw (a request that failed in transport is
// counted under Status 0, and the server may or may not have seen it).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Limits and defaults of Options.
const (
	// MaxRequests bounds every run, with or without a Duration.
	MaxRequests = 1_000_000
	// MaxConcurrency bounds Options.Concurrency.
	MaxConcurrency = 1000
	// MaxDuration bounds Options.Duration.
	MaxDuration = 10 * time.Minute
	// DefaultConcurrency is used when Options.Concurrency is 0.
	DefaultConcurrency = 8
	// DefaultRequestTimeout is used when Options.RequestTimeout is 0.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultProgressEvery is used when Options.ProgressEvery is 0.
	DefaultProgressEvery = 250 * time.Millisecond
	// MaxRate bounds Options.Rate, in requests per second.
	MaxRate = 10_000_000
)

// ErrBadOptions wraps every Options.Validate error.
var ErrBadOptions = errors.New("loadgen")

// Share is one path of a Mix and its weight.
type Share struct {
	Path   string
	Weight int
}

// Mix is the weighted list of paths a load requests. Request i goes to the
// path at position i modulo the total weight, the paths repeated by weight
// and interleaved, so any prefix of the run keeps close to the mix.
type Mix []Share

// ParseMix reads "path=weight,path=weight,...", e.g.
// "/test/=6,/test1/=2,/test=1,/no/such/path=1". A path without "=weight" has
// weight 1.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		path, w, found := strings.Cut(part, "=")
		weight := 1
		if found {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("%w: mix %q: weight of %q must be a number from 1 to 1000", ErrBadOptions, s, path)
			}
			weight = n
		}
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%w: mix %q: path %q must start with /", ErrBadOptions, s, path)
		}
		m = append(m, Share{Path: path, Weight: weight})
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: mix %q names no path", ErrBadOptions, s)
	}
	return m, nil
}

// String returns the mix in ParseMix's form.
func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, s := range m {
		parts[i] = s.Path + "=" + strconv.Itoa(s.Weight)
	}
	return strings.Join(parts, ",")
}

// cycle lays the mix out as one round: the paths interleaved by weight.
func (m Mix) cycle() []string {
	var out []string
	left := make([]int, len(m))
	total := 0
	for i, s := range m {
		left[i] = s.Weight
		total += s.Weight
	}
	for len(out) < total {
		for i := range m {
			if left[i] > 0 {
				out = append(out, m[i].Path)
				left[i]--
			}
		}
	}
	return out
}

// Options says what to send. The zero value is not usable: URL and Mix are
// required, and one of Requests or Duration.
type Options struct {
	// URL is the base URL, e.g. http://127.0.0.1:5000; mix paths are
	// appended to it.
	URL string
	// Mix is the paths to request and their weights.
	Mix Mix
	// Requests is how many requests to send; with a Duration, the most to
	// send. 0 with a Duration: MaxRequests.
	Requests int
	// Duration, if set, stops the run after this long.
	Duration time.Duration
	// Concurrency is the number of connections sending at once. Default
	// DefaultConcurrency.
	Concurrency int
	// Rate, if above 0, paces the run to this many requests per second in
	// total: request i (counted across all connections) is not sent before
	// Started + i/Rate, a schedule shared by the connections like one token
	// bucket. A connection whose previous answer came late sends its next
	// request at once, so the offered load keeps to the schedule as long as
	// Concurrency covers the requests in flight; Result.Elapsed shows
	// whether it did. 0: as fast as the connections go (saturation).
	Rate float64
	// Latencies, if set, keeps each answered request's latency (from when it
	// was sent to its answer) in Result.Latencies.
	Latencies bool
	// RequestTimeout bounds one request. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Attempts is how many times a request that failed in transport (a
	// connection reset by a dying worker, say) is sent, like Go's
	// http.Transport retrying idempotent requests. Default 1: a retried GET
	// that the server had answered is counted twice by the server and once
	// here, so exact checks keep 1.
	Attempts int
	// Progress, if set, is called every ProgressEvery from one goroutine
	// while the run goes on, and once at the end. It must not block long.
	Progress func(Progress)
	// ProgressEvery defaults to DefaultProgressEvery.
	ProgressEvery time.Duration
}

// Validate reports the first option that cannot work.
func (o *Options) Validate() error {
	switch {
	case !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://"):
		return fmt.Errorf("%w: url %q must start with http:// or https://", ErrBadOptions, o.URL)
	case len(o.Mix) == 0:
		return fmt.Errorf("%w: empty mix", ErrBadOptions)
	case o.Requests < 0 || o.Requests > MaxRequests:
		return fmt.Errorf("%w: requests %d must be from 1 to %d", ErrBadOptions, o.Requests, MaxRequests)
	case o.Requests == 0 && o.Duration == 0:
		return fmt.Errorf("%w: give a number of requests or a duration", ErrBadOptions)
	case o.Duration < 0 || o.Duration > MaxDuration:
		return fmt.Errorf("%w: duration %s must be from 0 to %s", ErrBadOptions, o.Duration, MaxDuration)
	case o.Concurrency < 0 || o.Concurrency > MaxConcurrency:
		return fmt.Errorf("%w: concurrency %d must be from 1 to %d", ErrBadOptions, o.Concurrency, MaxConcurrency)
	case o.Attempts < 0 || o.Attempts > 10:
		return fmt.Errorf("%w: attempts %d must be from 1 to 10", ErrBadOptions, o.Attempts)
	case o.Rate < 0 || o.Rate > MaxRate:
		return fmt.Errorf("%w: rate %g must be from 0 to %d requests per second", ErrBadOptions, o.Rate, MaxRate)
	case o.RequestTimeout < 0:
		return fmt.Errorf("%w: request timeout %s must not be negative", ErrBadOptions, o.RequestTimeout)
	}
	return nil
}

// Progress is a snapshot of a running load.
type Progress struct {
	// Done counts answered and failed requests; Errors the failed ones
	// (transport errors, not HTTP statuses).
	Done, Errors int
	// Planned is the request bound (MaxRequests for a duration run).
	Planned int
	Elapsed time.Duration
	// Final is true for the last call, after every request finished.
	Final bool
}

// Rate is requests per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// Key is one line of a result: a path and the status it got (0: no answer).
type Key struct {
	Path   string
	Status int
}

// Result is what a run sent.
type Result struct {
	// Counts by path and status; Status 0 counts transport errors.
	Counts map[Key]int
	// Sent is the number of requests sent (answered or failed).
	Sent int
	// Errors counts transport errors; FirstError is the first one's text.
	Errors     int
	FirstError string
	Started    time.Time
	Elapsed    time.Duration
	// Latencies are the answered requests' latencies, shortest first, when
	// Options.Latencies is set.
	Latencies []time.Duration
}

// Percentile returns the latency below which fraction q (0..1) of the
// answered requests fall (nearest rank), or 0 without Latencies.
func (r *Result) Percentile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return r.Latencies[min(max(i, 0), n-1)]
}

// Run sends the load and returns what was sent. It stops early, without an
// error, when ctx is cancelled or the Duration passes; the Result then holds
// what was sent so far.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	if o.Attempts == 0 {
		o.Attempts = 1
	}
	planned := o.Requests
	if planned == 0 {
		planned = MaxRequests
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	base := strings.TrimSuffix(o.URL, "/")
	cycle := o.Mix.cycle()
	retry := func(*fasthttp.Request, int, error) (bool, bool) { return false, false }
	if o.Attempts > 1 {
		retry = nil // fasthttp's default: retry idempotent requests
	}
	client := &fasthttp.Client{
		RetryIfErr:                retry,
		MaxConnsPerHost:           o.Concurrency,
		MaxIdemponentCallAttempts: o.Attempts,
		NoDefaultUserAgentHeader:  true,
	}

	res := &Result{Counts: map[Key]int{}, Started: time.Now()}
	var next, done, errs atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := map[Key]int{}
			var lats []time.Duration
			var firstErr string
			// One timer per connection, reset for each paced request.
			var pace *time.Timer
			if o.Rate > 0 {
				pace = time.NewTimer(time.Hour)
				defer pace.Stop()
			}
			defer func() {
				mu.Lock()
				for k, v := range local {
					res.Counts[k] += v
				}
				res.Latencies = append(res.Latencies, lats...)
				if res.FirstError == "" {
					res.FirstError = firstErr
				}
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= planned {
					return
				}
				if pace != nil {
					due := res.Started.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						pace.Reset(wait)
						select {
						case <-pace.C:
						case <-ctx.Done():
							return
						}
					}
				}
				path := cycle[i%len(cycle)]
				req.SetRequestURI(base + path)
				k := Key{Path: path}
				sent := time.Now()
				if err := client.DoTimeout(req, resp, o.RequestTimeout); err != nil {
					errs.Add(1)
					if firstErr == "" {
						firstErr = fmt.Sprintf("GET %s: %v", path, err)
					}
				} else {
					k.Status = resp.StatusCode()
					if o.Latencies {
						lats = append(lats, time.Since(sent))
					}
				}
				local[k]++
				done.Add(1)
			}
		}()
	}

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	snapshot := func(final bool) Progress {
		return Progress{Done: int(done.Load()), Errors: int(errs.Load()), Planned: planned,
			Elapsed: time.Since(res.Started), Final: final}
	}
	tick := time.NewTicker(o.ProgressEvery)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-finished:
			running = false
		case <-tick.C:
			if o.Progress != nil {
				o.Progress(snapshot(false))
			}
		}
	}
	res.Elapsed = time.Since(res.Started)
	slices.Sort(res.Latencies)
	res.Sent = int(done.Load())
	res.Errors = int(errs.Load())
	if o.Progress != nil {
		o.Progress(snapshot(true))
	}
	return res, nil
}
