package httpguard

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var testLimits = limits{requestLine: 200, headerBytes: 600, headerCount: 10}

const (
	get         = "GET /a HTTP/1.1\r\nHost: a.example\r\n\r\n"
	chunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	ch          = len(chunkedHead)
)

// scanTests are streams of requests and how far the scanner lets them
// through: wantLen bytes, then wantFault (faultNone: everything passed, or
// an incomplete head held back).
var scanTests = []struct {
	name      string
	give      string
	wantLen   int // -1: all of give
	wantFault fault
}{
	{"one GET", get, -1, faultNone},
	{"pipelined GETs", get + get + get, -1, faultNone},
	{"incomplete head held back", get + "GET /b HTTP/1.1\r\nHo", len(get), faultNone},
	{"Content-Length body", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + get, -1, faultNone},
	{"Content-Length with OWS", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length:\t 5 \r\n\r\nhello" + get, -1, faultNone},
	{"zero Content-Length", "POST /p HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n" + get, -1, faultNone},
	{"chunked body", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get, -1, faultNone},
	{"chunked, upper case, extension, trailer", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\nA;name=v\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n" + get, -1, faultNone},
	{"body bytes are not heads", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n\n\n" + get, -1, faultNone},
	{"leading CRLF ignored", "\r\n" + get, -1, faultNone},
	{"absolute-form for the same host", "GET http://A.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n", -1, faultNone},
	{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", -1, faultNone},
	{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", -1, faultNone},

	{"CL and TE", get + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n", len(get), faultCLTE},
	{"TE then CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nHost: a\r\n\r\n", 0, faultCLTE},
	{"CL and CHUNKED", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: CHUNKED\r\n\r\n", 0, faultCLTE},
	{"CL and TE with a tab", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n", 0, faultCLTE},
	{"CL and TE with a leading space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding:  chunked\r\n\r\n", 0, faultCLTE},
	{"CL and obs-folded TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 0, faultObsFold},
	{"two Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 0, faultCLDup},
	{"two equal Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", 0, faultCLDup},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n", 0, faultCL},
	{"signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n", 0, faultCL},
	{"hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\n", 0, faultCL},
	{"empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 0, faultCL},
	{"huge Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 0, faultCL},
	{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, faultTE},
	{"TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 0, faultTE},
	{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, faultTE},
	{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 0, faultTE},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, faultTE10},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", 0, faultObsFold},
	{"space before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, faultObsFold},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 0, faultBareLF},
	{"bare LF in a field", "GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", 0, faultBareLF},
	{"bare LF ending the head", get[:len(get)-2] + "\n", 0, faultBareLF},
	{"too many empty lines first", "\r\n\r\n\r\n" + get, 0, faultRequestLine},
	{"HTTP/0.9", "GET /\r\n\r\n", 0, faultRequestLine},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, faultVersion},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, faultVersion},
	{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 0, faultVersion},
	{"h2 preface without h2c", h2Preface, 0, faultVersion},
	{"space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 0, faultVersion},
	{"CONNECT", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 0, faultConnect},
	{"absolute-form for another host", "GET http://evil.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n", 0, faultAbsoluteForm},
	{"absolute-form with userinfo", "GET http://a.example@evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", 0, faultAbsoluteForm},
	{"absolute-form, other scheme", "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 0, faultAbsoluteForm},
	{"fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 0, faultRequestLine},
	{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, faultHost},
	{"Host with a comma", "GET / HTTP/1.1\r\nHost: a.example,b.example\r\n\r\n", 0, faultHost},
	{"Host with a bad port", "GET / HTTP/1.1\r\nHost: a.example:abc\r\n\r\n", 0, faultHost},
	{"Host with an open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 0, faultHost},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: evil@a.example\r\n\r\n", 0, faultHost},
	{"empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 0, faultHost},
	{"IPv6 Host with port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", -1, faultNone},
	{"request line too long", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: a\r\n\r\n", 0, faultRequestLineLength},
	{"request line too long, unfinished", "GET /" + strings.Repeat("a", 300), 0, faultRequestLineLength},
	{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", 10) + "\r\n", 0, faultHeaderCount},
	{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 600) + "\r\n\r\n", 0, faultHeaderBytes},
	{"head too large, unfinished", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 600), 0, faultHeaderBytes},
	{"chunk size not hex", chunkedHead + "z\r\n", ch, faultChunk},
	{"chunk size 0x", chunkedHead + "0x5\r\n", ch + 1, faultChunk},
	{"chunk size too long", chunkedHead + strings.Repeat("f", 17) + "\r\n", ch + 16, faultChunk},
	{"chunk size with space", chunkedHead + "5 \r\nhello\r\n0\r\n\r\n", ch + 1, faultChunk},
	{"chunk size line with bare LF", chunkedHead + "5\nhello\r\n0\r\n\r\n", ch + 1, faultChunk},
	{"chunk data longer than its size", chunkedHead + "1\r\nhello\r\n0\r\n\r\n", ch + 4, faultChunk},
	{"obs-fold in a trailer", chunkedHead + "0\r\nX: 1\r\n 2\r\n\r\n", ch + 9, faultChunk},
}

func TestScan(t *testing.T) {
	for _, tt := range scanTests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.wantLen
			if want < 0 {
				want = len(tt.give)
			}
			s := scanner{lim: &testLimits, first: true}
			got := s.scan([]byte(tt.give))
			assert.Equal(t, want, got, "bytes passed of %q", tt.give)
			assert.Equal(t, faults[tt.wantFault].label, faults[s.fault].label, "fault for %q", tt.give)
		})
	}
}

func TestScanH2Preface(t *testing.T) {
	lim := testLimits
	lim.h2c = true
	s := scanner{lim: &lim, first: true}
	in := h2Preface + "\x00\x00\x12\x04\x00\x00\x00\x00\x00"
	assert.Equal(t, len(in), s.scan([]byte(in)))
	assert.Equal(t, stPass, s.st)

	s = scanner{lim: &lim, first: true}
	assert.Equal(t, 0, s.scan([]byte(h2Preface[:20])), "a partial preface is held")
	assert.Equal(t, stHead, s.st)
}

// FuzzScanMatchesNetHTTP is the property that rules out a desync: every
// request net/http parses from bytes the scanner passed starts where the
// scanner accepted a head, so no request reaches a handler unchecked.
func FuzzScanMatchesNetHTTP(f *testing.F) {
	for _, tt := range scanTests {
		f.Add([]byte(tt.give))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var heads []int
		s := scanner{lim: &testLimits, first: true, heads: &heads}
		k := s.scan(in)
		if k > len(in) {
			t.Fatalf("scan passed %d of %d bytes", k, len(in))
		}
		cr := &countingReader{r: bytes.NewReader(in[:k])}
		br := bufio.NewReaderSize(cr, 1<<16)
		lastPOST := false
		for n := 0; ; n++ {
			off := cr.n - int64(br.Buffered())
			if off == int64(k) {
				return
			}
			if lastPOST { // net/http's server tolerance (conn.readRequest)
				peek, _ := br.Peek(4)
				br.Discard(leadingCRLF(peek))
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				return // net/http refuses: the connection closes
			}
			if n >= len(heads) || int64(heads[n]) != off {
				t.Fatalf("net/http read request %d (%s %s) at offset %d; the scanner's heads: %v; input %q",
					n, req.Method, req.RequestURI, off, heads, in)
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			lastPOST = req.Method == "POST"
		}
	})
}

func leadingCRLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
