package statsd

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// recordBound is the most a single Record may take whatever the exporter
// does. Today's gate made Records wait for a flush stuck on the network
// (hundreds of milliseconds); a Record that only writes memory takes well
// under a microsecond, so the slack here is for the scheduler and the GC.
const recordBound = 10 * time.Millisecond

// deadExporters are the exporter failures Record must not notice: a closed
// UDP port, a stale unixgram socket file nobody receives on, and a unixgram
// receiver that never reads (its queue fills, writes block).
func deadExporters(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedUDP := udp.LocalAddr().String()
	udp.Close()

	stale := filepath.Join(dir, "stale.sock")
	sc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: stale, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	sc.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}

	slow := filepath.Join(dir, "slow.sock")
	slc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: slow, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	_ = slc.SetReadBuffer(4096)
	t.Cleanup(func() { slc.Close() })

	return map[string]string{
		"udp closed port":  closedUDP,
		"unixgram stale":   "unixgram://" + stale,
		"unixgram no read": "unixgram://" + slow,
	}
}

// worstRecord is the longest of n Records on c, each a different series
// now and then so the flushes have many lines to send.
func worstRecord(c interface {
	Record(string, string, int, time.Duration)
}, n int) time.Duration {
	var worst time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		c.Record("GET", "/test/", 200+i%50, time.Duration(i)*time.Microsecond)
		if d := time.Since(start); d > worst {
			worst = d
		}
	}
	return worst
}

// TestRecordNeverWaits: with the exporter dead, stale or slow, and the
// client flushing every millisecond (so a flush is stuck on the network
// most of the time), no Record of 10,000 takes longer than recordBound.
func TestRecordNeverWaits(t *testing.T) {
	for name, addr := range deadExporters(t) {
		t.Run(name, func(t *testing.T) {
			c, err := New(Config{Addr: addr, FlushInterval: time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			worst := worstRecord(c, 10000)
			t.Logf("worst Record %v", worst)
			if raceEnabled {
				// The race detector on a 2-CPU machine leaves a goroutine
				// waiting for a CPU for 100+ ms: no bound is meaningful.
				return
			}
			if worst > recordBound {
				t.Errorf("worst Record took %v, want <= %v", worst, recordBound)
			}
		})
	}
}

// TestLegacyRecordWaits shows that the bound above catches the old design:
// the pre-segment Client, whose Record waited for a flush stuck on a stale
// unixgram socket. Slow (seconds), so skipped with -short.
func TestLegacyRecordWaits(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds long")
	}
	c := newLegacy(Config{Addr: "unixgram://" + staleUnixgram(t), FlushInterval: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var worst time.Duration
	n := 0
	for deadline := time.Now().Add(3 * time.Second); worst <= recordBound && time.Now().Before(deadline); n++ {
		worst = max(worst, worstRecord(c, 1))
	}
	t.Logf("old Record, stale unixgram: worst of %d Records %v (bound %v)", n, worst, recordBound)
	if worst <= recordBound {
		t.Errorf("old Record's worst %v is within the bound: the test would not catch it", worst)
	}
	// Not closed: the old Close flushes through the stale socket for seconds.
}
