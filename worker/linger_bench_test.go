package worker

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// BenchmarkLinger measures what wrapping every connection for lingering
// costs on the request path: the same server with Linger on (the default)
// and off, on one keep-alive connection and with a new connection per
// request. Compare each pair's ns/op and allocs/op (server and client run in
// this process, so allocs/op counts both):
//
//	go test -run '^$' -bench Linger -count 5 ./worker
func BenchmarkLinger(b *testing.B) {
	req := []byte("GET /ok/ HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, mode := range []struct {
		name   string
		linger Options
	}{{"on", Options{}}, {"off", Options{Linger: -1}}} {
		b.Run("keepalive/linger="+mode.name, func(b *testing.B) {
			addr := serveBench(b, mode.linger)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				readResponse(b, br)
			}
		})
		b.Run("conn-per-request/linger="+mode.name, func(b *testing.B) {
			addr := serveBench(b, mode.linger)
			closeReq := []byte("GET /ok/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(closeReq); err != nil {
					b.Fatal(err)
				}
				readResponse(b, bufio.NewReader(c))
				c.Close()
			}
		})
	}
}

func serveBench(b *testing.B, opts Options) string {
	b.Helper()
	s, err := New(okRoutes(), opts)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	b.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// readResponse reads one response to GET /ok/ ("fine", 4 bytes of body).
func readResponse(b *testing.B, br *bufio.Reader) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) == 2 {
			break
		}
		if bytes.HasPrefix(line, []byte("HTTP/1.1 ")) && !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
			b.Fatalf("response %q", line)
		}
	}
	if _, err := br.Discard(4); err != nil {
		b.Fatal(err)
	}
}
