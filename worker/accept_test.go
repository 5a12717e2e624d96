package worker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// scriptedListener returns the scripted errors, then a connection, then
// net.ErrClosed.
type scriptedListener struct {
	net.Listener
	errs []error
	conn net.Conn
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	if c := l.conn; c != nil {
		l.conn = nil
		return c, nil
	}
	return nil, net.ErrClosed
}

func TestAcceptSurvivesFdExhaustion(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Err: syscall.EMFILE}
	tests := []struct {
		name      string
		errs      []error
		wantConn  bool
		wantCount uint64
		wantSleep []time.Duration
	}{
		{"no trouble", nil, true, 0, nil},
		{"EMFILE burst", []error{emfile, emfile, emfile, syscall.ENFILE}, true, 4,
			[]time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}},
		{"other errors pass through", []error{errors.New("boom")}, false, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			var failed atomic.Uint64
			var slept []time.Duration
			l := patientListener{Listener: &scriptedListener{errs: tc.errs, conn: c1},
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), failed: &failed,
				sleep: func(d time.Duration) { slept = append(slept, d) }}
			c, err := l.Accept()
			if got := c != nil; got != tc.wantConn {
				t.Fatalf("Accept = %v, %v; want a connection: %v", c, err, tc.wantConn)
			}
			if failed.Load() != tc.wantCount {
				t.Errorf("counted %d failed accepts, want %d", failed.Load(), tc.wantCount)
			}
			if len(slept) != len(tc.wantSleep) {
				t.Fatalf("slept %v, want %v", slept, tc.wantSleep)
			}
			for i := range slept {
				if slept[i] != tc.wantSleep[i] {
					t.Errorf("backoff %d = %s, want %s", i, slept[i], tc.wantSleep[i])
				}
			}
		})
	}
}
