package statsd

// The Client as it was before the shared-memory segment (commit 7ab2654),
// kept under a test-only name so that the benchmarks and the stall test
// compare the old Record with the new one in the same run.

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dd "github.com/DataDog/datadog-go/v5/statsd"
)

// legacyClient records requests and pool events as DogStatsD metrics.
type legacyClient struct {
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

// newLegacy is the old New, minus the defaults New has already checked.
func newLegacy(cfg Config) *legacyClient {
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
	c := &legacyClient{cfg: cfg, appTag: "app_name:" + cfg.AppName, closing: make(chan struct{})}
	if err := c.connect(); err != nil {
		ctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.retried.Add(1)
		go c.retry(ctx)
	}
	return c
}

func (c *legacyClient) connect() error {
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
func (c *legacyClient) flushLoop(client *dd.Client) {
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

func (c *legacyClient) retry(ctx context.Context) {
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

func (c *legacyClient) sendError(err error) {
	c.errs.Add(1)
	c.errOnce.Do(func() {
		c.cfg.Logger.Warn("sending metrics failed; serving goes on, further errors are counted, not logged",
			"addr", c.cfg.Addr, "err", err)
	})
}

// Record implements worker.Recorder.
func (c *legacyClient) Record(method, endpoint string, status int, elapsed time.Duration) {
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

// tagsFor returns the tag slices of one series, built once and cached: the
// label sets are bounded, so the cache is too.
func (c *legacyClient) tagsFor(method, endpoint string, status int) *requestTags {
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
func (c *legacyClient) WorkersLive(n int) {
	if client := c.dd.Load(); client != nil {
		c.gate.RLock()
		_ = client.Gauge(Workers, float64(n), []string{c.appTag}, 1)
		c.gate.RUnlock()
	}
}

// WorkerRestart counts one worker exit with its reason.
func (c *legacyClient) WorkerRestart(reason string) {
	if client := c.dd.Load(); client != nil {
		c.gate.RLock()
		_ = client.Count(WorkerRestarts, 1, []string{c.appTag, "reason:" + SanitizeTagValue(reason)}, 1)
		c.gate.RUnlock()
	}
}

// Close flushes what the client holds and releases it.
func (c *legacyClient) Close() error {
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
