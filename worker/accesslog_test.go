package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccessLogLines: one Common Log Format line per request, rejected ones
// included, with what a client sends escaped so it cannot forge a line or
// a field.
func TestAccessLogLines(t *testing.T) {
	m := NewMux()
	m.Handle("/ok/", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("fine") })
	var out lockedBuffer
	access := NewAccessLog(&out, 0)
	s, err := New(m, Options{AccessLog: access, MaxBodyBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	for _, req := range []string{
		"GET /ok/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /ok/?q=%22x%22&a=\"b\" HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /nowhere HTTP/1.0\r\n\r\n",
		"POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n" + strings.Repeat("b", 17),
	} {
		raw(t, ln, req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := access.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	const prefix = `^\S+ - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] `
	want := []string{
		`"GET /ok/ HTTP/1.1" 200 4`,
		`"GET /ok/\?q=%22x%22&a=\\x22b\\x22 HTTP/1.1" 200 4`,
		`"GET /nowhere HTTP/1.0" 404 9`,
		`"-" 413 24`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !regexp.MustCompile(prefix + w + "$").MatchString(lines[i]) {
			t.Errorf("line %d %q, want %s%s", i, lines[i], prefix, w)
		}
	}
	if access.Written() != 4 || access.Dropped() != 0 {
		t.Errorf("written %d dropped %d, want 4, 0", access.Written(), access.Dropped())
	}
}

// blockedWriter blocks every Write until released: a full disk, a pipe
// nobody reads.
type blockedWriter struct {
	release chan struct{}
	lockedBuffer
}

func (b *blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.lockedBuffer.Write(p)
}

// TestAccessLogNeverBlocks: with the writer stuck, requests go on at full
// speed; the lines that do not fit in the buffer are dropped and counted,
// and the ones buffered are written once the writer moves, whole, in few
// writes.
func TestAccessLogNeverBlocks(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	access := NewAccessLog(w, 8)
	var req fasthttp.Request
	req.SetRequestURI("/ok/")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}, nil)
	ctx.SetStatusCode(200)
	ctx.SetBodyString("fine")
	start := time.Now()
	const n = 1000
	for i := 0; i < n; i++ {
		access.log(&ctx, true)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%d log calls with a stuck writer took %s", n, d)
	}
	close(w.release)
	if err := access.Close(); err != nil {
		t.Fatal(err)
	}
	written, dropped := access.Written(), access.Dropped()
	// Written: the 8 buffered, plus the batch the writer took before it
	// blocked (at most 4 KiB of lines).
	if written+dropped != n || written < 8 || written > 8+accessLogBatch/50 {
		t.Errorf("written %d + dropped %d, want %d with 8 to %d written and the rest dropped", written, dropped, n, 8+accessLogBatch/50)
	}
	access.log(&ctx, true) // after Close: dropped, no panic
	if access.Dropped() != dropped+1 {
		t.Errorf("a line after Close: dropped %d, want %d", access.Dropped(), dropped+1)
	}
	lines := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if uint64(len(lines)) != written || !strings.HasPrefix(lines[0], `192.0.2.1 - - [`) {
		t.Errorf("%d lines for %d written; first %q", len(lines), written, lines[0])
	}
	if w.n > 3 {
		t.Errorf("%d lines in %d writes: want them batched", written, w.n)
	}
}

// BenchmarkAccessLog is BenchmarkMiddleware without metrics, with and
// without an access log writing to io.Discard: what -access-log costs a
// request. go test -run '^$' -bench AccessLog -benchmem ./worker/
func BenchmarkAccessLog(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if on {
				opts.AccessLog = NewAccessLog(io.Discard, 0)
				defer opts.AccessLog.Close()
			}
			benchHandle(b, opts)
			if on && opts.AccessLog.Dropped() > uint64(b.N)/2 {
				b.Logf("dropped %d of %d lines", opts.AccessLog.Dropped(), b.N)
			}
		})
	}
}
