package statsd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sink is a DogStatsD receiver that adds up what arrives.
type sink struct {
	conn    net.PacketConn
	counts  map[string]int // request_count value per tag set
	samples map[string]int // latency samples per tag set
}

func newSink(t *testing.T, network, addr string) *sink {
	t.Helper()
	conn, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &sink{conn: conn, counts: map[string]int{}, samples: map[string]int{}}
}

func udpSink(t *testing.T) (*sink, string) {
	t.Helper()
	s := newSink(t, "udp", "127.0.0.1:0")
	return s, s.conn.LocalAddr().String()
}

func (s *sink) total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// read adds up what arrives until counts and samples reach the wanted
// totals, then for settle longer, so that anything extra is seen too.
func (s *sink) read(t *testing.T, counts, samples int, settle time.Duration) {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s.total(s.counts) >= counts && s.total(s.samples) >= samples {
			if settle <= 0 {
				return
			}
			deadline, settle = time.Now().Add(settle), 0
		}
		_ = s.conn.SetReadDeadline(deadline)
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			if settle > 0 {
				t.Fatalf("received %d counts and %d samples, want %d and %d", s.total(s.counts), s.total(s.samples), counts, samples)
			}
			return
		}
		for _, line := range strings.Split(strings.TrimSpace(string(buf[:n])), "\n") {
			head, tags, _ := strings.Cut(line, "|#")
			name, values, _ := strings.Cut(head, ":")
			values, _, _ = strings.Cut(values, "|")
			switch name {
			case RequestCount:
				v, _ := strconv.Atoi(values)
				s.counts[tags] += v
			case RequestLatency:
				s.samples[tags] += strings.Count(values, ":") + 1
			}
		}
	}
}

// kill stops c's flush goroutine without a final flush: what a SIGKILL
// leaves behind.
func kill(c *Client) {
	c.closeOnce.Do(func() {
		close(c.closing)
		<-c.loopDone
	})
}

// flushNow runs one flush of c's flush goroutine's kind.
func flushNow(t *testing.T, c *Client) {
	t.Helper()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.flushLocked(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// mappings returns a new segment (the supervisor's mapping) and a second,
// independent mapping of the same memfd (what the worker maps).
func mappings(t *testing.T, opts SegmentOptions) (sup, wrk *Segment) {
	t.Helper()
	sup, err := NewSegment(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close() })
	fd, err := unix.Dup(int(sup.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	wrk, err = OpenSegment(os.NewFile(uintptr(fd), "worker-segment"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrk.Close() })
	if &sup.mem[0] == &wrk.mem[0] {
		t.Fatal("one mapping, want two")
	}
	return sup, wrk
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const (
	tagsGetA  = "app_name:webapp,method:GET,endpoint:/a,http_status:200"
	tagsPostB = "app_name:webapp,method:POST,endpoint:/b_x,http_status:503"
	latA      = "app_name:webapp,endpoint:/a"
	latB      = "app_name:webapp,endpoint:/b_x"
)

// recordN records n requests, alternating two series (one needing
// sanitising), into c.
func recordN(c *Client, n int) {
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			c.Record("GET", "/a", 200, time.Duration(i)*time.Microsecond)
		} else {
			c.Record("POST", "/b|x", 503, time.Millisecond)
		}
	}
}

// TestSegmentTwoMappings: what a writer records on one mapping, a reader on
// another mapping of the same memfd sees, series keys included.
func TestSegmentTwoMappings(t *testing.T) {
	sup, wrk := mappings(t, SegmentOptions{})
	_, addr := udpSink(t)
	w := newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: wrk})
	recordN(w, 7)
	got := sup.Totals()
	want := []SeriesCount{{Series{"GET", "/a", 200}, 4}, {Series{"POST", "/b_x", 503}, 3}}
	if len(got.Served) != 2 || got.Served[0] != want[0] || got.Served[1] != want[1] {
		t.Errorf("totals on the other mapping %+v, want %+v", got.Served, want)
	}
	if n := sup.hdr.write.Load(); n != 7 {
		t.Errorf("ring write index %d on the other mapping, want 7", n)
	}
}

