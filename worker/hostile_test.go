package worker

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serveTCP serves routes on a real loopback TCP socket: lingering is about
// what the kernel does with unread bytes, which an in-memory pipe cannot
// show.
func serveTCP(t *testing.T, routes Routes, opts Options) (string, *memRecorder) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, rec := serveOn(t, ln, routes, opts)
	return ln.Addr().String(), rec
}

func okRoutes() *Mux {
	m := NewMux()
	m.Handle("/ok/", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("fine") })
	return m
}

// sendAllThenRead is the hostile client: it writes the whole request before
// it reads anything, as a naive client or an attacker's script does, then
// reads the response.
func sendAllThenRead(addr string, req []byte) (int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// TestRejectionsReachTheClient: oversize headers and bodies, far larger than
// the kernel's socket buffers, still get their 431 and 413 to a client that
// sends everything before reading; malformed requests get 400. Each is
// recorded under unmatched with its status.
func TestRejectionsReachTheClient(t *testing.T) {
	addr, rec := serveTCP(t, okRoutes(), Options{MaxHeaderBytes: 4096, MaxBodyBytes: 4096})
	big := strings.Repeat("a", 8<<20) // more than rmem + wmem can hold at once
	for name, tc := range map[string]struct {
		req    string
		status int
	}{
		"header 200 kB":     {"GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Big: " + big[:200000] + "\r\n\r\n", 431},
		"header 8 MB":       {"GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431},
		"path 8 MB":         {"GET /" + big + " HTTP/1.1\r\nHost: x\r\n\r\n", 431},
		"body 8 MB":         {"POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, 413},
		"chunked body 8 MB": {"POST /ok/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(big)), 16) + "\r\n" + big + "\r\n0\r\n\r\n", 413},
		"bad length":        {"GET /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400},
		"no version":        {"GET /ok/\r\nHost: x\r\n\r\n", 400},
		"binary garbage":    {"\x00\x01\x02\xff\xfe GET\r\n\x7f\r\n\r\n", 400},
		"garbage then 8 MB": {"\x16\x03\x01\x02\x00\r\n\r\n" + big, 400},
	} {
		before := len(rec.all())
		status, err := sendAllThenRead(addr, []byte(tc.req))
		if err != nil || status != tc.status {
			t.Errorf("%s: got %d, %v; want %d", name, status, err, tc.status)
			continue
		}
		recs := rec.all()
		want := MethodOther + " " + Unmatched + " " + strconv.Itoa(tc.status)
		if len(recs) != before+1 || recs[len(recs)-1] != want {
			t.Errorf("%s: records %q, want one more ending in %q", name, recs[before:], want)
		}
	}
}

// TestSlowClientCutOff: a client that sends one header byte at a time is
// cut off at ReadTimeout, whatever it keeps sending, and gets a 408 that is
// recorded; meanwhile other clients are served at once.
func TestSlowClientCutOff(t *testing.T) {
	const timeout = 400 * time.Millisecond
	addr, rec := serveTCP(t, okRoutes(), Options{ReadTimeout: timeout})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		// Reads whatever comes back until the server closes.
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
			t.Errorf("slow client got %q, want a 408", b)
		}
		closed <- time.Since(start)
	}()
	trickle := "GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 100)
	var cut time.Duration
loop:
	for i := 0; i < len(trickle); i++ {
		select {
		case cut = <-closed:
			break loop
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := c.Write([]byte{trickle[i]}); err != nil {
			break
		}
		if i == 3 {
			// Another client is served while the slow one holds its conn.
			if status, err := sendAllThenRead(addr, []byte("GET /ok/ HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil || status != 200 {
				t.Errorf("normal request during slow one: %d, %v", status, err)
			}
		}
	}
	if cut == 0 {
		select {
		case cut = <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("slow client not cut off within 5s")
		}
	}
	if cut < timeout || cut > timeout+time.Second {
		t.Errorf("slow client cut off after %v, want about %v", cut, timeout)
	}
	recs := rec.all()
	if len(recs) != 2 || recs[1] != "OTHER unmatched 408" {
		t.Errorf("records %q, want the normal 200 then an unmatched 408", recs)
	}
}

// TestLingerOff: with a negative Linger the connection closes at once, and a
// request larger than the socket buffers then ends in a reset, not a 431:
// what lingering is for.
func TestLingerOff(t *testing.T) {
	addr, _ := serveTCP(t, okRoutes(), Options{MaxHeaderBytes: 4096, Linger: -1})
	status, err := sendAllThenRead(addr, []byte("GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 32<<20)+"\r\n\r\n"))
	if err == nil {
		t.Fatalf("32 MB header without linger: got %d and no error; want the reset this package exists to avoid", status)
	}
}

// TestTruncatedRequest: a client that closes its side in the middle of the
// headers gets no response at all (not fasthttp's empty 200) and nothing is
// recorded; a truncated body is a 400, recorded.
func TestTruncatedRequest(t *testing.T) {
	addr, rec := serveTCP(t, okRoutes(), Options{})
	for name, tc := range map[string]struct {
		req, prefix, record string
	}{
		"request line":   {"GET /o", "", ""},
		"headers":        {"GET /ok/ HTTP/1.1\r\nHost: x\r\n", "", ""},
		"binary":         {"\xff\xfe", "", ""},
		"body":           {"POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", "HTTP/1.1 400 ", "OTHER unmatched 400"},
		"whole, control": {"GET /ok/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 ", "GET /ok/ 200"},
	} {
		before := len(rec.all())
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(tc.req)); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasPrefix(string(got), tc.prefix) || (tc.prefix == "" && len(got) > 0) {
			t.Errorf("%s: got %q, %v; want a response starting %q", name, got, err, tc.prefix)
		}
		recs := rec.all()[before:]
		if (tc.record == "" && len(recs) != 0) || (tc.record != "" && (len(recs) != 1 || recs[0] != tc.record)) {
			t.Errorf("%s: records %q, want %q", name, recs, tc.record)
		}
	}
}
