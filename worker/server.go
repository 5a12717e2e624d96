// Package worker serves HTTP with fasthttp on a listener it is given, and
// wraps every request in middleware that times it with the monotonic clock
// and, after the handler (panics included), hands method, endpoint label,
// status and latency to a Recorder.
//
// Requests that fasthttp rejects before any handler runs (400, 408, 413, 431)
// are recorded too, under the endpoint label Unmatched and the method label
// MethodOther. Label values come
// from fixed sets: the route templates of a Routes, Unmatched, and the
// standard HTTP methods or OTHER.
//
// The package knows nothing about process supervision or metric transport:
// Progress reports what a supervisor needs to judge hangs, and a Recorder is
// whatever the application plugs in.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Recorder receives one call per finished request. It is called from the
// request's goroutine and must be safe for concurrent use and cheap.
type Recorder interface {
	Record(method, endpoint string, status int, elapsed time.Duration)
}

// Tee records to every Recorder in turn.
func Tee(rs ...Recorder) Recorder { return tee(rs) }

type tee []Recorder

func (t tee) Record(method, endpoint string, status int, elapsed time.Duration) {
	for _, r := range t {
		r.Record(method, endpoint, status, elapsed)
	}
}

// Defaults for the zero values of Options.
const (
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxHeaderBytes = 8 << 10
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxConns       = 10000
	DefaultLinger         = time.Second
)

// Options configure a Server. Zero values take the defaults above.
type Options struct {
	// Recorder receives every request; nil records nothing.
	Recorder Recorder
	// Logger receives panics and serving errors. Default slog.Default().
	Logger *slog.Logger
	// ReadTimeout bounds reading one request, headers and body; a client
	// that trickles bytes is cut off after it (408 if nothing usable came).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers; larger gets 431.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body; larger gets 413.
	MaxBodyBytes int
	// MaxConns bounds the connections this worker serves at once; fasthttp
	// answers one more with 503 and closes it (not recorded: it never
	// reaches the middleware).
	MaxConns int
	// Linger is how long a connection closed after an error response (400,
	// 413, 431) keeps reading and discarding what the client still sends,
	// so that the kernel delivers the response instead of resetting the
	// connection (see lingerConn). At most MaxLingerBytes are read. Negative:
	// close at once. Timed-out connections (408) never linger.
	Linger time.Duration
	// Name is the Server header; empty sends none.
	Name string
	// MaxRequests, if set, closes the channel Full returns once this many
	// requests have finished, so the worker can ask to be recycled at once.
	MaxRequests uint64
	// AccessLog, if set, receives one Common Log Format line per request
	// (rejected ones included), without ever blocking a request. The
	// caller closes it after Shutdown.
	AccessLog *AccessLog
	// Configure, if set, is called with the fasthttp.Server once New has
	// set it up, to change settings these Options do not name (Concurrency
	// limits, ReduceMemoryUsage, TLS config, ...). It must leave Handler and
	// ErrorHandler alone: they are the recording middleware.
	Configure func(*fasthttp.Server)
}

