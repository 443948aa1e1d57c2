package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"golang.org/x/net/http2/hpack"
)

// HTTP/2 settings the public listener advertises; h2Guard mirrors them.
const (
	// h2MaxFrame is SETTINGS_MAX_FRAME_SIZE: the largest frame a client
	// may send. The protocol's initial value: a client has no use for
	// more, and a HEADERS frame above it is a FRAME_SIZE_ERROR (RFC 9113
	// §4.2), not a request.
	h2MaxFrame = 16 << 10
	// h2HeaderTable is SETTINGS_HEADER_TABLE_SIZE, the HPACK dynamic
	// table the client's encoder may use (the protocol's initial value).
	h2HeaderTable = 4096
)

// Frame types and flags of RFC 9113 §6 that h2Guard reads.
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9

	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	settingHeaderTableSize = 0x1
	settingEnablePush      = 0x2
	settingInitialWindow   = 0x4
	settingMaxFrameSize    = 0x5
)

// h2Preface is the client connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// refusedField ends a header block h2Guard refuses: a pseudo-header after
// regular fields makes the request malformed (RFC 9113 §8.3), which the
// HTTP/2 server answers with RST_STREAM PROTOCOL_ERROR before any handler
// sees the request. A literal without indexing leaves both HPACK tables as
// they were. Bytes: literal without indexing, new name (0x00); the name
// ":outpost-refused" (16 bytes); an empty value.
var refusedField = append(append([]byte{0x00, 16}, ":outpost-refused"...), 0x00)

// errH2Guard marks a frame h2Guard cannot follow (out of order, a header
// block that does not decode). The same frame is a connection error for
// the HTTP/2 server, so h2Guard hands it over as it is, for the server to
// send its GOAWAY, and hands over nothing after it.
var errH2Guard = errors.New("http2 guard: malformed frame sequence")

// h2Guard sits between a TLS connection that negotiated h2 and Go's HTTP/2
// server, reading the frames the client sends, to correct two things the
// server does not do as RFC 9113 says:
//
//   - A request carrying a connection-specific field (Connection,
//     Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade) or TE other
//     than "trailers" is malformed (§8.2.2) and must be refused with a
//     stream error. The server answers 400 instead; h2Guard appends a field
//     that makes the server reset the stream with PROTOCOL_ERROR. Either
//     way the request never reaches the edge, so it is never forwarded to
//     an HTTP/1.1 origin, where those fields would reframe the request
//     (the HTTP/2 downgrade smuggling class).
//   - A SETTINGS frame may name a setting more than once; the values are
//     processed in order (§6.5.3). The server closes the connection on
//     duplicates; h2Guard collapses them to the value in-order processing
//     ends with (for SETTINGS_HEADER_TABLE_SIZE the smallest, which the
//     encoder then signals as RFC 7541 §4.2 requires).
//
// It keeps an HPACK decoder in step with the server's, so a field indexed
// from the dynamic table is seen too. Frames it does not look at pass
// through unchanged; DATA payloads are read straight into the caller's
// buffer. Not safe for concurrent Reads (the server reads from one
// goroutine).
type h2Guard struct {
	*tls.Conn // ConnectionState, Write and the rest pass through

	src     io.Reader // the Conn, read through here
	dec     *hpack.Decoder
	buf     []byte // read from the connection, not yet processed: buf[r:w]
	r, w    int
	out     []byte // processed bytes for the next Reads
	scratch []byte
	pass    int // bytes still to pass as they are (the preface, a frame payload)

	inBlock bool // a header block is open: HEADERS seen, END_HEADERS not yet
	refuse  bool // the open header block carries a field RFC 9113 forbids
	teSeen  bool
	failed  bool  // after a frame h2Guard cannot follow: read, but pass nothing on
	err     error // sticky

	wr *coalescer // nil: writes go straight to the Conn (h2write.go)
}

func newH2Guard(c *tls.Conn) *h2Guard {
	g := &h2Guard{Conn: c, src: c, buf: make([]byte, 2048), pass: len(h2Preface)}
	g.dec = hpack.NewDecoder(h2HeaderTable, g.field)
	// The server's own decoder stops at its header list limit (64 KiB
	// plus some); this one only needs to be no stricter.
	g.dec.SetMaxStringLength(1 << 20)
	return g
}

func (g *h2Guard) Read(p []byte) (int, error) {
	for {
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		if g.err != nil {
			return 0, g.err
		}
		if g.failed && g.pass == 0 {
			g.r, g.w = 0, 0
			for g.err == nil {
				_, g.err = g.src.Read(g.buf) // until the server closes the connection
			}
			continue
		}
		if g.pass > 0 {
			if g.w > g.r {
				n := copy(p[:min(len(p), g.pass)], g.buf[g.r:g.w])
				g.r += n
				g.pass -= n
				return n, nil
			}
			n, err := g.src.Read(p[:min(len(p), g.pass)])
			g.pass -= n
			return n, err
		}
		g.err = g.nextFrame()
	}
}

// fill reads until buf holds n unprocessed bytes.
func (g *h2Guard) fill(n int) error {
	if g.w-g.r >= n {
		return nil
	}
	if len(g.buf) < n {
		nb := make([]byte, max(n, 2*len(g.buf)))
		g.w = copy(nb, g.buf[g.r:g.w])
		g.buf, g.r = nb, 0
	} else if g.r+n > len(g.buf) {
		g.w = copy(g.buf, g.buf[g.r:g.w])
		g.r = 0
	}
	for g.w-g.r < n {
		m, err := g.src.Read(g.buf[g.w:])
		g.w += m
		if err != nil && g.w-g.r < n {
			return err
		}
	}
	return nil
}