// TestOpenSegmentMismatch: a file that is not this build's segment is a
// clear error, not a crash later.
func TestOpenSegmentMismatch(t *testing.T) {
	for name, tc := range map[string]struct {
		size  int
		patch func(h *segHeader)
	}{
		"too short": {size: 16},
		"zeros":     {size: segSize(4, 4)},
		"version":   {size: segSize(4, 4), patch: func(h *segHeader) { h.version = 99 }},
		"size":      {size: segSize(4, 4) + 4096, patch: func(h *segHeader) {}},
	} {
		t.Run(name, func(t *testing.T) {
			fd, err := unix.MemfdCreate("bad", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "bad")
			defer f.Close()
			if err := unix.Ftruncate(fd, int64(tc.size)); err != nil {
				t.Fatal(err)
			}
			if tc.patch != nil {
				mem, err := unix.Mmap(fd, 0, tc.size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				if err != nil {
					t.Fatal(err)
				}
				h := (*segHeader)(unsafePointer(mem))
				*h = segHeader{magic: segMagic, version: segVersion, hdrSize: segHdrSize, size: uint64(segSize(4, 4)),
					series: 4, slotSize: 448, samples: 4}
				tc.patch(h)
				unix.Munmap(mem)
			}
			if _, err := OpenSegment(f); !errors.Is(err, ErrSegment) {
				t.Errorf("OpenSegment = %v, want ErrSegment", err)
			}
		})
	}
}

// TestWorkerDiesMidWindow: a worker records and is killed before any
// flush; the supervisor's SendRemainder, on its own mapping, sends exactly
// those requests with the worker's tags, and a second call sends nothing.
func TestWorkerDiesMidWindow(t *testing.T) {
	sup, wrk := mappings(t, SegmentOptions{})
	s, addr := udpSink(t)
	w := newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: wrk})
	const n = 1001
	recordN(w, n)
	kill(w)

	sc := newTestClient(t, Config{Addr: addr})
	rem, err := sc.SendRemainder(sup)
	if err != nil {
		t.Fatal(err)
	}
	if rem.Requests() != n || rem.Samples != n || rem.Unwritten != 0 {
		t.Errorf("remainder %+v, want %d requests and samples", rem, n)
	}
	s.read(t, n, n, 200*time.Millisecond)
	if s.counts[tagsGetA] != 501 || s.counts[tagsPostB] != 500 || s.samples[latA] != 501 || s.samples[latB] != 500 || len(s.counts) != 2 {
		t.Errorf("received counts %v samples %v", s.counts, s.samples)
	}
	if rem, err := sc.SendRemainder(sup); err != nil || rem.Requests() != 0 || rem.Samples != 0 {
		t.Errorf("second SendRemainder = %+v, %v; want nothing sent", rem, err)
	}
}

// TestNoDoubleCount: what the worker flushed before it died is not sent
// again by SendRemainder; a clean exit leaves nothing to send.
func TestNoDoubleCount(t *testing.T) {
	sup, wrk := mappings(t, SegmentOptions{})
	s, addr := udpSink(t)
	w := newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: wrk})
	recordN(w, 300)
	flushNow(t, w)
	recordN(w, 100)
	kill(w)
	sc := newTestClient(t, Config{Addr: addr})
	rem, err := sc.SendRemainder(sup)
	if err != nil {
		t.Fatal(err)
	}
	if rem.Requests() != 100 || rem.Samples != 100 {
		t.Errorf("remainder %+v, want 100 requests and samples", rem)
	}
	s.read(t, 400, 400, 200*time.Millisecond)
	if c, l := s.total(s.counts), s.total(s.samples); c != 400 || l != 400 {
		t.Errorf("received %d counts, %d samples; want 400 each", c, l)
	}

	// Clean exit: Close flushes everything, the remainder is empty.
	sup2, wrk2 := mappings(t, SegmentOptions{})
	w2 := newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: wrk2})
	recordN(w2, 50)
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if rem, err := sc.SendRemainder(sup2); err != nil || rem.Requests() != 0 || rem.Samples != 0 {
		t.Errorf("remainder after a clean exit %+v, %v; want nothing", rem, err)
	}
}