// Validate reports the first option that cannot work.
func (o *Options) Validate() error {
	// Linger may be negative: it means off.
	for _, d := range []time.Duration{o.ReadTimeout, o.WriteTimeout, o.IdleTimeout} {
		if d < 0 {
			return errors.New("worker: timeouts must not be negative")
		}
	}
	if o.MaxHeaderBytes < 0 || o.MaxBodyBytes < 0 || o.MaxConns < 0 {
		return errors.New("worker: limits must not be negative")
	}
	if o.MaxHeaderBytes != 0 && o.MaxHeaderBytes < 1024 {
		return fmt.Errorf("worker: max header bytes %d: must be at least 1024", o.MaxHeaderBytes)
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
}

// Server serves one Routes with the recording middleware.
type Server struct {
	routes   Routes
	rec      Recorder
	log      *slog.Logger
	srv      *fasthttp.Server
	handled  atomic.Uint64
	inflight inflight
	max      uint64
	full     chan struct{}
	linger   time.Duration
	// acceptFailed counts accepts that failed for lack of descriptors.
	acceptFailed atomic.Uint64
	access       *AccessLog
}

// New returns a Server for routes, or the first option that cannot work.
func New(routes Routes, opts Options) (*Server, error) {
	if routes == nil {
		return nil, errors.New("worker: no routes")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	s := &Server{routes: routes, rec: opts.Recorder, log: opts.Logger, max: opts.MaxRequests, full: make(chan struct{}), linger: opts.Linger, access: opts.AccessLog}
	if s.rec == nil {
		s.rec = nopRecorder{}
	}
	s.inflight.init()
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.rejected,
		Name:                  opts.Name,
		NoDefaultServerHeader: opts.Name == "",
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		IdleTimeout:           opts.IdleTimeout,
		ReadBufferSize:        opts.MaxHeaderBytes,
		MaxRequestBodySize:    opts.MaxBodyBytes,
		Concurrency:           opts.MaxConns,
		CloseOnShutdown:       true,
		NoDefaultDate:         false,
		Logger:                fasthttpLogger{opts.Logger},
	}
	if opts.Configure != nil {
		opts.Configure(s.srv)
	}
	return s, nil
}

// Serve serves ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	ln = patientListener{Listener: ln, log: s.log, failed: &s.acceptFailed, sleep: time.Sleep}
	if s.linger > 0 {
		ln = lingerListener{Listener: ln, linger: s.linger}
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting, lets in-flight requests finish and closes idle
// connections. If ctx ends first it returns ctx.Err() with requests still
// running.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// Progress is what a supervisor needs to tell a busy worker from a hung one.
type Progress struct {
	Handled uint64 // requests finished
	// AcceptFailed counts accepts that failed for lack of descriptors or
	// memory and were retried (see patientListener).
	AcceptFailed uint64
	Busy         time.Duration // age of the oldest request in progress; 0 when idle
	BusyWith     string        // that request's endpoint label
}

// Progress reports requests finished and the oldest request in progress.
func (s *Server) Progress() Progress {
	age, endpoint := s.inflight.oldest()
	return Progress{Handled: s.handled.Load(), Busy: age, BusyWith: endpoint, AcceptFailed: s.acceptFailed.Load()}
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	endpoint, h := s.routes.Route(ctx)
	slot := s.inflight.begin(ctx.ID(), endpoint, start)
	defer s.finish(ctx, endpoint, start, slot)
	h(ctx)
}

// finish runs deferred so that a panicking handler is answered and counted.
func (s *Server) finish(ctx *fasthttp.RequestCtx, endpoint string, start time.Time, slot *shard) {
	if r := recover(); r != nil {
		msg := fmt.Sprint(r)
		if err, ok := r.(error); ok {
			msg = err.Error()
		}
		s.log.Error("handler panic", "endpoint", endpoint, "panic", msg, "stack", string(debug.Stack()))
		ctx.Response.Reset()
		ctx.Error(msg, fasthttp.StatusInternalServerError)
	}
	slot.end(ctx.ID())
	s.rec.Record(Method(ctx.Method()), endpoint, ctx.Response.StatusCode(), time.Since(start))
	if s.access != nil {
		s.access.log(ctx, true)
	}
	s.count()
}

func (s *Server) count() {
	if n := s.handled.Add(1); n == s.max {
		close(s.full)
	}
}

// Full is closed when Options.MaxRequests requests have finished; it never
// closes without MaxRequests.
func (s *Server) Full() <-chan struct{} { return s.full }

// rejected answers and records a request fasthttp could not read or parse.
func (s *Server) rejected(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, io.EOF) {
		// The client closed its side in the middle of a request (one that
		// closes before sending a byte never gets here). Like net/http,
		// answer nothing and count nothing; closing now stops fasthttp from
		// writing the empty 200 it would send after this handler.
		_ = ctx.Conn().Close()
		return
	}
	status, msg := statusForError(err)
	ctx.Error(msg, status)
	if status != fasthttp.StatusRequestTimeout {
		// Unread request bytes may be left: let the response get through.
		// A client that timed out is slow by definition; not worth waiting.
		armLinger(ctx.Conn())
	}
	// The method is not known reliably here (a failed body read resets
	// the request, which then says GET whatever was sent), so rejections
	// are all OTHER: one series per status, and no label that lies.
	s.rec.Record(MethodOther, Unmatched, status, time.Since(ctx.Time()))
	if s.access != nil {
		s.access.log(ctx, false)
	}
	s.count()
}

func statusForError(err error) (int, string) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "Request Entity Too Large"
	case errors.As(err, &netErr) && netErr.Timeout():
		return fasthttp.StatusRequestTimeout, "Request Timeout"
	default:
		return fasthttp.StatusBadRequest, "Bad Request"
	}
}

// MethodOther is the method label of every method outside the standard set,
// and of requests rejected before routing (400, 408, 413, 431).
const MethodOther = "OTHER"

// Method maps a request method to its label: the standard methods as they
// are, anything else MethodOther.
func Method(m []byte) string {
	switch string(m) { // the compiler does not allocate for this conversion
	case fasthttp.MethodGet:
		return fasthttp.MethodGet
	case fasthttp.MethodHead:
		return fasthttp.MethodHead
	case fasthttp.MethodPost:
		return fasthttp.MethodPost
	case fasthttp.MethodPut:
		return fasthttp.MethodPut
	case fasthttp.MethodPatch:
		return fasthttp.MethodPatch
	case fasthttp.MethodDelete:
		return fasthttp.MethodDelete
	case fasthttp.MethodConnect:
		return fasthttp.MethodConnect
	case fasthttp.MethodOptions:
		return fasthttp.MethodOptions
	case fasthttp.MethodTrace:
		return fasthttp.MethodTrace
	}
	return MethodOther
}

type nopRecorder struct{}

func (nopRecorder) Record(string, string, int, time.Duration) {}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "source", "fasthttp")
}
