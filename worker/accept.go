package worker

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Backoff bounds of an accept that failed for lack of resources.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// patientListener retries an Accept that failed for lack of descriptors or
// memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) instead of returning the error:
// fasthttp takes any accept error as fatal and stops serving, and a worker
// that exits over a burst of open files loses its in-flight requests. The
// condition is transient (connections close, the limit frees up), so it
// sleeps with a growing backoff, logs once per burst, counts every failure,
// and goes on. net/http's Server does the same.
type patientListener struct {
	net.Listener
	log    *slog.Logger
	failed *atomic.Uint64
	sleep  func(time.Duration)
}

func (l patientListener) Accept() (net.Conn, error) {
	delay := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err == nil || !resourceShortage(err) {
			if delay > 0 && err == nil {
				l.log.Info("accepting again after running out of descriptors", "failed_accepts", l.failed.Load())
			}
			return c, err
		}
		l.failed.Add(1)
		if delay == 0 {
			l.log.Warn("accept failed: out of descriptors or memory; retrying with backoff, serving goes on", "err", err)
			delay = acceptBackoffMin
		} else {
			delay = min(2*delay, acceptBackoffMax)
		}
		l.sleep(delay)
	}
}

func resourceShortage(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
