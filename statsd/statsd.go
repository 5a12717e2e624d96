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
	// Logger receives the first send error and resolution failures.
	Logger *slog.Logger
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
	cfg     Config
	appTag  string
	dd      atomic.Pointer[dd.Client]
	tags    sync.Map // requestKey -> *requestTags
	errOnce sync.Once
	errs    atomic.Uint64
	dropped atomic.Uint64 // records made while no client could be built
	stop    context.CancelFunc
	retried sync.WaitGroup
	gate    sync.RWMutex  // read: sending; write: flushing (see flushLoop)
	closing chan struct{} // closed by Close: flushLoop ends
	flushed sync.WaitGroup
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
	c := &Client{cfg: cfg, appTag: "app_name:" + cfg.AppName, closing: make(chan struct{})}
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

// flushLoop flushes the client every FlushInterval with the gate closed.
//
// datadog-go v5.9.1 has a race in extended aggregation: Histogram looks up
// its series' sample buffer under a read lock, releases it, and only then
// appends the sample; a flush that swaps the buffers in between sends the
// old buffer and the sample appended to it afterwards is never sent. Seen
// here as 99,999 latency samples for 100,000 counted requests. Counts are
// safe (they add under the lock). Record holds the gate's read side across
// its calls, so no sample can straddle a flush.
func (c *Client) flushLoop(client *dd.Client) {
	defer c.flushed.Done()
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
			c.gate.Lock()
			err := client.Flush()
			c.gate.Unlock()
			if err != nil {
				c.sendError(err)
			}
		}
	}
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
	c.errs.Add(1)
	c.errOnce.Do(func() {
		c.cfg.Logger.Warn("sending metrics failed; serving goes on, further errors are counted, not logged",
			"addr", c.cfg.Addr, "err", err)
	})
}

// Record implements worker.Recorder.
func (c *Client) Record(method, endpoint string, status int, elapsed time.Duration) {
	client := c.dd.Load()
	if client == nil {
		c.dropped.Add(1)
		return
	}
	t := c.tagsFor(method, endpoint, status)
	c.gate.RLock()
	// The datadog client only fails here when it is closed.
	_ = client.Count(RequestCount, 1, t.count, 1)
	_ = client.Histogram(RequestLatency, microseconds(elapsed), t.latency, 1)
	c.gate.RUnlock()
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
	k := requestKey{method, endpoint, status}
	if v, ok := c.tags.Load(k); ok {
		return v.(*requestTags)
	}
	ep := "endpoint:" + SanitizeTagValue(endpoint)
	t := &requestTags{
		count: []string{c.appTag, "method:" + SanitizeTagValue(method), ep,
			"http_status:" + strconv.Itoa(status)},
		latency: []string{c.appTag, ep},
	}
	v, _ := c.tags.LoadOrStore(k, t)
	return v.(*requestTags)
}

// WorkersLive sets the gauge of live workers.
func (c *Client) WorkersLive(n int) {
	if client := c.dd.Load(); client != nil {
		c.gate.RLock()
		_ = client.Gauge(Workers, float64(n), []string{c.appTag}, 1)
		c.gate.RUnlock()
	}
}

// WorkerRestart counts one worker exit with its reason.
func (c *Client) WorkerRestart(reason string) {
	if client := c.dd.Load(); client != nil {
		c.gate.RLock()
		_ = client.Count(WorkerRestarts, 1, []string{c.appTag, "reason:" + SanitizeTagValue(reason)}, 1)
		c.gate.RUnlock()
	}
}

// Close flushes what the client holds and releases it.
func (c *Client) Close() error {
	if c.stop != nil {
		c.stop()
		c.retried.Wait()
	}
	close(c.closing)
	c.flushed.Wait()
	if n := c.errs.Load(); n > 0 {
		c.cfg.Logger.Warn("metric send errors", "count", n, "addr", c.cfg.Addr)
	}
	if client := c.dd.Load(); client != nil {
		c.gate.Lock() // Close flushes: same rule as flushLoop
		defer c.gate.Unlock()
		return client.Close()
	}
	return nil
}
