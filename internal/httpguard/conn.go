package httpguard

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the size of the buffers a Conn borrows to gather a head.
const bufSize = 4 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

// Conn is a net.Conn whose reads are checked for HTTP/1.1 framing (see the
// package comment). Reads must not be concurrent (net/http never makes
// them so); writes pass through untouched.
type Conn struct {
	net.Conn
	g *Guard
	s scanner

	// buf holds bytes read but not yet returned, when they could not be
	// returned straight from the caller's buffer: buf[out:ready] are
	// checked and due to the caller; buf[ready:] is a head not yet
	// complete. nil when empty.
	buf   []byte
	bufp  *[]byte // buf's pooled backing, if any
	out   int
	ready int
	tail  []byte // the synthetic request, due after buf's ready bytes
	rerr  error  // returned once buf and tail are drained

	rdl      atomic.Int64  // the read deadline the caller set, Unix ns; 0: none
	bodyDL   bool          // the Conn set a body deadline of its own
	rejected atomic.Uint32 // the fault whose synthetic request was passed on
	linger   sync.Once
}

// Read returns the next checked bytes of the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.out < c.ready {
			n := copy(p, c.buf[c.out:c.ready])
			c.out += n
			if c.out == c.ready {
				c.compact()
			}
			return n, nil
		}
		if len(c.tail) > 0 {
			n := copy(p, c.tail)
			c.tail = c.tail[n:]
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		c.setBodyDeadline()
		if c.buf == nil {
			// Fast path: check the bytes where they landed. net/http's
			// one-byte background read, which mostly ends aborted,
			// comes here too; once it brings the first byte of a head,
			// the rest is gathered in buf, not a byte per system call.
			n, err := c.Conn.Read(p)
			if n > 0 {
				k := c.s.scan(p[:n])
				switch {
				case c.s.st == stDead:
					c.refused()
				case k < n: // the start of a head
					c.take(n - k)
					c.buf = append(c.buf, p[k:n]...)
				}
				c.keep(err)
				if k > 0 {
					return k, nil
				}
				continue
			}
			if err != nil && !c.timedOut(err) {
				return 0, err
			}
			continue
		}
		// Slow path: gather a head in buf.
		c.take(bufSize)
		have := len(c.buf)
		n, err := c.Conn.Read(c.buf[have:cap(c.buf)])
		if n > 0 {
			c.buf = c.buf[:have+n]
			c.ready = c.s.scan(c.buf)
			if c.s.st == stDead {
				c.buf = c.buf[:c.ready]
				c.refused()
			}
			c.keep(err)
			continue
		}
		if c.ready == 0 && len(c.buf) == 0 {
			c.drop()
		}
		if err != nil && !c.timedOut(err) {
			return 0, err
		}
	}
}

// take makes room for n more bytes in buf.
func (c *Conn) take(n int) {
	if c.buf == nil {
		c.bufp = bufPool.Get().(*[]byte)
		c.buf = (*c.bufp)[:0]
	}
	if cap(c.buf)-len(c.buf) >= n {
		return
	}
	nb := make([]byte, len(c.buf), max(2*cap(c.buf), len(c.buf)+n))
	copy(nb, c.buf)
	c.drop()
	c.buf = nb
}

// drop gives buf back.
func (c *Conn) drop() {
	if c.bufp != nil {
		*c.bufp = c.buf[:0]
		if cap(c.buf) == bufSize {
			bufPool.Put(c.bufp)
		}
	}
	c.buf, c.bufp, c.out, c.ready = nil, nil, 0, 0
}

// compact moves the incomplete head after the returned bytes to the start
// of buf, or gives buf back when there is none.
func (c *Conn) compact() {
	rest := len(c.buf) - c.ready
	if rest == 0 {
		c.drop()
		return
	}
	copy(c.buf, c.buf[c.ready:])
	c.buf = c.buf[:rest]
	c.out, c.ready = 0, 0
}

