package statsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// the segment. Short, so the exporter is current; long enough that a
	// busy worker sends one packet per context per interval instead of one
	// per request. (A worker that dies loses nothing: the supervisor sends
	// its segment's remainder.)
	DefaultFlushInterval = 200 * time.Millisecond
	// DefaultCloseTimeout bounds Close: a worker's exit must not wait on a
	// dead exporter.
	DefaultCloseTimeout = time.Second
	// DefaultResolveInterval is how often a host name is resolved again.
	DefaultResolveInterval = 10 * time.Second
	// maxPayload is the largest datagram the client sends (see connect).
	maxPayload = 8192
	// bufferPool is how many payload buffers the client keeps (see connect).
	bufferPool = 32
	// selfFlushed is the datadog client's own aggregation interval: never,
	// in practice, since the flush goroutine flushes it.
	selfFlushed = 24 * time.Hour
	// retryEvery is how often an address that did not resolve is retried.
	retryEvery = 2 * time.Second
	// resolveTimeout bounds one resolution (in the flush goroutine).
	resolveTimeout = time.Second
	// connectTimeout is datadog-go's; see newDD.
	connectTimeout = 200 * time.Millisecond
	// errorLogEvery rate-limits the send error log lines.
	errorLogEvery = 10 * time.Second
	// maxCachedKeys bounds Record's lookup map of raw (unsanitised) keys;
	// beyond it a key takes the slow path (a mutex and a scan).
	maxCachedKeys = 4 * DefaultSegmentSeries
	// chunkBytes is the estimated size at which sendPending flushes: under
	// maxPayload, so that a chunk is one datagram.
	chunkBytes = maxPayload * 3 / 4
	// sampleBytes bounds one latency value in a line: ":" and up to 12
	// characters (seconds with six decimals, below 10^6 s; longer values
	// are rare and the quarter of maxPayload left over absorbs them).
	sampleBytes = 13
)

