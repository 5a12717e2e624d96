package statsd

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readLines collects the DogStatsD lines that arrive on conn until want
// lines are in or the deadline passes.
func readLines(t *testing.T, conn net.PacketConn, want int) []string {
	t.Helper()
	var lines []string
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for len(lines) < want && time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		for _, l := range strings.Split(strings.TrimSpace(string(buf[:n])), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestWireTags reads what the client really sends and checks each line's
// tags: exactly the contract's keys, in key:value form with no spaces.
func TestWireTags(t *testing.T) {
	conn := newSinkTB(t)
	c, err := New(Config{Addr: conn.LocalAddr().String(), FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Record("GET", "/test/", 200, 1500*time.Microsecond)
	c.Record("GET", "/test/", 200, 2500*time.Microsecond)
	c.Record("OTHER", "unmatched", 404, time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Two series of each metric.
	lines := readLines(t, conn, 4)

	wantKeys := map[string][]string{
		RequestCount:   {"app_name", "endpoint", "http_status", "method"},
		RequestLatency: {"app_name", "endpoint"},
	}
	seen := map[string]int{}
	for _, line := range lines {
		if strings.ContainsAny(line, " \t") {
			t.Errorf("line has white space: %q", line)
		}
		head, tags, ok := strings.Cut(line, "|#")
		if !ok {
			t.Errorf("line without tags: %q", line)
			continue
		}
		name, _, _ := strings.Cut(head, ":")
		var keys []string
		for _, tag := range strings.Split(tags, ",") {
			k, v, ok := strings.Cut(tag, ":")
			if !ok || k == "" || v == "" {
				t.Errorf("tag %q in %q is not key:value", tag, line)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if got, want := strings.Join(keys, ","), strings.Join(wantKeys[name], ","); got != want {
			t.Errorf("%s tag keys %s, want %s (line %q)", name, got, want, line)
		}
		if !strings.Contains(tags, "app_name:webapp") {
			t.Errorf("line %q lacks app_name:webapp", line)
		}
		seen[name]++
	}
	if seen[RequestCount] != 2 || seen[RequestLatency] != 2 {
		t.Errorf("lines per metric %v, want 2 each; lines: %q", seen, lines)
	}
	// The two /test/ requests are aggregated into one count line of 2, and
	// their latencies into one line of two values.
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "request_count:2|c|#") {
		t.Errorf("no aggregated count of 2 in %q", joined)
	}
	if !strings.Contains(joined, "request_latency_seconds:0.0015:0.0025|h|#") &&
		!strings.Contains(joined, "request_latency_seconds:0.0025:0.0015|h|#") {
		t.Errorf("latency values not in seconds in %q", joined)
	}
}

// TestUnresolvableAddress: the client is usable while the address does not
// resolve; records are kept in the segment (not dropped), and Close is quick
// and says what it could not send.
func TestUnresolvableAddress(t *testing.T) {
	c, err := New(Config{Addr: "no-such-host.invalid:9125", Logger: discard()})
	if err != nil {
		t.Fatalf("New with an unresolvable address: %v", err)
	}
	c.Record("GET", "/test/", 200, time.Millisecond)
	tot := c.seg.Totals()
	if len(tot.Served) != 1 || tot.Served[0].Count != 1 {
		t.Errorf("segment totals %+v, want one request", tot)
	}
	start := time.Now()
	if err := c.Close(); !errors.Is(err, ErrUnsent) {
		t.Errorf("Close = %v, want ErrUnsent", err)
	}
	if d := time.Since(start); d > 2*DefaultCloseTimeout {
		t.Errorf("Close took %v", d)
	}
}

func TestSanitizeTagValue(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"clean":        {"/test/", "/test/"},
		"separators":   {"a|b#c,d:e@f", "a_b_c_d_e_f"},
		"space":        {"a b", "a_b"},
		"newline":      {"a\nb", "a_b"},
		"non-ascii":    {"é", "__"},
		"empty":        {"", "_"},
		"long cut":     {strings.Repeat("x", 300), strings.Repeat("x", 200)},
		"quote, slash": {`a"b\c`, "a_b_c"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := SanitizeTagValue(tc.in); got != tc.want {
				t.Errorf("SanitizeTagValue(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg Config
		ok  bool
	}{
		"zero":           {Config{}, true},
		"app name":       {Config{AppName: "shop-api"}, true},
		"app name space": {Config{AppName: "shop api"}, false},
		"app name comma": {Config{AppName: "a,b"}, false},
		"negative flush": {Config{FlushInterval: -time.Second}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestNoSampleStraddlesFlush: 8 goroutines record while the client flushes
// every millisecond; every count and every latency sample must arrive, and
// the segment's totals are exact. (datadog-go's extended aggregation loses a
// histogram sample that races its flush; only the flush goroutine calls it
// now.) The ring holds all 160,000 samples: the recorders here outrun any
// flusher, which is not what this test is about (TestRingFull is).
func TestNoSampleStraddlesFlush(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.UDPConn).SetReadBuffer(8 << 20)
	seg, err := NewSegment(SegmentOptions{Samples: 1 << 18})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	c, err := New(Config{Addr: conn.LocalAddr().String(), FlushInterval: time.Millisecond, Segment: seg, CloseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 20000
	counts, samples := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				head, _, _ := strings.Cut(line, "|")
				name, values, _ := strings.Cut(head, ":")
				switch name {
				case RequestCount:
					v, _ := strconv.Atoi(values)
					counts += v
				case RequestLatency:
					samples += strings.Count(values, ":") + 1
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c.Record("GET", "/test/", 200, time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if tot := seg.Totals(); len(tot.Served) != 1 || tot.Served[0].Count != goroutines*each || tot.DroppedSamples != 0 {
		t.Errorf("segment totals %+v, want %d requests, none dropped", tot, goroutines*each)
	}
	if counts != goroutines*each || samples != goroutines*each {
		t.Errorf("received %d counts and %d latency samples, want %d of each", counts, samples, goroutines*each)
	}
}
