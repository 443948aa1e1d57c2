package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// fastWriter is the fast path's http.ResponseWriter. It follows net/http's
// rules for the header it sends (chunkWriter.writeHeader): Content-Length
// computed for a body that is whole when the handler returns, chunked
// encoding otherwise (HTTP/1.1; HTTP/1.0 closes), Content-Type sniffed when
// unset, Date added, the fields a 204 or 304 must not carry dropped,
// "Connection: close" when the connection ends after the response. The
// header is rendered with the first bytes of the body into one buffer and
// sent in one write. One fastWriter serves every request of its
// connection, in turn.
type fastWriter struct {
	fc  *fastConn
	req *http.Request
	hdr http.Header // reused: cleared for each request

	status      int
	wroteHeader bool  // the status is set
	sent        bool  // the header is rendered into out
	head        bool  // a HEAD request: no body is sent
	clen        int64 // Content-Length, -1 while unknown
	written     int64 // body bytes the handler wrote
	chunked     bool
	closeAfter  bool
	closing     bool // the server is shutting down
	err         error

	outp *[]byte
	out  []byte // what is due on the wire
}

// outSize is the buffer a response collects before a write.
const outSize = 16 << 10

var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, outSize); return &b }}

func (w *fastWriter) reset(req *http.Request, closing bool) {
	clear(w.hdr)
	*w = fastWriter{fc: w.fc, req: req, hdr: w.hdr, head: req.Method == http.MethodHead, clen: -1, closing: closing, outp: w.outp, out: w.out}
	if w.outp == nil {
		w.outp = outBufs.Get().(*[]byte)
		w.out = (*w.outp)[:0]
	}
}

// release gives the buffer back when the connection ends.
func (w *fastWriter) release() {
	if w.outp != nil && cap(w.out) == outSize {
		*w.outp = w.out[:0]
		outBufs.Put(w.outp)
	}
	w.outp, w.out = nil, nil
}

func (w *fastWriter) Header() http.Header { return w.hdr }

func (w *fastWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return // net/http logs a superfluous call and ignores it
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once; the header map
		// stays for the final one (RFC 8297).
		w.out = appendStatusLine(w.out, w.req.ProtoMinor == 1, code)
		w.out = w.appendFields(w.out, true)
		w.out = append(w.out, "\r\n"...)
		w.flush()
		return
	}
	w.wroteHeader, w.status = true, code
	if cl := w.hdr.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.clen = v
		} else {
			delete(w.hdr, "Content-Length") // as net/http, which logs it
		}
	}
}

func (w *fastWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.clen >= 0 && w.written+int64(len(p)) > w.clen {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	w.written += int64(len(p))
	if !w.sent {
		if len(w.out)+len(p) <= cap(w.out) {
			w.out = append(w.out, p...) // the body so far; the header goes in front
			return len(p), nil
		}
		w.commit(false, p)
	}
	if w.head {
		return len(p), nil
	}
	if w.chunked {
		w.out = strconv.AppendInt(w.out, int64(len(p)), 16)
		w.out = append(w.out, "\r\n"...)
	}
	if len(w.out)+len(p) <= cap(w.out) {
		w.out = append(w.out, p...)
	} else {
		w.writev(p)
	}
	if w.chunked {
		w.out = append(w.out, "\r\n"...)
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// ReadFrom sends a body of declared length from src with the
// connection's ReadFrom (sendfile for a file of the disk tier), after the
// header and what is buffered; any other body goes through Write.
func (w *fastWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.fc.wc.(io.ReaderFrom)
	if !ok || w.head || !bodyAllowed(w.status) || w.clen < 0 || w.err != nil {
		return io.Copy(writerOnly{w}, src)
	}
	if !w.sent {
		w.commit(false, nil)
	}
	w.flush()
	if w.err != nil {
		return 0, w.err
	}
	lr, ok := src.(*io.LimitedReader)
	if !ok || lr.N > w.clen-w.written {
		lr = &io.LimitedReader{R: src, N: w.clen - w.written}
	}
	n, err := rf.ReadFrom(lr)
	w.written += n
	if err != nil {
		w.err = err
	}
	return n, err
}

type writerOnly struct{ io.Writer }

// Flush sends the header and what the body has so far.
func (w *fastWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.commit(false, nil)
	}
	w.flush()
}

// finish completes the response after the handler returned and reports
// whether the connection may be kept.
func (w *fastWriter) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.commit(true, nil)
	}
	if w.chunked {
		w.out = append(w.out, "0\r\n\r\n"...)
	}
	w.flush()
	if w.clen >= 0 && w.written != w.clen && !w.head && bodyAllowed(w.status) {
		return false // a short body: the client must not take the next bytes for a response
	}
	return w.err == nil && !w.closeAfter && !w.closing
}

