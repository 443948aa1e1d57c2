package httpguard

import (
	"bytes"
)

// Stream states: where the next byte on the connection belongs.
const (
	stHead      uint8 = iota // a request head (or empty lines before one)
	stBody                   // a Content-Length body: remain bytes left
	stChunkLine              // a chunk-size line
	stChunkData              // chunk data: remain bytes left
	stChunkCR                // the CR after chunk data
	stChunkLF                // the LF after chunk data
	stTrailer                // the trailer section after the last chunk
	stPass                   // HTTP/2 with prior knowledge: not ours to frame
	stDead                   // rejected: nothing more passes
)

// maxChunkLine is the longest chunk-size line, extensions included, that
// net/http accepts (internal/chunked.go maxLineLength).
const maxChunkLine = 4096

// maxLeadingCRLF is how many bytes of empty lines may precede a request
// line: RFC 9112 §2.2 asks servers to ignore at least one, and net/http
// skips up to four CR or LF bytes after a POST (and refuses otherwise).
const maxLeadingCRLF = 4

// head is what scanning has learnt so far of the request head in
// progress. Offsets are from the start of the head.
type head struct {
	pos     int // offset of the next line to scan
	lead    int // bytes of empty lines before the request line
	reqLine bool
	lines   int // header field lines
	http10  bool
	absOff  int // absolute-form target, when the target is one
	absLen  int
	clCount int
	clOff   int
	clLen   int
	teCount int
	teOff   int
	teLen   int
	hosts   int
	hostOff int
	hostLen int
}

// scanner follows the framing of a stream of HTTP/1.1 requests. It is the
// state of one Conn, and used by one goroutine at a time.
type scanner struct {
	lim    *limits
	st     uint8
	first  bool   // no request head has completed yet
	remain uint64 // bytes left of a Content-Length body or a chunk
	// Chunk-size line and trailer progress.
	lineLen int
	digits  int
	inExt   bool
	sawCR   bool
	trailer int // trailer bytes so far
	hd      head
	fault   fault // why the stream was refused (st == stDead)
	// heads, when set (by tests), receives the offset in the scanned
	// bytes of each request head accepted.
	heads *[]int
}

// limits are the Guard's bounds on a request head.
type limits struct {
	requestLine int
	headerBytes int
	headerCount int
	h2c         bool
}

// scan follows the framing of b, the next bytes of the stream, and returns
// how many of them may be passed on. Bytes past that are either a request
// head not yet complete (st is stHead: the caller keeps them and calls scan
// again with them and more bytes appended), or the stream was refused at
// that offset (st is stDead, fault says why).
func (s *scanner) scan(b []byte) int {
	i := 0
	for i < len(b) {
		switch s.st {
		case stHead:
			end := s.scanHead(b[i:])
			if end <= 0 {
				return i // incomplete (0) or refused (-1)
			}
			if s.heads != nil {
				*s.heads = append(*s.heads, i)
			}
			i += end
		case stBody, stChunkData: // s.remain bytes of body pass unread
			k := uint64(len(b) - i)
			if k >= s.remain {
				i += int(s.remain)
				s.remain = 0
				if s.st == stBody {
					s.st = stHead
				} else {
					s.st = stChunkCR
				}
				continue
			}
			s.remain -= k
			return len(b)
		case stChunkCR, stChunkLF:
			want := byte('\r')
			if s.st == stChunkLF {
				want = '\n'
			}
			if b[i] != want {
				s.refuse(faultChunk)
				return i
			}
			i++
			if s.st == stChunkCR {
				s.st = stChunkLF
			} else {
				s.st = stChunkLine
			}
		case stChunkLine:
			k, ok := s.chunkLine(b[i:])
			i += k
			if !ok {
				return i
			}
		case stTrailer:
			k, ok := s.trailerLines(b[i:])
			i += k
			if !ok {
				return i
			}
		case stPass:
			return len(b)
		default: // stDead
			return i
		}
	}
	return i
}

// refuse ends the stream for fault f.
func (s *scanner) refuse(f fault) {
	s.st = stDead
	s.fault = f
}

