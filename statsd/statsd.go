// Package statsd sends forkwatch's metrics as DogStatsD lines with the
// datadog-go v5 client, set up so that the counts a statsd_exporter adds up
// are exact, and owns the metric names and tag keys (the contract that
// PromQL queries rely on).
//
// Each process (every worker and the supervisor) has its own Client. A
// Client never blocks or fails the caller: if the address does not resolve
// it retries in the background, and send errors are logged once.
package statsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dd "github.com/DataDog/datadog-go/v5/statsd"
)

// Metric names and tag keys. Each name is always sent with the same tag keys:
// statsd_exporter drops samples of a name seen with two different key sets.
const (
	// RequestCount counts finished requests; tags app_name, method,
	// endpoint, http_status.
	RequestCount = "request_count"
	// RequestLatency observes request latency in seconds; tags app_name,
	// endpoint.
	RequestLatency = "request_latency_seconds"
	// Workers gauges the pool's live (ready) workers; tag app_name.
	Workers = "forkwatch_workers"
	// WorkerRestarts counts worker exits other than a shutdown; tags
	// app_name, reason. mapping.yml exposes it as ..._total.
	WorkerRestarts = "forkwatch_worker_restarts"
)

// Defaults for the zero values of Config.
const (
	DefaultAddr    = "127.0.0.1:9125"
	DefaultAppName = "webapp"
	// DefaultFlushInterval is how long counts and histogram samples wait in
	// the client's aggregator. Short, so a worker that dies takes at most
	// this much unsent data with it; long enough that a busy worker sends
	// one packet per context per interval instead of one per request.
	DefaultFlushInterval = 200 * time.Millisecond
	// maxPayload is the largest datagram the client sends (see connect).
	maxPayload = 8192
	// bufferPool is how many payload buffers the client keeps (see connect).
	bufferPool = 32
	// selfFlushed is the datadog client's own aggregation interval: never,
	// in practice, since flushLoop flushes it.
	selfFlushed = 24 * time.Hour
	// retryEvery is how often an address that did not resolve is retried.
	retryEvery = 2 * time.Second
)

// Config configures a Client.
type Config struct {
	// Addr is host:port for UDP, or unixgram:///path for a Unix datagram
	// socket. Default DefaultAddr.
	Addr string
	// AppName is the app_name tag value. Default DefaultAppName.
	AppName string
	// FlushInterval is the client-side aggregation interval. Default
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Logger receives send errors (at most one line per errorLogEvery) and
	// resolution failures.
	Logger *slog.Logger
	// Segment, if set, is the shared memory the worker's not-yet-sent
	// metrics live in, so that they outlive the worker (see Segment). Nil:
	// a private one, freed by Close.
	Segment *Segment
}

// Validate reports the first field that cannot work.
func (c *Config) Validate() error {
	if c.FlushInterval < 0 {
		return errors.New("statsd: flush interval must not be negative")
	}
	if err := checkTagValue(c.AppName); err != nil {
		return err
	}
	return nil
}

// Client records requests and pool events as DogStatsD metrics.
type Client struct {
	cfg      Config
	appTag   string
	dd       atomic.Pointer[dd.Client]
	seg      *Segment
	ownSeg   bool
	sendMu   sync.Mutex    // one sender at a time: flushes, SendRemainder, overflow
	flushNow chan struct{} // Record asks for an early flush (ring half full)
	overflow atomic.Uint64 // records sent past a full series table
	errMu    sync.Mutex
	errLast  time.Time
	errSeen  uint64 // errors at the last log line
	errs     atomic.Uint64
	dropped  atomic.Uint64 // records made while no client could be built
	stop     context.CancelFunc
	retried  sync.WaitGroup
	closing  chan struct{} // closed by Close: flushLoop ends
	flushed  sync.WaitGroup
}

type requestKey struct {
	method, endpoint string
	status           int
}

type requestTags struct{ count, latency []string }

// envTags are datadog-go's environment variables that add tags or fields to
// every line (DD_ENV adds env:..., DD_CARDINALITY a card field the exporter
// cannot parse, ...). They would change the fixed tag keys, so New clears them
// for this process.
var envTags = []string{"DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID", "DD_CARDINALITY",
	"DATADOG_CARDINALITY", "DD_EXTERNAL_ENV"}

// New builds a Client. It fails only on a bad Config; an address that does
// not resolve yet is retried in the background.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.AppName == "" {
		cfg.AppName = DefaultAppName
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, k := range envTags {
		os.Unsetenv(k)
	}
	c := &Client{cfg: cfg, appTag: "app_name:" + cfg.AppName, closing: make(chan struct{}),
		seg: cfg.Segment, flushNow: make(chan struct{}, 1)}
	if c.seg == nil {
		seg, err := NewSegment()
		if err != nil {
			return nil, err
		}
		c.seg, c.ownSeg = seg, true
	}
	if err := c.connect(); err != nil {
		cfg.Logger.Warn("metrics address not usable yet; serving without metrics and retrying",
			"addr", cfg.Addr, "err", err, "every", retryEvery)
		ctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.retried.Add(1)
		go c.retry(ctx)
	}
	return c, nil
}