// commit renders the header in front of the body bytes in out, as
// net/http's chunkWriter.writeHeader decides it; next, when out holds no
// body yet, is the write about to follow (for sniffing a Content-Type).
func (w *fastWriter) commit(final bool, next []byte) {
	w.sent = true
	w.closing = w.closing || w.fc.s.closing.Load()
	body := w.out // held back so far: the body's first bytes
	hdr, code := w.hdr, w.status
	te := hdr.Get("Transfer-Encoding")
	var setCL, setType, setConn, setTE string
	var skipCL, skipTE, skipConn, skipType bool
	if final && te == "" && bodyAllowed(code) && w.clen < 0 && (!w.head || len(body) > 0) {
		w.clen = int64(len(body))
		setCL = strconv.FormatInt(w.clen, 10)
	}
	http10 := w.req.ProtoMinor == 0
	connVal := hdr.Get("Connection")
	wants10KeepAlive := http10 && httpguts.HeaderValuesContainsToken(w.req.Header["Connection"], "keep-alive")
	if wants10KeepAlive && !w.closing && hdr.Get("Content-Length") != "" && connVal == "keep-alive" {
		w.closeAfter = false
	}
	hasCL := w.clen >= 0
	if wants10KeepAlive && (w.head || hasCL || !bodyAllowed(code)) {
		if _, ok := hdr["Connection"]; !ok {
			setConn = "keep-alive"
		}
	} else if http10 || w.req.Close {
		w.closeAfter = true
	}
	if connVal == "close" || w.closing {
		w.closeAfter = true
	}
	if bodyAllowed(code) {
		_, haveType := hdr["Content-Type"]
		sniff := body
		if len(sniff) == 0 {
			sniff = next
		}
		if !haveType && hdr.Get("Content-Encoding") == "" && te == "" && len(sniff) > 0 {
			setType = http.DetectContentType(sniff)
		}
	} else {
		skipCL, skipTE = true, true
		skipType = code == http.StatusNotModified
	}
	if hasCL && te != "" && te != "identity" {
		skipCL, hasCL = true, false
	}
	switch {
	case w.head || !bodyAllowed(code):
		skipTE = true
	case hasCL:
		skipTE = true
	case !http10:
		if te == "identity" {
			w.closeAfter, skipTE = true, true
		} else {
			w.chunked, setTE = true, "chunked"
			skipTE = te == "chunked"
		}
	default:
		w.closeAfter, skipTE = true, true
	}
	if w.chunked {
		skipCL = true
	}
	if w.closeAfter && !hasToken(connVal, "close") {
		skipConn = true
		if !http10 {
			setConn = "close"
		}
	}

	hp := outBufs.Get().(*[]byte)
	h := (*hp)[:0]
	h = appendStatusLine(h, !http10, code)
	keys := w.fc.sortedKeys[:0]
	for k := range hdr {
		switch {
		case skipCL && k == "Content-Length", skipTE && k == "Transfer-Encoding",
			skipConn && k == "Connection", skipType && k == "Content-Type":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h = appendField(h, k, hdr[k])
	}
	w.fc.sortedKeys = keys[:0]
	if _, ok := hdr["Date"]; !ok {
		h = append(h, "Date: "...)
		h = append(h, currentDate()...)
		h = append(h, "\r\n"...)
	}
	for _, f := range [...]struct{ k, v string }{{"Content-Length", setCL}, {"Content-Type", setType}, {"Connection", setConn}, {"Transfer-Encoding", setTE}} {
		if f.v != "" {
			h = append(h, f.k...)
			h = append(h, ": "...)
			h = append(h, f.v...)
			h = append(h, "\r\n"...)
		}
	}
	h = append(h, "\r\n"...)
	// The header, then the body so far, in h; h becomes out.
	if !w.head && bodyAllowed(code) && len(body) > 0 {
		if w.chunked {
			h = strconv.AppendInt(h, int64(len(body)), 16)
			h = append(h, "\r\n"...)
		}
		h = append(h, body...)
		if w.chunked {
			h = append(h, "\r\n"...)
		}
	}
	w.out, h = h, w.out[:0]
	w.outp, hp = hp, w.outp
	*hp = h[:0]
	if cap(h) == outSize {
		outBufs.Put(hp)
	}
}

// flush writes out.
func (w *fastWriter) flush() {
	if len(w.out) > 0 && w.err == nil {
		_, w.err = w.fc.wc.Write(w.out)
	}
	w.out = w.out[:0]
}

// writev writes out and then p, in one system call where the connection
// allows.
func (w *fastWriter) writev(p []byte) {
	if w.err == nil {
		bufs := net.Buffers{w.out, p}
		if bw, ok := w.fc.wc.(buffersWriter); ok {
			_, w.err = bw.WriteBuffers(&bufs)
		} else {
			_, w.err = bufs.WriteTo(w.fc.wc)
		}
	}
	w.out = w.out[:0]
}

// buffersWriter is a connection that writes net.Buffers with writev
// through its wrappers (limitedConn, sendTimeoutConn).
type buffersWriter interface {
	WriteBuffers(*net.Buffers) (int64, error)
}

func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

func appendStatusLine(b []byte, http11 bool, code int) []byte {
	if http11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	if text := http.StatusText(code); text != "" {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, text...)
	} else {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, " status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// appendFields renders every field of the header map, sorted (for an
// informational response: without the ones net/http leaves out there).
func (w *fastWriter) appendFields(b []byte, informational bool) []byte {
	keys := w.fc.sortedKeys[:0]
	for k := range w.hdr {
		if informational && (k == "Content-Length" || k == "Transfer-Encoding" || k == "Trailer") {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendField(b, k, w.hdr[k])
	}
	w.fc.sortedKeys = keys[:0]
	return b
}

// appendField renders one field as net/http's Header.Write does: a name
// that is no token is left out, line breaks in values become spaces.
func appendField(b []byte, k string, vs []string) []byte {
	if !httpguts.ValidHeaderFieldName(k) {
		return b
	}
	for _, v := range vs {
		b = append(b, k...)
		b = append(b, ": "...)
		if hasLineBreak(v) {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v) // as net/http: each one a space
		}
		b = append(b, strings.Trim(v, " \t")...)
		b = append(b, "\r\n"...)
	}
	return b
}

// hasLineBreak is strings.ContainsAny(v, "\r\n") without building a set
// per call (a hit renders some ten values).
func hasLineBreak(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated list v holds token.
func hasToken(v, token string) bool { return httpguts.HeaderValuesContainsToken([]string{v}, token) }
