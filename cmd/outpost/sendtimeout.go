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
// must make progress within d, so a client that stops reading is dropped
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
}

func (c *sendTimeoutConn) Write(p []byte) (int, error) {
	c.TCPConn.SetWriteDeadline(time.Now().Add(c.d))
	n, err := c.TCPConn.Write(p)
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
		c.TCPConn.SetWriteDeadline(time.Now().Add(c.d))
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