// nextFrame reads the next frame's header and either passes the frame on
// as it comes, or, for SETTINGS and header blocks, reads it whole and
// queues it in out, corrected.
func (g *h2Guard) nextFrame() error {
	if err := g.fill(9); err != nil {
		return err
	}
	hdr := g.buf[g.r : g.r+9]
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	typ := hdr[3]
	held := typ == frameHeaders || typ == frameContinuation || typ == frameSettings
	if !held || length > h2MaxFrame {
		// RFC 9113 §6.10: nothing may interrupt a header block. A held
		// type this large is a FRAME_SIZE_ERROR (§4.2) for the server,
		// which closes the connection; nothing after it is passed on.
		g.failed = g.failed || g.inBlock || held
		g.out = append(g.scratch[:0], hdr...)
		g.scratch = g.out
		g.r += 9
		g.pass = length
		return nil
	}
	if err := g.fill(9 + length); err != nil {
		return err
	}
	frame := g.buf[g.r : g.r+9+length]
	g.r += 9 + length
	var err error
	switch typ {
	case frameSettings:
		g.out, err = g.settings(frame)
	default:
		g.out, err = g.headerBlock(frame)
	}
	if err != nil {
		g.out, g.failed = frame, true
	}
	return nil
}

// headerBlock decodes a HEADERS or CONTINUATION frame's fragment and, at
// the end of a block that must be refused, adds a CONTINUATION frame that
// makes it malformed.
func (g *h2Guard) headerBlock(frame []byte) ([]byte, error) {
	flags, payload := frame[4], frame[9:]
	if frame[3] == frameHeaders {
		if g.inBlock {
			return nil, errH2Guard
		}
		off, pad := 0, 0
		if flags&flagPadded != 0 {
			if len(payload) < 1 {
				return nil, errH2Guard
			}
			off, pad = 1, int(payload[0])
		}
		if flags&flagPriority != 0 {
			off += 5
		}
		if off+pad > len(payload) {
			return nil, errH2Guard
		}
		payload = payload[off : len(payload)-pad]
		g.inBlock, g.refuse, g.teSeen = true, false, false
	} else if !g.inBlock {
		return nil, errH2Guard
	}
	if _, err := g.dec.Write(payload); err != nil {
		return nil, fmt.Errorf("http2 guard: %w", err)
	}
	out := append(g.scratch[:0], frame...)
	if flags&flagEndHeaders != 0 {
		g.inBlock = false
		if err := g.dec.Close(); err != nil {
			return nil, fmt.Errorf("http2 guard: %w", err)
		}
		if g.refuse {
			out[4] &^= flagEndHeaders
			out = append(out, 0, 0, byte(len(refusedField)), frameContinuation, flagEndHeaders)
			out = append(out, frame[5:9]...) // the stream
			out = append(out, refusedField...)
		}
	}
	g.scratch = out
	return out, nil
}

// field is the decoder's emit function: it notes the fields HTTP/2
// forbids in requests (RFC 9113 §8.2.2). Names arrive as sent; one with
// upper case is malformed and the server refuses it itself.
func (g *h2Guard) field(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		g.refuse = true
	case "te":
		if f.Value != "trailers" || g.teSeen {
			g.refuse = true
		}
		g.teSeen = true
	}
}

// settings collapses settings named more than once in one frame to the
// value processing them in order ends with. A frame the server refuses
// anyway (an ACK with a payload, a bad length or value, more than 100
// settings) is passed as it is.
func (g *h2Guard) settings(frame []byte) ([]byte, error) {
	payload := frame[9:]
	n := len(payload) / 6
	if frame[4]&flagAck != 0 || len(payload)%6 != 0 || n > 100 {
		return frame, nil
	}
	type setting struct {
		id  uint16
		val uint32
	}
	var list []setting
	dup := false
	for i := range n {
		b := payload[6*i : 6*i+6]
		s := setting{uint16(b[0])<<8 | uint16(b[1]), uint32(b[2])<<24 | uint32(b[3])<<16 | uint32(b[4])<<8 | uint32(b[5])}
		switch {
		case s.id == settingEnablePush && s.val > 1,
			s.id == settingInitialWindow && s.val > 1<<31-1,
			s.id == settingMaxFrameSize && (s.val < 1<<14 || s.val > 1<<24-1):
			return frame, nil // the server answers with the error RFC 9113 §6.5.2 names
		}
		j := 0
		for j < len(list) && list[j].id != s.id {
			j++
		}
		if j == len(list) {
			list = append(list, s)
			continue
		}
		dup = true
		if s.id != settingHeaderTableSize || s.val < list[j].val {
			list[j].val = s.val
		}
	}
	if !dup {
		return frame, nil
	}
	out := append(g.scratch[:0], frame[:9]...)
	out[0], out[1], out[2] = 0, byte(6*len(list)>>8), byte(6*len(list))
	for _, s := range list {
		out = append(out, byte(s.id>>8), byte(s.id), byte(s.val>>24), byte(s.val>>16), byte(s.val>>8), byte(s.val))
	}
	g.scratch = out
	return out, nil
}