func (c *Client) connect() error {
	client, err := dd.New(c.cfg.Addr,
		// Counts are summed in the client and histogram samples buffered,
		// then sent once per FlushInterval: one packet per context instead of
		// one per request, without the sample rates that
		// WithMaxSamplesPerContext would send (the exporter turns those into
		// wrong counts).
		//
		// We flush the aggregator ourselves (see flushLoop), so its own
		// timer is set past any process's lifetime.
		dd.WithExtendedClientSideAggregation(),
		dd.WithAggregationInterval(selfFlushed),
		// One datagram carries up to 8 KiB of lines instead of the 1432
		// bytes sized for a 1500-byte network MTU: the exporter runs on the
		// same host (loopback, 64 KiB MTU) or pod, and at saturation every
		// packet costs it a read and a queue slot. With 1432 bytes the
		// bench measured 0.012 packets per request; the target is <= 0.01.
		// (make bench, BENCHMARKS.md.) The exporter reads datagrams of up
		// to 64 KiB.
		dd.WithMaxBytesPerPayload(maxPayload),
		// datadog-go allocates its whole buffer pool up front (default 2048
		// buffers): with 8 KiB buffers that is 16 MiB per process, which
		// the bench saw as 26 MiB workers. Aggregation leaves a few packets
		// per interval, so 32 buffers (256 KiB) are plenty; when they run
		// out the client allocates another, it never drops. The sender
		// queue (the one place datadog-go drops, and then calls
		// sendError) keeps its default of 2048.
		dd.WithBufferPoolSize(bufferPool),
		// Origin detection adds a container id field and client telemetry
		// adds series of its own; neither belongs in the contract.
		dd.WithoutOriginDetection(),
		dd.WithoutTelemetry(),
		dd.WithCardinality(dd.CardinalityNotSet),
		dd.WithErrorHandler(c.sendError),
	)
	if err != nil {
		return err
	}
	c.dd.Store(client)
	c.flushed.Add(1)
	go c.flushLoop(client)
	return nil
}

// flushLoop sends what the segment holds every FlushInterval, or sooner
// when Record finds the ring half full. Only it (and SendRemainder and
// Close, under sendMu) calls datadog-go for request metrics, so Record never
// waits on the network and datadog-go's Histogram/flush race (v5.9.1 looks
// up a sample buffer under a read lock, then appends after releasing it: a
// flush in between lost the sample) cannot happen.
func (c *Client) flushLoop(client *dd.Client) {
	defer c.flushed.Done()
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
		case <-c.flushNow:
		}
		c.send(client, c.seg, false)
	}
}

// Remainder is what SendRemainder sent.
type Remainder struct {
	Counts, Samples uint64
}

// SendRemainder sends what seg still holds, with its own series' tags and
// this client's app_name, and marks it sent. The supervisor calls it when a
// worker has exited (and been reaped): after a clean exit there is nothing
// left; after a SIGKILL it is the worker's last unsent window. An error
// means the send failed; what is left stays in seg.
func (c *Client) SendRemainder(seg *Segment) (Remainder, error) {
	client := c.dd.Load()
	if client == nil {
		return Remainder{}, errors.New("statsd: no client (address not usable yet)")
	}
	return c.send(client, seg, true)
}

// send sends what seg holds through client and, only if every write
// succeeded, advances seg's watermarks. A crash between the writes and the
// watermark store (microseconds) sends that window twice: forkwatch errs on
// the side of a duplicate, never a loss.
func (c *Client) send(client *dd.Client, seg *Segment, final bool) (Remainder, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	p := seg.take(final)
	// Flush even with nothing from the segment: gauges and counters sent
	// directly (the supervisor's pool metrics) wait in datadog-go's
	// aggregator for it.
	var r Remainder
	errs := c.errs.Load()
	for _, d := range p.counts {
		if t := c.slotTags(seg, d.slot); t != nil {
			_ = client.Count(RequestCount, int64(d.delta), t.count, 1)
			r.Counts += d.delta
		}
	}
	for _, sm := range p.samples {
		if t := c.slotTags(seg, sm.slot); t != nil {
			_ = client.Histogram(RequestLatency, float64(sm.micros)/1e6, t.latency, 1)
			r.Samples++
		}
	}
	if err := client.Flush(); err != nil {
		c.sendError(err)
		return r, err
	}
	if c.errs.Load() != errs {
		return r, errors.New("statsd: send failed; kept for the next flush")
	}
	seg.commit(p)
	return r, nil
}

// slotTags are the tags of seg's series slot, built once (under sendMu).
func (c *Client) slotTags(seg *Segment, slot int) *requestTags {
	if seg.tagCache == nil {
		seg.tagCache = map[int]*requestTags{}
	}
	if t, ok := seg.tagCache[slot]; ok {
		return t
	}
	m, e, st, ok := seg.key(slot)
	if !ok {
		return nil
	}
	ep := "endpoint:" + e
	t := &requestTags{
		count:   []string{c.appTag, "method:" + m, ep, "http_status:" + strconv.Itoa(st)},
		latency: []string{c.appTag, ep},
	}
	seg.tagCache[slot] = t
	return t
}

