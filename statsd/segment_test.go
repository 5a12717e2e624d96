package statsd

import (
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpSink counts the request_count values and latency samples it receives,
// per tag set.
type udpSink struct {
	conn    net.PacketConn
	mu      sync.Mutex
	counts  map[string]int
	samples map[string]int
}

func newSink(t *testing.T) *udpSink {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.UDPConn).SetReadBuffer(8 << 20)
	s := &udpSink{conn: conn, counts: map[string]int{}, samples: map[string]int{}}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				head, tags, _ := strings.Cut(line, "|#")
				name, values, _ := strings.Cut(strings.Split(head, "|")[0], ":")
				switch name {
				case RequestCount:
					v, _ := strconv.Atoi(values)
					s.counts[tags] += v
				case RequestLatency:
					s.samples[tags] += strings.Count(values, ":") + 1
				}
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return s
}

func (s *udpSink) total() (counts, samples int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.counts {
		counts += v
	}
	for _, v := range s.samples {
		samples += v
	}
	return counts, samples
}

func (s *udpSink) waitFor(t *testing.T, counts, samples int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, sm := s.total()
		if c == counts && sm == samples {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d counts and %d samples, want %d and %d", c, sm, counts, samples)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestRemainderOfAKilledWorker: a "worker" records into a segment it got as
// a file (a second mapping, as in another process) and dies before any
// flush; the "supervisor" sends the rest from its own mapping with the
// worker's tags, exactly once.
func TestRemainderOfAKilledWorker(t *testing.T) {
	sink := newSink(t)
	seg, err := NewSegment()
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	dup, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(seg.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	wseg, err := OpenSegment(dup)
	if err != nil {
		t.Fatal(err)
	}
	// The worker: flushes never come (an hour), so everything stays in the
	// segment, as when SIGKILL arrives inside a window.
	worker, err := New(Config{Addr: sink.conn.LocalAddr().String(), AppName: "shop", FlushInterval: time.Hour, Segment: wseg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	const ok, failed = 700, 300
	for i := range ok + failed {
		if i < ok {
			worker.Record("GET", "/test/", 200, time.Millisecond)
		} else {
			worker.Record("POST", "/test1/", 500, time.Millisecond)
		}
	}
	wseg.Close() // the worker is gone; its client never flushed
	if c, s := sink.total(); c != 0 || s != 0 {
		t.Fatalf("the worker sent %d counts, %d samples before dying; want none", c, s)
	}

	sup, err := New(Config{Addr: sink.conn.LocalAddr().String(), AppName: "shop", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	r, err := sup.SendRemainder(seg)
	if err != nil || r.Counts != ok+failed || r.Samples != ok+failed {
		t.Fatalf("SendRemainder = %+v, %v; want %d counts and samples", r, err, ok+failed)
	}
	sink.waitFor(t, ok+failed, ok+failed)
	sink.mu.Lock()
	got := sink.counts["app_name:shop,method:GET,endpoint:/test/,http_status:200"]
	sink.mu.Unlock()
	if got != ok {
		t.Errorf("GET /test/ 200 count %d, want %d with the worker's tags: %v", got, ok, sink.counts)
	}
	// Once: a second call sends nothing.
	if r, err := sup.SendRemainder(seg); err != nil || r.Counts != 0 || r.Samples != 0 {
		t.Errorf("second SendRemainder = %+v, %v; want nothing", r, err)
	}
	series, dropped := seg.Totals()
	if len(series) != 2 || dropped != 0 || series[0].Served != series[0].Sent {
		t.Errorf("Totals = %+v, dropped %d; want 2 series, all sent", series, dropped)
	}
}

// TestNoDoubleCounting: what a worker's own flush sent is not sent again
// by SendRemainder.
func TestNoDoubleCounting(t *testing.T) {
	sink := newSink(t)
	seg, err := NewSegment()
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	worker, err := New(Config{Addr: sink.conn.LocalAddr().String(), FlushInterval: 5 * time.Millisecond, Segment: seg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		worker.Record("GET", "/test/", 200, time.Millisecond)
	}
	sink.waitFor(t, 500, 500) // flushed by the worker
	for range 40 {
		worker.Record("GET", "/test/", 200, time.Millisecond)
	}
	// The worker "dies" now: its flush loop stops before the last 40 go.
	close(worker.closing)
	worker.flushed.Wait()
	sup, err := New(Config{Addr: sink.conn.LocalAddr().String(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if _, err := sup.SendRemainder(seg); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, 540, 540)
}

// TestRingFullIsCounted: with no flush (the exporter unreachable for long),
// samples beyond the ring are dropped and counted; counts never are.
func TestRingFullIsCounted(t *testing.T) {
	c, err := New(Config{Addr: "no-such-host.invalid:9125", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const extra = 10
	for range ringCap + extra {
		c.Record("GET", "/test/", 200, time.Millisecond)
	}
	series, dropped := c.seg.Totals()
	if len(series) != 1 || series[0].Served != ringCap+extra || dropped != extra {
		t.Errorf("Totals = %+v, dropped %d; want %d served and %d dropped", series, dropped, ringCap+extra, extra)
	}
}

func TestOpenSegmentRejectsOtherFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "seg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSegment(f); err == nil {
		t.Error("OpenSegment accepted an empty file")
	}
}