// chunkLine scans a chunk-size line (RFC 9112 §7.1): 1 to 16 hex digits,
// optional extensions after ';' without CR or LF, and CRLF. It returns how
// many bytes it consumed and false when the stream was refused.
func (s *scanner) chunkLine(b []byte) (int, bool) {
	for i, c := range b {
		s.lineLen++
		if s.lineLen > maxChunkLine {
			s.refuse(faultChunk)
			return i, false
		}
		switch {
		case s.sawCR:
			if c != '\n' {
				s.refuse(faultChunk)
				return i, false
			}
			size := s.remain
			s.lineLen, s.digits, s.inExt, s.sawCR = 0, 0, false, false
			if size == 0 {
				s.st = stTrailer
				s.trailer = 0
			} else {
				s.st = stChunkData
			}
			return i + 1, true
		case c == '\r':
			if s.digits == 0 {
				s.refuse(faultChunk)
				return i, false
			}
			s.sawCR = true
		case s.inExt:
			if c == '\n' {
				s.refuse(faultChunk)
				return i, false
			}
		case c == ';' && s.digits > 0:
			s.inExt = true
		default:
			v, ok := unhex(c)
			if !ok || s.digits == 16 {
				s.refuse(faultChunk)
				return i, false
			}
			s.remain = s.remain<<4 | uint64(v)
			s.digits++
		}
	}
	return len(b), true
}

