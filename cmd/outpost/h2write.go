package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// h2WriteAhead is how many bytes an HTTP/2 connection's writes may have
// accepted and not yet sent before the next write waits (see coalescer):
// the size of its buffers, of which a connection holds two while it
// sends and none while it is idle.
const h2WriteAhead = 64 << 10

var h2WriteBufs = sync.Pool{New: func() any { b := make([]byte, 0, h2WriteAhead); return &b }}

// h2CloseWait is how long closing an HTTP/2 connection waits for the
// bytes already accepted (a GOAWAY, the end of a response) to be sent.
const h2CloseWait = time.Second

// coalescer sends what an HTTP/2 connection writes from a goroutine of its
// own, so that writes made while one is being sent, or before its
// goroutine runs, go out together in one TLS write and one system call.
//
// Go's HTTP/2 server flushes its buffer whenever its queue of frames runs
// empty, which under load is after almost every frame: a 1 KiB response
// cost two system calls (HEADERS, then DATA a moment later), which is
// where nginx, which writes what every stream has ready at once, pulls
// ahead. Write here copies the bytes and returns at once; the server goes
// on to the next frames, and the sending goroutine, which runs after the
// goroutines already runnable, takes everything written by then.
//
// Backpressure stays: a Write waits while a full buffer (h2WriteAhead)
// is queued behind the one being sent, and a failed send (send_timeout,
// which the connection underneath applies to each write, or a closed
// connection) fails every later Write. Close sends what was accepted
// first, for at most h2CloseWait.
type coalescer struct {
	w io.Writer // the connection, written from the sending goroutine only

	mu      sync.Mutex
	drained sync.Cond     // signalled when pend shrinks or err is set
	pend    []byte        // accepted, not yet handed to w
	spare   []byte        // the buffer of the send in progress, for reuse
	busy    bool          // a sending goroutine is running
	closing bool          // close was called: no more Writes
	err     error         // sticky: a send failed
	idle    chan struct{} // closed when the sending goroutine ends, for close
}

func newCoalescer(w io.Writer) *coalescer {
	c := &coalescer{w: w}
	c.drained.L = &c.mu
	return c
}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(p) {
		for c.err == nil && !c.closing && c.pend != nil && len(c.pend) == cap(c.pend) {
			c.drained.Wait()
		}
		if c.err != nil {
			return n, c.err
		}
		if c.closing {
			return n, net.ErrClosed
		}
		if c.pend == nil {
			c.pend = getWriteBuf()
		}
		m := min(len(p)-n, cap(c.pend)-len(c.pend))
		c.pend = append(c.pend, p[n:n+m]...)
		n += m
		if !c.busy {
			c.busy = true
			go c.send()
		}
	}
	return n, nil
}

func getWriteBuf() []byte { return (*h2WriteBufs.Get().(*[]byte))[:0] }

func putWriteBuf(b []byte) {
	b = b[:0]
	h2WriteBufs.Put(&b)
}

// send writes what is pending until nothing is.
func (c *coalescer) send() {
	c.mu.Lock()
	for len(c.pend) > 0 && c.err == nil {
		buf := c.pend
		c.pend = c.spare
		c.spare = nil
		c.mu.Unlock()
		_, err := c.w.Write(buf)
		c.mu.Lock()
		if c.pend == nil {
			c.pend = buf[:0]
		} else {
			c.spare = buf[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
		}
		c.drained.Broadcast()
	}
	c.busy = false
	// An idle connection holds no buffer.
	if c.pend != nil && len(c.pend) == 0 {
		putWriteBuf(c.pend)
		c.pend = nil
	}
	if c.spare != nil {
		putWriteBuf(c.spare)
		c.spare = nil
	}
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.mu.Unlock()
}

// close fails later Writes and waits, at most h2CloseWait, for what was
// accepted to be sent; the caller then closes the connection (which ends
// a send that is stuck).
func (c *coalescer) close() {
	c.mu.Lock()
	c.closing = true
	c.drained.Broadcast()
	if !c.busy {
		c.mu.Unlock()
		return
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	t := time.NewTimer(h2CloseWait)
	select {
	case <-idle:
	case <-t.C:
	}
	t.Stop()
}

// Write goes through the coalescer when there is one.
func (g *h2Guard) Write(p []byte) (int, error) {
	if g.wr != nil {
		return g.wr.Write(p)
	}
	return g.Conn.Write(p)
}

// Close sends what the coalescer accepted (for a while), then closes.
func (g *h2Guard) Close() error {
	if g.wr != nil {
		g.wr.close()
	}
	return g.Conn.Close()
}
