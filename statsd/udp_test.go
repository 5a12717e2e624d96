package statsd

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestCheckedUDPRefusedAtOnce: a datagram to a loopback port nobody listens
// on fails on its own write, not on the next one, so the flush that sent it
// keeps it in the segment.
func TestCheckedUDPRefusedAtOnce(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.LocalAddr().String()
	w, err := dialCheckedUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("x:1|c")); err != nil {
		t.Fatalf("write with a listener: %v", err)
	}
	l.Close()
	for i := range 100 {
		if _, err := w.Write([]byte("x:1|c")); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("write %d to a closed port: %v, want ECONNREFUSED from that write", i, err)
		}
	}
}
