package statsd

import (
	"testing"
	"time"
)

// BenchmarkRecord compares the old Record (datadog-go's aggregator behind
// the flush gate: legacyClient) with the new one (the segment), both sending
// to a UDP socket nobody reads, in the same run:
//
//	go test -run '^$' -bench Record -benchmem ./statsd/
//
// The new Record's ring fills when b.N outruns the flush goroutine; a full
// ring's drop path is no dearer than a store. ns/op is wall time: on a
// small machine it includes the flush goroutine (busy draining what b.N
// records) taking a CPU from the recording goroutine.
func BenchmarkRecord(b *testing.B) {
	addr := newSinkTB(b).LocalAddr().String()
	seg := newTestClientB(b, Config{Addr: addr, Logger: discard()})
	old := newLegacy(Config{Addr: addr, Logger: discard()})
	b.Cleanup(func() { old.Close() })
	for _, rc := range []struct {
		name string
		rec  interface {
			Record(string, string, int, time.Duration)
		}
	}{{"old", old}, {"segment", seg}} {
		b.Run(rc.name, func(b *testing.B) {
			rc.rec.Record("GET", "/test/", 200, time.Millisecond)
			b.ReportAllocs()
			for b.Loop() {
				rc.rec.Record("GET", "/test/", 200, time.Millisecond)
			}
		})
		b.Run(rc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rc.rec.Record("GET", "/test/", 200, time.Millisecond)
				}
			})
		})
	}
}

func newTestClientB(b *testing.B, cfg Config) *Client {
	b.Helper()
	c, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