// Config configures a Client. The zero value works.
type Config struct {
	// Addr is host:port for UDP, or unixgram:///path for a Unix datagram
	// socket. Default DefaultAddr. A host name is resolved every
	// ResolveInterval, so an exporter recreated with a new address is
	// followed.
	Addr string
	// AppName is the app_name tag value. Default DefaultAppName.
	AppName string
	// FlushInterval is how often the flush goroutine sends what was
	// recorded. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// Segment holds what Record records until it is sent: in a worker, the
	// segment from OpenSegment. Nil: a private segment in this process's
	// memory (the supervisor's own Client, tests). The Client does not
	// close it; close it after the Client.
	Segment *Segment
	// CloseTimeout bounds Close's final flush. Default DefaultCloseTimeout.
	CloseTimeout time.Duration
	// ResolveInterval is how often a host name in Addr is resolved again.
	// Default DefaultResolveInterval; negative: resolve once.
	ResolveInterval time.Duration
	// Logger receives send errors (at most one line per errorLogEvery) and
	// resolution failures. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first field that cannot work.
func (c *Config) Validate() error {
	if c.FlushInterval < 0 {
		return errors.New("statsd: flush interval must not be negative")
	}
	if c.CloseTimeout < 0 {
		return errors.New("statsd: close timeout must not be negative")
	}
	if err := checkTagValue(c.AppName); err != nil {
		return err
	}
	return nil
}

// ErrUnsent is wrapped by errors of a flush that sent nothing (the
// exporter unreachable, a write failed, the time ran out); what it would
// have sent stays in the segment.
var ErrUnsent = errors.New("statsd: not sent")

// Client records requests into a Segment and sends them, with the pool
// events, as DogStatsD metrics from its flush goroutine.
type Client struct {
	cfg    Config
	appTag string
	seg    *Segment
	early  chan struct{} // Record asks for a flush: ring half full

	// The hot path's series lookup: a copy-on-write map read without a
	// lock; slotMu serialises its writers (a new series, once each).
	slots  atomic.Pointer[map[requestKey]int32]
	slotMu sync.Mutex

	ovMu     sync.Mutex // series beyond the segment's table
	overflow map[Series]*overflowSeries

	gaugeMu   sync.Mutex
	gauges    map[string]gaugeValue // the pool's gauges, re-sent at every flush
	restartMu sync.Mutex
	restarts  map[string]int64 // reason -> not yet sent

	// sendMu serialises every use of datadog-go: the flush goroutine,
	// SendRemainder and Close's final flush. Record never takes it.
	sendMu     sync.Mutex
	dd         *dd.Client
	target     string    // the address dd sends to (resolved)
	resolvedAt time.Time // when target was last resolved
	nextTry    time.Time // when to try connecting again after a failure
	tagCache   []*requestTags
	pend       pending
	chunkCtx   map[int]bool // latency contexts in the chunk being built
	dropLogged uint64       // Totals.DroppedSamples at the last log line

	errs    atomic.Uint64 // datadog-go write errors, ever
	logMu   sync.Mutex
	logged  time.Time // last rate-limited log line
	unseen  uint64    // errors since that line
	lastErr error

	closing   chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once

	// Injected by tests.
	now    func() time.Time
	lookup func(ctx context.Context, host string) ([]string, error)
}

type requestKey struct {
	method, endpoint string
	status           int
}

type requestTags struct{ count, latency []string }

type overflowSeries struct {
	unsent  int64
	samples []uint64 // whole microseconds
}

// envTags are datadog-go's environment variables that add tags or fields to
// every line (DD_ENV adds env:..., DD_CARDINALITY a card field the exporter
// cannot parse, ...). They would change the fixed tag keys, so New clears them
// for this process.
var envTags = []string{"DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID", "DD_CARDINALITY",
	"DATADOG_CARDINALITY", "DD_EXTERNAL_ENV"}

// New builds a Client and starts its flush goroutine. It fails only on a
// bad Config; an address that does not resolve or connect yet is retried by
// the flush goroutine, and Records wait in the segment meanwhile.
func New(cfg Config) (*Client, error) {
	return newClient(cfg, time.Now, net.DefaultResolver.LookupHost)
}

func newClient(cfg Config, now func() time.Time, lookup func(context.Context, string) ([]string, error)) (*Client, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.AppName == "" {
		cfg.AppName = DefaultAppName
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.ResolveInterval == 0 {
		cfg.ResolveInterval = DefaultResolveInterval
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
	c := &Client{
		cfg:      cfg,
		appTag:   "app_name:" + cfg.AppName,
		seg:      cfg.Segment,
		early:    make(chan struct{}, 1),
		overflow: map[Series]*overflowSeries{},
		chunkCtx: map[int]bool{},
		restarts: map[string]int64{},
		gauges:   map[string]gaugeValue{},
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		now:      now,
		lookup:   lookup,
	}
	if c.seg == nil {
		c.seg = newPrivateSegment()
	}
	c.slots.Store(&map[requestKey]int32{})
	c.sendMu.Lock()
	if _, err := c.conn(); err != nil {
		cfg.Logger.Warn("metrics address not usable yet; recording into the segment and retrying",
			"addr", cfg.Addr, "err", err, "every", retryEvery)
	}
	c.sendMu.Unlock()
	go c.loop()
	return c, nil
}

// newDD returns a datadog-go client with forkwatch's settings sending to
// target, a resolved address.
func (c *Client) newDD(target string) (*dd.Client, error) {
	opts := []dd.Option{
		// Counts and samples are handed over once per flush and sent as one
		// line per series: extended aggregation packs a series' samples
		// into name:v1:v2:...|h, without the sample rates that
		// WithMaxSamplesPerContext would send (the exporter turns those
		// into wrong counts). We flush the aggregator ourselves, so its own
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
		// sendError, so the flush is retried) keeps its default of 2048.
		dd.WithBufferPoolSize(bufferPool),
		// On a stale unixgram socket datadog-go redials each packet and
		// sleeps a quarter of this between "connection refused" attempts
		// (250 ms by default): shorter keeps a failing flush short, which
		// matters for Close. Only the flush goroutine waits either way.
		dd.WithConnectTimeout(connectTimeout),
		// Origin detection adds a container id field and client telemetry
		// adds series of its own; neither belongs in the contract.
		dd.WithoutOriginDetection(),
		dd.WithoutTelemetry(),
		dd.WithCardinality(dd.CardinalityNotSet),
		dd.WithErrorHandler(c.sendError),
	}
	if strings.HasPrefix(target, "unix") {
		return dd.New(target, opts...)
	}
	// UDP through a writer that sees a refusal at once (checkedUDP).
	w, err := dialCheckedUDP(target)
	if err != nil {
		return nil, err
	}
	client, err := dd.NewWithWriter(w, opts...)
	if err != nil {
		w.Close()
		return nil, err
	}
	return client, nil
}

// conn returns the datadog-go client, connecting or re-resolving first when
// it is time. Called with sendMu held.
func (c *Client) conn() (*dd.Client, error) {
	now := c.now()
	if c.dd != nil && (c.cfg.ResolveInterval < 0 || now.Sub(c.resolvedAt) < c.cfg.ResolveInterval) {
		return c.dd, nil
	}
	if c.dd == nil && now.Before(c.nextTry) {
		return nil, fmt.Errorf("%w: %s not usable yet", ErrUnsent, c.cfg.Addr)
	}
	c.resolvedAt = now
	target, err := c.resolve()
	if err != nil {
		if c.dd != nil {
			// Keep sending to the last address: a resolver hiccup is no
			// reason to stop.
			c.cfg.Logger.Debug("metrics address did not resolve; keeping the last one", "addr", c.cfg.Addr, "err", err)
			return c.dd, nil
		}
		c.nextTry = now.Add(retryEvery)
		return nil, fmt.Errorf("%w: %w", ErrUnsent, err)
	}
	if c.dd != nil && target == c.target {
		return c.dd, nil
	}
	client, err := c.newDD(target)
	if err != nil {
		if c.dd != nil {
			return c.dd, nil
		}
		c.nextTry = now.Add(retryEvery)
		return nil, fmt.Errorf("%w: %w", ErrUnsent, err)
	}
	if old := c.dd; old != nil {
		// Nothing is pending in it: every flush empties it.
		_ = old.Close()
		c.cfg.Logger.Info("metrics address changed; sending to the new one", "addr", c.cfg.Addr,
			"old", c.target, "new", target)
	}
	c.dd, c.target = client, target
	return client, nil
}

// resolve turns Addr into what datadog-go should dial: a Unix socket as it
// is, a host name into one of its IPs.
func (c *Client) resolve() (string, error) {
	if strings.HasPrefix(c.cfg.Addr, "unix://") || strings.HasPrefix(c.cfg.Addr, "unixgram://") {
		return c.cfg.Addr, nil
	}
	host, port, err := net.SplitHostPort(c.cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("statsd: address %q: %w", c.cfg.Addr, err)
	}
	if host == "" || net.ParseIP(host) != nil {
		return c.cfg.Addr, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	ips, err := c.lookup(ctx, host)
	if err != nil {
		return "", fmt.Errorf("statsd: resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("statsd: resolve %s: no addresses", host)
	}
	// The lowest address, so the choice is stable while the set is.
	slices.Sort(ips)
	return net.JoinHostPort(ips[0], port), nil
}

// loop is the flush goroutine.
func (c *Client) loop() {
	defer close(c.loopDone)
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
		case <-c.early:
		}
		c.sendMu.Lock()
		_ = c.flushLocked()
		c.sendMu.Unlock()
	}
}

// flushLocked sends everything not yet sent from this Client's own segment
// and state, and advances the watermarks only if datadog-go reported no
// error. Called with sendMu held.
func (c *Client) flushLocked() error {
	c.logDropped()
	client, err := c.conn()
	if err != nil {
		return err
	}
	c.seg.snapshot(&c.pend, false)
	if _, _, err := c.sendPending(client, c.seg, &c.pend, c.cachedTags); err != nil {
		return err
	}

	ov := c.takeOverflow()
	for k, o := range ov {
		t := c.tagsOf(k)
		if o.unsent > 0 {
			_ = client.Count(RequestCount, o.unsent, t.count, 1)
		}
		for _, us := range o.samples {
			_ = client.Histogram(RequestLatency, float64(us)/1e6, t.latency, 1)
		}
	}
	gauges := c.sendGauges(client)
	rs := c.takeRestarts()
	for reason, n := range rs {
		_ = client.Count(WorkerRestarts, n, []string{c.appTag, "reason:" + reason}, 1)
	}
	if len(ov) > 0 || len(gauges) > 0 || len(rs) > 0 {
		if err := c.flushDD(client); err != nil {
			c.putBack(ov, rs)
			c.gaugesUnsent(gauges)
			return err
		}
	}
	return nil
}

// flushDD flushes datadog-go (synchronous: the aggregator and the sender
// queue are on the socket when it returns) and reports whether any write
// failed meanwhile. Called with sendMu held, so every error is this flush's.
func (c *Client) flushDD(client *dd.Client) error {
	before := c.errs.Load()
	_ = client.Flush()
	if n := c.errs.Load() - before; n != 0 {
		return fmt.Errorf("%w: %d write errors", ErrUnsent, n)
	}
	return nil
}

// sendPending sends p in chunks of at most about one datagram, flushing
// datadog-go after each and advancing seg's watermarks over what the chunk
// carried. A chunk is one packet, so a failed write fails a whole chunk and
// nothing it carried is advanced or sent twice: an exporter that comes back
// in the middle of a flush costs no duplicates. Counts go first. It stops at
// the first failed chunk; the rest stays for the next try.
func (c *Client) sendPending(client *dd.Client, seg *Segment, p *pending, tags func(int) *requestTags) (counts []SeriesCount, samples int, err error) {
	est, from := 0, 0
	for i, d := range p.deltas {
		if d == 0 {
			continue
		}
		t := tags(i)
		_ = client.Count(RequestCount, int64(d), t.count, 1)
		counts = append(counts, SeriesCount{Count: d})
		counts[len(counts)-1].Series = seg.series(i)
		if est += lineBytes(RequestCount, t.count) + 21; est >= chunkBytes {
			if err := c.flushDD(client); err != nil {
				return nil, 0, err
			}
			seg.advanceCounts(p, from, i+1)
			from, est = i+1, 0
		}
	}
	if est > 0 {
		if err := c.flushDD(client); err != nil {
			return nil, 0, err
		}
	}
	seg.advanceCounts(p, from, len(p.deltas))

	ringFrom := p.start
	est = 0
	clear(c.chunkCtx)
	for k, v := range p.samples {
		i := sampleSlot(v)
		t := tags(i)
		_ = client.Histogram(RequestLatency, sampleUS(v), t.latency, 1)
		est += sampleBytes
		if !c.chunkCtx[i] {
			c.chunkCtx[i] = true
			est += lineBytes(RequestLatency, t.latency)
		}
		if est >= chunkBytes {
			if err := c.flushDD(client); err != nil {
				return counts, samples, err
			}
			samples = k + 1
			seg.advanceRing(ringFrom, p.pos[k]+1)
			ringFrom, est = p.pos[k]+1, 0
			clear(c.chunkCtx)
		}
	}
	if est > 0 {
		if err := c.flushDD(client); err != nil {
			return counts, samples, err
		}
	}
	seg.advanceRing(ringFrom, p.end)
	return counts, len(p.samples), nil
}

// lineBytes bounds the bytes of a line's name, type and tags.
func lineBytes(name string, tags []string) int {
	n := len(name) + 8
	for _, t := range tags {
		n += len(t) + 1
	}
	return n
}

// cachedTags are the tags of slot i of the Client's own segment.
func (c *Client) cachedTags(i int) *requestTags {
	for len(c.tagCache) <= i {
		c.tagCache = append(c.tagCache, c.tagsOf(c.seg.series(len(c.tagCache))))
	}
	return c.tagCache[i]
}

// tagsOf builds the tags of a series whose values are already sanitised.
func (c *Client) tagsOf(s Series) *requestTags {
	ep := "endpoint:" + s.Endpoint
	return &requestTags{
		count:   []string{c.appTag, "method:" + s.Method, ep, "http_status:" + strconv.Itoa(s.Status)},
		latency: []string{c.appTag, ep},
	}
}

func (c *Client) takeOverflow() map[Series]*overflowSeries {
	c.ovMu.Lock()
	defer c.ovMu.Unlock()
	if len(c.overflow) == 0 {
		return nil
	}
	taken := make(map[Series]*overflowSeries, len(c.overflow))
	for k, o := range c.overflow {
		if o.unsent > 0 || len(o.samples) > 0 {
			taken[k] = &overflowSeries{unsent: o.unsent, samples: o.samples}
			o.unsent, o.samples = 0, nil
		}
	}
	return taken
}

func (c *Client) takeRestarts() map[string]int64 {
	c.restartMu.Lock()
	defer c.restartMu.Unlock()
	if len(c.restarts) == 0 {
		return nil
	}
	rs := c.restarts
	c.restarts = map[string]int64{}
	return rs
}

// putBack returns what a failed flush took from process memory.
func (c *Client) putBack(ov map[Series]*overflowSeries, rs map[string]int64) {
	c.restartMu.Lock()
	for r, n := range rs {
		c.restarts[r] += n
	}
	c.restartMu.Unlock()
	c.ovMu.Lock()
	for k, o := range ov {
		cur := c.overflow[k]
		cur.unsent += o.unsent
		cur.samples = append(o.samples, cur.samples...)
	}
	c.ovMu.Unlock()
}

// sendError is datadog-go's error handler: it runs in datadog-go's sender
// goroutine, during one of our flushes.
func (c *Client) sendError(err error) {
	c.errs.Add(1)
	c.logLimited(err)
}

// logLimited logs at most one line per errorLogEvery, with the count of
// errors since the previous line.
func (c *Client) logLimited(err error) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	c.unseen++
	c.lastErr = err
	now := c.now()
	if !c.logged.IsZero() && now.Sub(c.logged) < errorLogEvery {
		return
	}
	c.cfg.Logger.Warn("sending metrics failed; serving goes on and the unsent metrics stay in the segment, retried every flush",
		"addr", c.cfg.Addr, "err", err, "errors", c.unseen, "since", c.logged)
	c.logged, c.unseen = now, 0
}

// logDropped logs new dropped samples, at most once per errorLogEvery.
func (c *Client) logDropped() {
	d := c.seg.hdr.dropped.Load()
	if d == c.dropLogged {
		return
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	if now := c.now(); c.logged.IsZero() || now.Sub(c.logged) >= errorLogEvery {
		c.cfg.Logger.Warn("latency samples dropped: the segment's ring is full because flushes fail; counts are kept",
			"addr", c.cfg.Addr, "dropped", d-c.dropLogged, "dropped_total", d)
		c.logged = now
		c.dropLogged = d
	}
}

// Record implements worker.Recorder. It writes only to the segment: no
// network, no lock a network call holds, no sleep, no allocation (after a
// series' first request).
func (c *Client) Record(method, endpoint string, status int, elapsed time.Duration) {
	i := c.slotFor(method, endpoint, status)
	if i < 0 {
		c.recordOverflow(method, endpoint, status, elapsed)
		return
	}
	if c.seg.record(i, wholeMicros(elapsed)) {
		select {
		case c.early <- struct{}{}:
		default:
		}
	}
}

// slotFor returns the segment slot of a series, or -1 if the table is full.
func (c *Client) slotFor(method, endpoint string, status int) int {
	k := requestKey{method, endpoint, status}
	if i, ok := (*c.slots.Load())[k]; ok {
		return int(i)
	}
	return c.newSlot(k)
}

func (c *Client) newSlot(k requestKey) int {
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	m := *c.slots.Load()
	if i, ok := m[k]; ok {
		return int(i)
	}
	// Keyed by the sanitised values in the segment, so raw values that
	// sanitise alike share a slot.
	i := c.seg.findSlot(SanitizeTagValue(k.method), SanitizeTagValue(k.endpoint), k.status)
	if len(m) < maxCachedKeys {
		next := maps.Clone(m)
		next[k] = int32(i)
		c.slots.Store(&next)
	}
	return i
}

// recordOverflow keeps a record of a series the segment has no room for in
// process memory (lost if the process is killed before the next flush).
func (c *Client) recordOverflow(method, endpoint string, status int, elapsed time.Duration) {
	c.seg.hdr.overflow.Add(1)
	k := Series{SanitizeTagValue(method), SanitizeTagValue(endpoint), status}
	c.ovMu.Lock()
	o := c.overflow[k]
	if o == nil {
		o = &overflowSeries{}
		c.overflow[k] = o
	}
	o.unsent++
	if len(o.samples) < len(c.seg.ring) {
		o.samples = append(o.samples, wholeMicros(elapsed))
	} else {
		c.seg.hdr.dropped.Add(1)
	}
	c.ovMu.Unlock()
}

// wholeMicros is d in whole microseconds, rounded up (see microseconds).
func wholeMicros(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Microsecond - 1) / time.Microsecond)
}

// microseconds is d in seconds, rounded up to a whole microsecond: the
// value sent for a latency. Values like 0.000123 instead of 0.000123456789
// make the histogram samples in each packet about half as long (fewer
// packets, less for the exporter to parse). Rounding up keeps every sample
// in its bucket: the bucket bounds in mapping.yml are whole microseconds,
// and for a whole number b, ceil(x) <= b exactly when x <= b. The sum gains
// under 1µs per request.
func microseconds(d time.Duration) float64 { return float64(wholeMicros(d)) / 1e6 }

// Remainder is what SendRemainder sent.
type Remainder struct {
	// Counts are the request counts sent per series (also when an error
	// stopped the sending part way).
	Counts []SeriesCount
	// Samples is the number of latency samples sent.
	Samples int
	// Unwritten counts ring entries the worker reserved but died before
	// writing: latency samples lost (their requests are counted).
	Unwritten int
}

// Requests is the sum of r.Counts.
func (r Remainder) Requests() uint64 {
	var n uint64
	for _, c := range r.Counts {
		n += c.Count
	}
	return n
}

// SendRemainder sends what a dead worker's segment holds beyond its sent
// watermarks, with the tags in the segment and this Client's app_name,
// flushes, advances the watermarks and returns what it sent. It is for the
// supervisor, after the worker process has been reaped (a live writer's
// half-written ring entries would be skipped as Unwritten). For a worker
// that exited cleanly it sends nothing. It fails, wrapping ErrUnsent and
// advancing nothing, when the exporter is unreachable or a write failed; it
// may then be called again.
func (c *Client) SendRemainder(seg *Segment) (Remainder, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	var p pending
	seg.snapshot(&p, true)
	var r Remainder
	r.Unwritten = p.holes
	tags := make([]*requestTags, len(p.counts))
	tagsOf := func(i int) *requestTags {
		if tags[i] == nil {
			tags[i] = c.tagsOf(seg.series(i))
		}
		return tags[i]
	}
	if len(p.samples) == 0 && !slices.ContainsFunc(p.deltas, func(d uint64) bool { return d > 0 }) {
		seg.advanceRing(p.start, p.end) // clears the holes, if any
		return r, nil
	}
	client, err := c.conn()
	if err != nil {
		return Remainder{}, fmt.Errorf("statsd: send remainder: %w", err)
	}
	counts, samples, err := c.sendPending(client, seg, &p, tagsOf)
	r.Counts, r.Samples = counts, samples
	if err != nil {
		return r, fmt.Errorf("statsd: send remainder: %w", err)
	}
	return r, nil
}

// WorkerRestart counts one worker exit with its reason, sent at the next
// flush.
func (c *Client) WorkerRestart(reason string) {
	reason = SanitizeTagValue(reason)
	c.restartMu.Lock()
	c.restarts[reason]++
	c.restartMu.Unlock()
}

// SendErrors is the number of write errors datadog-go has reported.
func (c *Client) SendErrors() uint64 { return c.errs.Load() }

// Close stops the flush goroutine and flushes once more, spending at most
// Config.CloseTimeout in all. What it could not send stays in the segment
// (for the supervisor's SendRemainder) and the error wraps ErrUnsent. It
// logs the send errors and dropped samples of the Client's life. Record
// must not be called after Close.
func (c *Client) Close() error {
	err := errors.New("statsd: client already closed")
	c.closeOnce.Do(func() { err = c.close() })
	return err
}

func (c *Client) close() error {
	deadline := time.NewTimer(c.cfg.CloseTimeout)
	defer deadline.Stop()
	close(c.closing)
	done := make(chan error, 1)
	go func() {
		<-c.loopDone // a flush under way finishes first
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		err := c.flushLocked()
		if c.dd != nil {
			if cerr := c.dd.Close(); err == nil && cerr != nil {
				err = cerr
			}
			c.dd = nil
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-deadline.C:
		// The goroutine is abandoned: it holds sendMu, so nothing else
		// sends through this Client again.
		err = fmt.Errorf("%w: final flush still running after %v", ErrUnsent, c.cfg.CloseTimeout)
	}
	t := c.seg.Totals()
	if n := c.errs.Load(); n > 0 || t.DroppedSamples > 0 || t.Overflow > 0 || err != nil {
		c.cfg.Logger.Warn("metrics client closed", "addr", c.cfg.Addr, "send_errors", n,
			"dropped_samples", t.DroppedSamples, "overflow_records", t.Overflow, "final_flush", errString(err))
	}
	return err
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
