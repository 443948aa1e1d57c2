package origin

import (
	"bytes"
	"net"
	"sync/atomic"
)

// maxHeaderBlock bounds the response header block teConn buffers; past it,
// bytes pass through untouched (and net/http rejects the response).
const maxHeaderBlock = 64 << 10

// teConn lets net/http read HTTP/1.1 responses whose Transfer-Encoding it
// does not support. RFC 9112 §6.3 says such a response (chunked not the
// final coding) is delimited by the connection closing; net/http instead
// fails it. teConn finds each response header block on the connection and
// drops a Transfer-Encoding that does not end in chunked, so the body is
// read to the close, as the RFC asks (and Content-Length, which the coding
// overrides, goes too).
//
// net/http's HTTP/1.1 client never pipelines: every response follows a
// request written on the connection, so the bytes that arrive after a
// Write start a header block (or several, after 1xx responses).
type teConn struct {
	net.Conn
	awaiting atomic.Bool // a request was written: the next bytes are a header block
	hdr      []byte      // header bytes read so far
	pending  []byte      // bytes ready to return from Read
	err      error       // read error to return once pending is drained
}

func newTEConn(c net.Conn) *teConn { return &teConn{Conn: c} }

func (c *teConn) Write(p []byte) (int, error) {
	c.awaiting.Store(true)
	return c.Conn.Write(p)
}

func (c *teConn) Read(p []byte) (int, error) {
	for {
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		if c.err != nil {
			err := c.err
			c.err = nil
			return 0, err
		}
		n, err := c.Conn.Read(p)
		if n == 0 || !c.awaiting.Load() {
			return n, err
		}
		c.hdr = append(c.hdr, p[:n]...)
		c.err = err
		c.scan()
	}
}

// scan moves complete header blocks from hdr to pending, rewritten.
func (c *teConn) scan() {
	for c.awaiting.Load() {
		end := bytes.Index(c.hdr, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.hdr) > maxHeaderBlock || c.err != nil {
				c.pass(len(c.hdr))
			}
			return
		}
		block := c.hdr[:end+4]
		interim := len(block) > 9 && block[9] == '1' // "HTTP/1.1 1xx"
		c.pending = append(c.pending, fixTransferEncoding(block)...)
		c.hdr = c.hdr[end+4:]
		if !interim {
			c.pass(len(c.hdr))
		}
	}
}

// pass ends header scanning: the first n buffered bytes go out as they are.
func (c *teConn) pass(n int) {
	c.awaiting.Store(false)
	c.pending = append(c.pending, c.hdr[:n]...)
	c.hdr = nil
}

// fixTransferEncoding drops the Transfer-Encoding and Content-Length lines
// of a header block whose transfer coding net/http cannot read: anything
// but exactly "chunked". A block without such a coding is returned as is.
func fixTransferEncoding(block []byte) []byte {
	lines := bytes.Split(block, []byte("\r\n"))
	var codings [][]byte
	for _, l := range lines[1:] {
		if name, value, ok := bytes.Cut(l, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Transfer-Encoding")) {
			for _, c := range bytes.Split(value, []byte(",")) {
				if c = bytes.TrimSpace(c); len(c) > 0 {
					codings = append(codings, c)
				}
			}
		}
	}
	if len(codings) == 0 || (len(codings) == 1 && bytes.EqualFold(codings[0], []byte("chunked"))) {
		return block
	}
	if bytes.EqualFold(codings[len(codings)-1], []byte("chunked")) {
		return block // chunked last, with other codings first: not ours to undo
	}
	out := make([]byte, 0, len(block))
	for i, l := range lines {
		if i > 0 {
			if name, _, ok := bytes.Cut(l, []byte(":")); ok {
				n := bytes.TrimSpace(name)
				if bytes.EqualFold(n, []byte("Transfer-Encoding")) || bytes.EqualFold(n, []byte("Content-Length")) {
					continue
				}
			}
			out = append(out, "\r\n"...)
		}
		out = append(out, l...)
	}
	return out
}
