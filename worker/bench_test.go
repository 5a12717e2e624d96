package worker

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/forkwatch/forkwatch/statsd"
)

// The middleware's hot path, with metrics and without. Run with
//
//	go test -run '^$' -bench . -benchmem ./worker/
//
// "nil" is the no-metrics baseline (no Recorder); "statsd" is the product's
// DogStatsD client (Record into its segment, a flush goroutine sending) to a
// UDP socket that a goroutine reads and discards.
// Compare each with "nil" from the same run.

// benchRecorders are the recorder set-ups compared.
func benchRecorders(b *testing.B) []struct {
	name string
	rec  Recorder
} {
	b.Helper()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	client, err := statsd.New(statsd.Config{Addr: sink.LocalAddr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return []struct {
		name string
		rec  Recorder
	}{
		{"nil", nil},
		{"statsd", client},
	}
}

func benchRoutes() *Mux {
	m := NewMux()
	m.Handle("/test/", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("rest") })
	return m
}

// BenchmarkMiddleware calls the server's handler directly with one reused
// RequestCtx: the middleware and routing only, no network.
func BenchmarkMiddleware(b *testing.B) {
	for _, rc := range benchRecorders(b) {
		b.Run(rc.name, func(b *testing.B) {
			benchHandle(b, Options{Recorder: rc.rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		})
	}
}

// BenchmarkServe sends keep-alive requests through fasthttp's in-memory
// listener: the whole server, client included, per request.
func BenchmarkServe(b *testing.B) {
	for _, rc := range benchRecorders(b) {
		b.Run(rc.name, func(b *testing.B) {
			s, err := New(benchRoutes(), Options{Recorder: rc.rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			ln := fasthttputil.NewInmemoryListener()
			go func() { _ = s.Serve(ln) }()
			b.Cleanup(func() { ln.Close() })
			client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://bench/test/")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := client.Do(req, resp); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if resp.StatusCode() != 200 {
				b.Fatalf("status %d", resp.StatusCode())
			}
		})
	}
}

// benchHandle runs b.N requests for /test/ through a Server with opts by
// calling its handler with one reused RequestCtx: the middleware and routing
// only, no network.
func benchHandle(b *testing.B, opts Options) {
	b.Helper()
	s, err := New(benchRoutes(), opts)
	if err != nil {
		b.Fatal(err)
	}
	var req fasthttp.Request
	req.SetRequestURI("http://bench/test/")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		s.handle(&ctx)
	}
	b.StopTimer()
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("status %d", ctx.Response.StatusCode())
	}
}