func (c *Client) retry(ctx context.Context) {
	defer c.retried.Done()
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.connect() == nil {
				c.cfg.Logger.Info("metrics address usable now", "addr", c.cfg.Addr,
					"dropped_while_waiting", c.dropped.Load())
				return
			}
		}
	}
}

func (c *Client) sendError(err error) {
	n := c.errs.Add(1)
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if time.Since(c.errLast) < errorLogEvery {
		return
	}
	c.cfg.Logger.Warn("sending metrics failed; serving goes on, what was not sent is kept and retried",
		"addr", c.cfg.Addr, "err", err, "errors_since_last_line", n-c.errSeen)
	c.errLast, c.errSeen = time.Now(), n
}

// errorLogEvery bounds send-error log lines to one per interval.
const errorLogEvery = 10 * time.Second

// Record implements worker.Recorder. It writes to the segment only: no
// network, no lock that a send holds (except, past maxSeries distinct
// series, the overflow path).
func (c *Client) Record(method, endpoint string, status int, elapsed time.Duration) {
	soon, err := c.seg.record(requestKey{method, endpoint, status}, uint64((elapsed+time.Microsecond-1)/time.Microsecond))
	if err != nil {
		c.recordOverflow(method, endpoint, status, elapsed)
		return
	}
	if soon {
		select {
		case c.flushNow <- struct{}{}:
		default:
		}
	}
}

// recordOverflow sends a request whose series found no slot straight
// through datadog-go (not crash-safe, counted in overflow).
func (c *Client) recordOverflow(method, endpoint string, status int, elapsed time.Duration) {
	c.overflow.Add(1)
	client := c.dd.Load()
	if client == nil {
		c.dropped.Add(1)
		return
	}
	t := c.tagsFor(method, endpoint, status)
	c.sendMu.Lock()
	_ = client.Count(RequestCount, 1, t.count, 1)
	_ = client.Histogram(RequestLatency, microseconds(elapsed), t.latency, 1)
	c.sendMu.Unlock()
}

// microseconds is d in seconds, rounded up to a whole microsecond. Values
// like 0.000123 instead of 0.000123456789 make the histogram samples in each
// packet about half as long (fewer packets, less for the exporter to
// parse). Rounding up keeps every sample in its bucket: the bucket bounds in
// mapping.yml are whole microseconds, and for a whole number b,
// ceil(x) <= b exactly when x <= b. The sum gains under 1µs per request.
func microseconds(d time.Duration) float64 {
	us := (d + time.Microsecond - 1) / time.Microsecond
	return float64(us) / 1e6
}

// tagsFor returns the tag slices of one series, built once and cached: the
// label sets are bounded, so the cache is too.
func (c *Client) tagsFor(method, endpoint string, status int) *requestTags {
	ep := "endpoint:" + SanitizeTagValue(endpoint)
	t := &requestTags{
		count: []string{c.appTag, "method:" + SanitizeTagValue(method), ep,
			"http_status:" + strconv.Itoa(status)},
		latency: []string{c.appTag, ep},
	}
	return t
}

// WorkersLive sets the gauge of live workers.
func (c *Client) WorkersLive(n int) {
	if client := c.dd.Load(); client != nil {
		_ = client.Gauge(Workers, float64(n), []string{c.appTag}, 1)
	}
}

// WorkerRestart counts one worker exit with its reason.
func (c *Client) WorkerRestart(reason string) {
	if client := c.dd.Load(); client != nil {
		_ = client.Count(WorkerRestarts, 1, []string{c.appTag, "reason:" + SanitizeTagValue(reason)}, 1)
	}
}

// Close sends what the segment holds and releases the client, within
// closeTimeout: a stale unixgram socket makes datadog-go retry with sleeps,
// and a worker's exit must not wait for that. What is not sent stays in the
// segment, for the supervisor's SendRemainder.
func (c *Client) Close() error {
	if c.stop != nil {
		c.stop()
		c.retried.Wait()
	}
	close(c.closing)
	c.flushed.Wait()
	done := make(chan error, 1)
	go func() {
		client := c.dd.Load()
		if client == nil {
			done <- nil
			return
		}
		_, err := c.send(client, c.seg, false)
		if cerr := client.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(closeTimeout):
		err = fmt.Errorf("statsd: final flush not done within %s; the rest stays in the segment", closeTimeout)
	}
	if n := c.errs.Load(); n > 0 {
		c.cfg.Logger.Warn("metric send errors", "count", n, "addr", c.cfg.Addr)
	}
	if n := c.overflow.Load(); n > 0 {
		c.cfg.Logger.Warn("requests recorded past a full series table (sent directly, not crash-safe)", "count", n)
	}
	if _, dropped := c.seg.Totals(); dropped > 0 {
		c.cfg.Logger.Warn("latency samples dropped: the segment's ring was full", "count", dropped)
	}
	if c.ownSeg && err == nil {
		err = c.seg.Close()
	}
	return err
}

// closeTimeout bounds Close's final flush.
const closeTimeout = time.Second
