package worker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// memRecorder keeps every record, for tests.
type memRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (m *memRecorder) Record(method, endpoint string, status int, elapsed time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if elapsed <= 0 {
		status = -status // makes a non-positive latency fail the comparison
	}
	m.recs = append(m.recs, fmt.Sprintf("%s %s %d", method, endpoint, status))
}

func (m *memRecorder) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.recs...)
}

func serve(t *testing.T, routes Routes, opts Options) (*Server, *fasthttputil.InmemoryListener, *memRecorder) {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	s, rec := serveOn(t, ln, routes, opts)
	return s, ln, rec
}

// serveOn serves routes on ln with a recording Server until the test ends,
// then requires a clean shutdown.
func serveOn(t *testing.T, ln net.Listener, routes Routes, opts Options) (*Server, *memRecorder) {
	t.Helper()
	rec := &memRecorder{}
	opts.Recorder = rec
	s, err := New(routes, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, rec
}

// raw sends one raw request on a new connection and returns the status line
// and the body.
func raw(t *testing.T, ln *fasthttputil.InmemoryListener, req string) (string, string) {
	t.Helper()
	c, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("read response to %q: %v", req[:min(len(req), 40)], err)
	}
	return fmt.Sprint(resp.StatusCode()), string(resp.Body())
}

func TestServerRecords(t *testing.T) {
	m := NewMux()
	m.Handle("/ok/", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("fine") })
	m.Handle("/panic/", func(ctx *fasthttp.RequestCtx) {
		var zero int
		ctx.SetBodyString(fmt.Sprint(1 / zero))
	})
	m.Handle("/panic-value/", func(ctx *fasthttp.RequestCtx) { panic("boom") })
	s, ln, rec := serve(t, m, Options{MaxHeaderBytes: 1024, MaxBodyBytes: 16})

	for _, tc := range []struct{ req, status, body, record string }{
		{"GET /ok/ HTTP/1.1\r\nHost: x\r\n\r\n", "200", "fine", "GET /ok/ 200"},
		{"GET /panic/ HTTP/1.1\r\nHost: x\r\n\r\n", "500", "runtime error: integer divide by zero", "GET /panic/ 500"},
		{"POST /panic-value/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "500", "boom", "POST /panic-value/ 500"},
		{"BREW /ok HTTP/1.1\r\nHost: x\r\n\r\n", "301", "", "OTHER /ok 301"},
		{"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n", "404", "Not Found", "GET unmatched 404"},
		{"GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", "431", "Request Header Fields Too Large", "OTHER unmatched 431"},
		{"POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n" + strings.Repeat("b", 17), "413", "Request Entity Too Large", "OTHER unmatched 413"},
		{"GET /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", "400", "Bad Request", "OTHER unmatched 400"},
	} {
		status, body := raw(t, ln, tc.req)
		if status != tc.status || (tc.body != "" && body != tc.body) {
			t.Errorf("%q: got %s %q, want %s %q", tc.req[:min(len(tc.req), 30)], status, body, tc.status, tc.body)
		}
		recs := rec.all()
		if len(recs) == 0 || recs[len(recs)-1] != tc.record {
			t.Errorf("%q: last record %q, want %q", tc.req[:min(len(tc.req), 30)], recs, tc.record)
		}
	}
	if got := s.Progress().Handled; got != 8 {
		t.Errorf("Handled = %d, want 8", got)
	}

	// A connection that sends nothing is not a request: nothing recorded.
	before := len(rec.all())
	c, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, _ = raw(t, ln, "GET /ok/ HTTP/1.1\r\nHost: x\r\n\r\n"); len(rec.all()) != before+1 {
		t.Errorf("records after an empty connection and one request: %d, want %d", len(rec.all()), before+1)
	}
}

// TestProgressShowsStuckRequest: a request that blocks shows as the oldest
// in flight with its endpoint, and its age grows.
func TestProgressShowsStuckRequest(t *testing.T) {
	release := make(chan struct{})
	m := NewMux()
	m.Handle("/stuck/", func(ctx *fasthttp.RequestCtx) { <-release })
	s, ln, _ := serve(t, m, Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw(t, ln, "GET /stuck/ HTTP/1.1\r\nHost: x\r\n\r\n")
	}()
	var first Progress
	deadline := time.Now().Add(5 * time.Second)
	for first = s.Progress(); first.Busy == 0 && time.Now().Before(deadline); first = s.Progress() {
		time.Sleep(5 * time.Millisecond)
	}
	if first.BusyWith != "/stuck/" {
		t.Fatalf("Progress = %+v, want busy with /stuck/", first)
	}
	deadline = time.Now().Add(5 * time.Second)
	for s.Progress().Busy <= first.Busy && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if later := s.Progress(); later.Busy <= first.Busy {
		t.Errorf("age did not grow: %v then %v", first.Busy, later.Busy)
	}
	close(release)
	<-done
	if p := s.Progress(); p.Busy != 0 || p.Handled != 1 {
		t.Errorf("after release Progress = %+v, want idle with 1 handled", p)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		o  Options
		ok bool
	}{
		"zero":             {Options{}, true},
		"negative timeout": {Options{ReadTimeout: -1}, false},
		"tiny header":      {Options{MaxHeaderBytes: 100}, false},
		"negative body":    {Options{MaxBodyBytes: -1}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", name, err, tc.ok)
		}
	}
}

var _ net.Listener = (*fasthttputil.InmemoryListener)(nil)
