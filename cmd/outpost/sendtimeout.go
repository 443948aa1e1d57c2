package main

import (
	"io"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sendChunk is how many bytes one deadline covers when a body is sent
// with ReadFrom (sendfile from the disk tier).
const sendChunk = 1 << 20

// sendTimeoutListener gives every accepted connection a send timeout, as
// nginx's send_timeout: each write (and each sendChunk of a sendfile)
// must make progress within d (to 9/8 d, see arm), so a client that stops reading is dropped
// instead of holding its connection, its goroutine and an open object
// forever, while a slow client that keeps reading is never cut off.
type sendTimeoutListener struct {
	net.Listener
	d        time.Duration
	timeouts prometheus.Counter // outpost_http_send_timeouts_total
}

func (l sendTimeoutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &sendTimeoutConn{TCPConn: tc, d: l.d, timeouts: l.timeouts}, nil
	}
	return c, nil
}

// sendTimeoutConn is a TCP connection whose writes each get a deadline.
// It keeps TCPConn's ReadFrom (sendfile) and CloseWrite.
type sendTimeoutConn struct {
	*net.TCPConn
	d        time.Duration
	timeouts prometheus.Counter
	until    time.Time // the write deadline last set by arm; zero: none
}

// arm makes sure the next write has at least d. Setting a deadline costs
// a timer update in the runtime, so a write that follows closely on the
// last one keeps the deadline that one set: arm sets d+d/8 ahead and
// renews only when less than d is left. Every write gets between d and
// 9/8 d, never less.
func (c *sendTimeoutConn) arm() {
	now := time.Now()
	if !c.until.IsZero() && c.until.Sub(now) >= c.d {
		return
	}
	c.until = now.Add(c.d + c.d/8)
	c.TCPConn.SetWriteDeadline(c.until)
}

// SetWriteDeadline sets the write deadline, and the next write sets its
// own. Clearing it (net/http does after every response) keeps the one
// arm set: every write gets one anyway, and a deadline no write waits on
// does nothing.
func (c *sendTimeoutConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	c.until = time.Time{}
	return c.TCPConn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines, as SetReadDeadline and SetWriteDeadline.
func (c *sendTimeoutConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		return c.TCPConn.SetReadDeadline(t)
	}
	c.until = time.Time{}
	return c.TCPConn.SetDeadline(t)
}

func (c *sendTimeoutConn) Write(p []byte) (int, error) {
	c.arm()
	n, err := c.TCPConn.Write(p)
	c.count(err)
	return n, err
}

// WriteBuffers writes b with writev, within the send timeout.
func (c *sendTimeoutConn) WriteBuffers(b *net.Buffers) (int64, error) {
	c.arm()
	n, err := b.WriteTo(c.TCPConn)
	c.count(err)
	return n, err
}

// count counts a write that timed out.
func (c *sendTimeoutConn) count(err error) {
	if err == nil || c.timeouts == nil {
		return
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.timeouts.Inc()
	}
}

// ReadFrom sends r in chunks of sendChunk, each with its own deadline. A
// *io.LimitedReader over a file (what the disk tier hands net/http) stays
// one, so each chunk still goes out with sendfile.
func (c *sendTimeoutConn) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	lr, limited := r.(*io.LimitedReader)
	for {
		chunk := &io.LimitedReader{R: r, N: sendChunk}
		if limited {
			chunk = &io.LimitedReader{R: lr.R, N: min(sendChunk, lr.N)}
			if chunk.N <= 0 {
				return total, nil
			}
		}
		c.arm()
		n, err := c.TCPConn.ReadFrom(chunk)
		c.count(err)
		total += n
		if limited {
			lr.N -= n
		}
		if err != nil || n < sendChunk {
			return total, err
		}
	}
}