// keep records an error that came with bytes, for the next Read. A
// timeout is not kept: the deadline may be gone by then.
func (c *Conn) keep(err error) {
	if err != nil && c.rerr == nil && !isTimeout(err) {
		c.rerr = err
	}
}

// refused stops the stream: nothing read from now on is passed on. A
// refused head is replaced by the synthetic request Handler answers; a
// refused body becomes a read error.
func (c *Conn) refused() {
	f := c.s.fault
	if f == faultHeaderTimeout {
		c.g.timeouts[phaseHeader].Inc()
	} else {
		c.g.rejected[f].Inc()
	}
	if f == faultChunk {
		c.rerr = ErrMalformedBody
		return
	}
	c.rejected.Store(uint32(f))
	c.tail = synthetic
	c.rerr = io.EOF
}

// aLongTimeAgo bounds the deadlines net/http sets to abort a read rather
// than to time one out (it uses time.Unix(1, 0)).
var aLongTimeAgo = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// timedOut handles a read that failed with err. A timeout counts in
// outpost_http_timeouts_total; one in the middle of a head is answered 408
// (and timedOut returns true: the synthetic request is due). A read that
// net/http aborted is no timeout.
func (c *Conn) timedOut(err error) bool {
	if !isTimeout(err) {
		return false
	}
	if dl := c.rdl.Load(); dl != 0 && dl < aLongTimeAgo {
		return false // net/http aborting its background read
	}
	switch {
	case c.s.st == stHead && len(c.buf) > 0:
		c.drop()
		c.s.refuse(faultHeaderTimeout)
		c.refused()
		return true
	case c.s.st == stHead:
		c.g.timeouts[phaseIdle].Inc()
	default:
		// The request is lost: later reads fail at once rather than
		// wait out another deadline each.
		c.g.timeouts[phaseBody].Inc()
		c.s.st = stDead
		c.rerr = err
	}
	return false
}

func isTimeout(err error) bool {
	if ne, ok := err.(net.Error); ok { // what connections return: no allocation
		return ne.Timeout()
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// setBodyDeadline gives each read of a request body BodyTimeout, and puts
// the caller's deadline back after the body.
func (c *Conn) setBodyDeadline() {
	inBody := c.s.st != stHead && c.s.st != stPass && c.s.st != stDead
	switch {
	case inBody && c.g.bodyTimeout > 0:
		dl := time.Now().Add(c.g.bodyTimeout)
		if user := c.rdl.Load(); user != 0 && user < dl.UnixNano() {
			dl = time.Unix(0, user)
		}
		c.bodyDL = true
		c.Conn.SetReadDeadline(dl)
	case !inBody && c.bodyDL:
		c.bodyDL = false
		c.Conn.SetReadDeadline(unixTime(c.rdl.Load()))
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (c *Conn) noteDeadline(t time.Time) {
	if t.IsZero() {
		c.rdl.Store(0)
	} else {
		c.rdl.Store(t.UnixNano())
	}
}

// SetReadDeadline sets the read deadline of the connection.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets the read and write deadlines of the connection.
func (c *Conn) SetDeadline(t time.Time) error {
	c.noteDeadline(t)
	return c.Conn.SetDeadline(t)
}

// ReadFrom writes r to the connection with the wrapped connection's
// ReadFrom when it has one (sendfile for a *net.TCPConn).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

type writerOnly struct{ io.Writer }

// CloseWrite shuts down the writing side, when the wrapped connection can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// lingerTime and lingerBytes bound how long, and how much, a refused
// connection is read and discarded before it is closed, so its answer is
// not lost to a TCP reset for the unread bytes.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// Close closes the connection. One that was refused first sends its
// answer's end and discards what the client still sends, briefly.
func (c *Conn) Close() error {
	if c.rejected.Load() != 0 {
		c.linger.Do(func() {
			c.CloseWrite()
			c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.Conn, lingerBytes)
		})
	}
	return c.Conn.Close()
}