// trailerLines scans the trailer section after the last chunk (RFC 9112
// §7.1.2): field lines ended by CRLF, without obs-fold or bare LF, then an
// empty line, which ends the message.
func (s *scanner) trailerLines(b []byte) (int, bool) {
	for i, c := range b {
		s.trailer++
		if s.trailer > s.lim.headerBytes {
			s.refuse(faultChunk)
			return i, false
		}
		switch {
		case s.sawCR:
			if c != '\n' {
				s.refuse(faultChunk)
				return i, false
			}
			s.sawCR = false
			if s.lineLen == 0 {
				s.st = stHead
				return i + 1, true
			}
			s.lineLen = 0
		case c == '\r':
			s.sawCR = true
		case c == '\n', s.lineLen == 0 && (c == ' ' || c == '\t'):
			s.refuse(faultChunk)
			return i, false
		default:
			s.lineLen++
		}
	}
	return len(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// h2Preface is the start of an HTTP/2 connection with prior knowledge
// (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// scanHead scans the request head at the start of b, resuming where the
// last call stopped. It returns the head's length once it is complete and
// acceptable (and sets the state for its body), 0 while it is incomplete,
// and -1 when the stream is refused.
func (s *scanner) scanHead(b []byte) int {
	h := &s.hd
	for {
		nl := bytes.IndexByte(b[h.pos:], '\n')
		if nl < 0 {
			return s.incomplete(b)
		}
		e := h.pos + nl // the LF
		if nl == 0 || b[e-1] != '\r' {
			s.refuse(faultBareLF)
			return -1
		}
		line := b[h.pos : e-1]
		next := e + 1
		if next > s.lim.headerBytes {
			s.refuse(faultHeaderBytes)
			return -1
		}
		switch {
		case !h.reqLine && len(line) == 0:
			// An empty line before the request line.
			h.lead = next
			if h.lead > maxLeadingCRLF {
				s.refuse(faultRequestLine)
				return -1
			}
		case !h.reqLine:
			if len(line) > s.lim.requestLine {
				s.refuse(faultRequestLineLength)
				return -1
			}
			if s.first && s.lim.h2c && h.pos == 0 && string(line) == h2Preface[:14] {
				if len(b) < len(h2Preface) {
					return 0
				}
				if string(b[:len(h2Preface)]) == h2Preface {
					s.st = stPass
					return len(b)
				}
			}
			if f := h.requestLine(line, h.pos); f != faultNone {
				s.refuse(f)
				return -1
			}
		case len(line) == 0:
			return s.finishHead(b, next)
		default:
			h.lines++
			if h.lines > s.lim.headerCount {
				s.refuse(faultHeaderCount)
				return -1
			}
			if line[0] == ' ' || line[0] == '\t' {
				s.refuse(faultObsFold)
				return -1
			}
			h.field(line, h.pos)
		}
		h.pos = next
	}
}

// incomplete checks the limits on a head that has not ended yet.
func (s *scanner) incomplete(b []byte) int {
	h := &s.hd
	switch {
	case !h.reqLine && len(b)-h.pos > s.lim.requestLine:
		s.refuse(faultRequestLineLength)
		return -1
	case len(b) > s.lim.headerBytes:
		s.refuse(faultHeaderBytes)
		return -1
	}
	return 0
}

// requestLine checks a request line (RFC 9112 §3) that starts at offset
// off of the head: method SP request-target SP HTTP-version. net/http
// splits it at its first two spaces; a target with a space in it leaves it
// a version it refuses.
func (h *head) requestLine(line []byte, off int) fault {
	h.reqLine = true
	const vlen = len(" HTTP/1.1")
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || len(line) < sp1+1+vlen+1 {
		return faultRequestLine
	}
	switch v := line[len(line)-vlen:]; string(v) {
	case " HTTP/1.1":
	case " HTTP/1.0":
		h.http10 = true
	default:
		return faultVersion
	}
	target := line[sp1+1 : len(line)-vlen]
	if bytes.IndexByte(target, ' ') >= 0 {
		return faultVersion
	}
	if bytes.IndexByte(target, '#') >= 0 {
		return faultRequestLine // a fragment is no part of a request-target (RFC 9112 §3.2)
	}
	if sp1 == len("CONNECT") && string(line[:sp1]) == "CONNECT" {
		return faultConnect
	}
	if target[0] != '/' && !(len(target) == 1 && target[0] == '*') {
		h.absOff, h.absLen = off+sp1+1, len(target)
	}
	return faultNone
}

// field notes the header fields that decide framing and routing. A name
// with any other spelling (a space before the colon, say) is not one of
// them, and net/http refuses the request for it.
func (h *head) field(line []byte, off int) {
	var name string
	var count, at, length *int
	switch line[0] | 0x20 {
	case 'c':
		name, count, at, length = "content-length", &h.clCount, &h.clOff, &h.clLen
	case 't':
		name, count, at, length = "transfer-encoding", &h.teCount, &h.teOff, &h.teLen
	case 'h':
		name, count, at, length = "host", &h.hosts, &h.hostOff, &h.hostLen
	default:
		return
	}
	n := len(name)
	if len(line) <= n || line[n] != ':' || !equalFold(line[:n], name) {
		return
	}
	*count++
	*at, *length = off+n+1, len(line)-n-1
}

// finishHead decides the framing of a complete head of end bytes (RFC 9112
// §6.1-6.3, strictly) and sets the state for its body.
func (s *scanner) finishHead(b []byte, end int) int {
	h := &s.hd
	f := faultNone
	switch {
	case h.teCount > 0:
		te := trimOWS(b[h.teOff : h.teOff+h.teLen])
		switch {
		case h.clCount > 0:
			f = faultCLTE
		case h.http10:
			f = faultTE10
		case h.teCount > 1 || !equalFold(te, "chunked"):
			f = faultTE
		default:
			s.st = stChunkLine
		}
	case h.clCount > 1:
		f = faultCLDup
	case h.clCount == 1:
		n, ok := parseLength(trimOWS(b[h.clOff : h.clOff+h.clLen]))
		if !ok {
			f = faultCL
		} else if n > 0 {
			s.st, s.remain = stBody, n
		}
	}
	if f == faultNone && h.hosts > 0 && (h.hosts > 1 || !validHost(trimOWS(b[h.hostOff:h.hostOff+h.hostLen]))) {
		f = faultHost
	}
	if f == faultNone && h.absLen > 0 && !absoluteMatchesHost(b[h.absOff:h.absOff+h.absLen], b, h) {
		f = faultAbsoluteForm
	}
	if f != faultNone {
		s.refuse(f)
		return -1
	}
	s.hd = head{}
	s.first = false
	return end
}

// absoluteMatchesHost reports whether an absolute-form target (RFC 9112
// §3.2.2) names the host the Host field names: the target's authority wins
// over Host in net/http, and a cache that keyed one and forwarded the
// other could be poisoned. Only http and https targets are accepted.
func absoluteMatchesHost(target, b []byte, h *head) bool {
	var rest []byte
	switch {
	case len(target) > 7 && equalFold(target[:7], "http://"):
		rest = target[7:]
	case len(target) > 8 && equalFold(target[:8], "https://"):
		rest = target[8:]
	default:
		return false
	}
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if !validHost(rest) {
		return false
	}
	if h.hosts == 0 {
		return h.http10
	}
	return h.hosts == 1 && equalFoldBytes(rest, trimOWS(b[h.hostOff:h.hostOff+h.hostLen]))
}

// validHost reports whether a Host value is a host name (letters,
// digits, '-', '.', '_') or a bracketed IPv6 literal, with an optional
// decimal port: the DNS-shaped subset of RFC 9110 §7.2 a CDN serves. What
// else RFC 3986 allows in a reg-name (sub-delims such as ',' and ';',
// percent-encoding) only serves to make the cache key and the origin's
// idea of the host differ.
func validHost(b []byte) bool {
	i := 0
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 3 {
			return false
		}
		for _, c := range b[1:end] {
			if _, ok := unhex(c); !ok && c != ':' && c != '.' {
				return false
			}
		}
		i = end + 1
	} else {
		for i < len(b) && hostChar[b[i]] {
			i++
		}
		if i == 0 {
			return false
		}
	}
	if i == len(b) {
		return true
	}
	port := b[i+1:]
	if b[i] != ':' || len(port) == 0 || len(port) > 5 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

var hostChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['.'], t['_'] = true, true, true
	return t
}()

// parseLength parses a Content-Length value: 1 to 18 digits, nothing else
// (RFC 9110 §8.6; no sign, no list).
func parseLength(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
