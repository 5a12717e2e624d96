package worker

import (
	"io"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Access log sizes.
const (
	// DefaultAccessLogBuffer is how many lines an AccessLog holds for its
	// writer; a request that finds it full drops its line (counted).
	DefaultAccessLogBuffer = 4096
	// accessLogBatch bounds one write: whole lines only, at most PIPE_BUF
	// bytes (unless one line is longer), so that the lines of workers
	// writing to one pipe or O_APPEND file never interleave.
	accessLogBatch = 4096
	// clfTime is the Common Log Format's time layout.
	clfTime = "02/Jan/2006:15:04:05 -0700"
)

// AccessLog writes one line per request in the Common Log Format:
//
//	127.0.0.1 - - [26/Nov/2026:12:00:00 +0000] "GET /test/ HTTP/1.1" 200 4
//
// The request's goroutine formats its line and hands it to a buffered
// channel without waiting; one writer goroutine writes the lines in
// batches. When the channel is full (the writer is slower than the
// requests) the line is dropped and counted, so a slow disk or a blocked
// pipe never slows serving. Set it as Options.AccessLog.
type AccessLog struct {
	lines   chan []byte
	w       io.Writer
	dropped atomic.Uint64
	written atomic.Uint64
	errs    atomic.Uint64
	done    chan struct{}
	mu      sync.RWMutex // read: queueing a line; write: closing
	closed  bool
	pool    sync.Pool
}

// NewAccessLog starts an AccessLog writing to w with room for buffer lines
// (DefaultAccessLogBuffer if 0). Close it to write what it holds.
func NewAccessLog(w io.Writer, buffer int) *AccessLog {
	if buffer <= 0 {
		buffer = DefaultAccessLogBuffer
	}
	a := &AccessLog{lines: make(chan []byte, buffer), w: w, done: make(chan struct{})}
	a.pool.New = func() any { b := make([]byte, 0, 256); return &b }
	go a.write()
	return a
}

// Dropped is how many lines were dropped because the buffer was full.
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

// Written is how many lines were written.
func (a *AccessLog) Written() uint64 { return a.written.Load() }

// Errors is how many writes failed (their lines are lost).
func (a *AccessLog) Errors() uint64 { return a.errs.Load() }

// Close writes the lines still buffered and stops the writer. Call it
// after Server.Shutdown; a request still finishing after Close is counted
// as dropped.
func (a *AccessLog) Close() error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.lines)
	}
	a.mu.Unlock()
	<-a.done
	return nil
}

func (a *AccessLog) write() {
	defer close(a.done)
	batch := make([]byte, 0, accessLogBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := a.w.Write(batch); err != nil {
			a.errs.Add(1)
		}
		batch = batch[:0]
	}
	add := func(line []byte) {
		if len(batch) > 0 && len(batch)+len(line) > accessLogBatch {
			flush()
		}
		batch = append(batch, line...)
		a.written.Add(1)
		a.put(line)
	}
	for line := range a.lines {
		add(line)
		// The lines already waiting go into the same write.
		for more := true; more; {
			select {
			case next, ok := <-a.lines:
				if !ok {
					flush()
					return
				}
				add(next)
			default:
				more = false
			}
		}
		flush()
	}
}

func (a *AccessLog) put(line []byte) {
	line = line[:0]
	a.pool.Put(&line)
}

// log formats ctx's line and queues it, or drops it if the queue is full.
// requestLine is false for a request fasthttp could not parse ("-").
func (a *AccessLog) log(ctx *fasthttp.RequestCtx, requestLine bool) {
	bp := a.pool.Get().(*[]byte)
	b := appendCLF((*bp)[:0], ctx, requestLine)
	a.mu.RLock()
	queued := false
	if !a.closed {
		select {
		case a.lines <- b:
			queued = true
		default:
		}
	}
	a.mu.RUnlock()
	if !queued {
		a.dropped.Add(1)
		a.put(b)
	}
}

// appendCLF appends ctx's Common Log Format line: remote host, ident and
// user (always "-"), the time the request started, the request line,
// status, body bytes ("-" for none).
func appendCLF(b []byte, ctx *fasthttp.RequestCtx, requestLine bool) []byte {
	if ip, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		b = ip.Unmap().AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, " - - ["...)
	b = ctx.Time().AppendFormat(b, clfTime)
	b = append(b, "] \""...)
	if requestLine {
		b = appendEscaped(b, ctx.Method())
		b = append(b, ' ')
		b = appendEscaped(b, ctx.RequestURI())
		b = append(b, ' ')
		b = appendEscaped(b, ctx.Request.Header.Protocol())
	} else {
		b = append(b, '-')
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, ' ')
	if n := len(ctx.Response.Body()); n > 0 {
		b = strconv.AppendInt(b, int64(n), 10)
	} else {
		b = append(b, '-')
	}
	return append(b, '\n')
}

// appendEscaped appends s with quotes, backslashes and bytes outside
// printable ASCII written as \xHH, as Apache does: a client cannot forge a
// line or a field of the log.
func appendEscaped(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range s {
		if c < ' ' || c > '~' || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}