// staleUnixgram leaves a unixgram socket file nobody receives on.
func staleUnixgram(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exporter.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return path
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUnixgramExporterDownThenUp: while the exporter's socket is stale every
// flush fails and nothing is advanced; once it is back, everything recorded
// arrives exactly once.
func TestUnixgramExporterDownThenUp(t *testing.T) {
	path := staleUnixgram(t)
	w := newTestClient(t, Config{Addr: "unixgram://" + path, FlushInterval: 5 * time.Millisecond})
	recordN(w, 100)
	waitFor(t, "a failed flush", func() bool { return w.SendErrors() > 0 })
	recordN(w, 100)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, "unixgram", path)
	s.read(t, 200, 200, 0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s.read(t, 200, 200, 200*time.Millisecond)
	if c, l := s.total(s.counts), s.total(s.samples); c != 200 || l != 200 {
		t.Errorf("received %d counts, %d samples; want 200 each", c, l)
	}
}

// TestRingFull: a half-full ring flushes early; a ring that cannot drain
// (exporter down) drops further samples and counts them, never counts.
func TestRingFull(t *testing.T) {
	t.Run("early flush", func(t *testing.T) {
		s, addr := udpSink(t)
		seg, err := NewSegment(SegmentOptions{Samples: 16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { seg.Close() })
		newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: seg}).Record("GET", "/a", 200, 0)
		w := newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: seg})
		recordN(w, 7) // with the one above: 8 = half
		s.read(t, 8, 8, 0)
	})
	t.Run("drop", func(t *testing.T) {
		sup, wrk := mappings(t, SegmentOptions{Samples: 16})
		w := newTestClient(t, Config{Addr: "unixgram://" + staleUnixgram(t), FlushInterval: time.Hour, Segment: wrk})
		recordN(w, 36)
		if tot := sup.Totals(); tot.DroppedSamples != 20 || tot.Served[0].Count+tot.Served[1].Count != 36 {
			t.Errorf("totals %+v, want 36 requests, 20 samples dropped", tot)
		}
		kill(w)
		s, addr := udpSink(t)
		sc := newTestClient(t, Config{Addr: addr})
		if rem, err := sc.SendRemainder(sup); err != nil || rem.Requests() != 36 || rem.Samples != 16 {
			t.Errorf("remainder %+v, %v; want 36 requests, 16 samples", rem, err)
		}
		s.read(t, 36, 16, 200*time.Millisecond)
	})
}

// TestSeriesTableFull: series beyond the table are counted as overflow and
// still sent.
func TestSeriesTableFull(t *testing.T) {
	s, addr := udpSink(t)
	seg, err := NewSegment(SegmentOptions{Series: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	w := newTestClient(t, Config{Addr: addr, FlushInterval: time.Hour, Segment: seg})
	for i := 0; i < 5; i++ {
		for _, st := range []int{200, 404, 500} {
			w.Record("GET", "/a", st, time.Millisecond)
		}
	}
	if tot := seg.Totals(); tot.Overflow != 5 || len(tot.Served) != 2 {
		t.Errorf("totals %+v, want 2 series and 5 overflow records", tot)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s.read(t, 15, 15, 200*time.Millisecond)
	if s.counts["app_name:webapp,method:GET,endpoint:/a,http_status:500"] != 5 {
		t.Errorf("overflow series counts %v", s.counts)
	}
}

// TestRecordAllocs: Record allocates nothing once its series exists.
func TestRecordAllocs(t *testing.T) {
	_, addr := udpSink(t)
	c := newTestClient(t, Config{Addr: addr})
	c.Record("GET", "/test/", 200, time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() { c.Record("GET", "/test/", 200, time.Millisecond) }); n != 0 {
		t.Errorf("Record: %v allocs, want 0", n)
	}
}

// TestReresolve: when the host name resolves to a new address, the next
// flush goes there.
func TestReresolve(t *testing.T) {
	s1, addr1 := udpSink(t)
	_, port, _ := net.SplitHostPort(addr1)
	conn2, err := net.ListenPacket("udp", "127.0.0.2:"+port)
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	conn2.Close()
	s2 := newSink(t, "udp", "127.0.0.2:"+port)
	var ip atomic.Value
	ip.Store("127.0.0.1")
	c, err := newClient(Config{Addr: "exporter.test:" + port, FlushInterval: 5 * time.Millisecond,
		ResolveInterval: 10 * time.Millisecond, Logger: discard()}, time.Now,
		func(_ context.Context, host string) ([]string, error) { return []string{ip.Load().(string)}, nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Record("GET", "/a", 200, 0)
	s1.read(t, 1, 1, 0)
	ip.Store("127.0.0.2")
	waitFor(t, "the new address", func() bool {
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		return c.target == net.JoinHostPort("127.0.0.2", port)
	})
	c.Record("GET", "/a", 200, 0)
	s2.read(t, 1, 1, 0)
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// newSinkTB is a UDP socket that nobody reads, closed at cleanup.
func newSinkTB(tb testing.TB) net.PacketConn {
	tb.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}
