package worker

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// MaxLingerBytes bounds what a lingering connection reads and discards (see
// Options.Linger) before it closes anyway.
const MaxLingerBytes = 16 << 20

// lingerListener hands out connections that can linger on Close.
type lingerListener struct {
	net.Listener
	linger time.Duration
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c, linger: l.linger}, nil
}

// lingerConn closes gracefully when asked to before: fasthttp closes a
// connection right after writing an error response, often with request bytes
// it never read (the rest of a huge header or body) still in the kernel's
// receive buffer. Closing a socket with unread data makes the kernel send a
// reset instead of a FIN, and a client still sending then gets "connection
// reset" and never reads the 431 or 413 that was written. So after an error
// response Close sends FIN first (half-close), reads and discards what the
// client still sends, for at most linger and MaxLingerBytes, and only then
// closes.
//
// One allocation per connection; nothing per request. Connections that never
// had an error response close as before.
type lingerConn struct {
	net.Conn
	linger time.Duration
	armed  atomic.Bool // set by the serving goroutine, read by whoever closes
}

// arm makes the next Close linger.
func (c *lingerConn) arm() { c.armed.Store(true) }

func (c *lingerConn) Close() error {
	if c.armed.CompareAndSwap(true, false) {
		c.drain()
	}
	return c.Conn.Close()
}

func (c *lingerConn) drain() {
	hc, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	if hc.CloseWrite() != nil {
		return
	}
	if c.Conn.SetReadDeadline(time.Now().Add(c.linger)) != nil {
		return
	}
	// Ends at the client's FIN (it has read the response and closed), the
	// deadline, or the byte limit; io.Discard reads with a pooled buffer.
	_, _ = io.CopyN(io.Discard, c.Conn, MaxLingerBytes)
}

// armLinger makes conn linger on Close if it is one of ours.
func armLinger(conn net.Conn) {
	if lc, ok := conn.(*lingerConn); ok {
		lc.arm()
	}
}
