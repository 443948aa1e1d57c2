package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// representation is a response the edge answers from: a stored object, or
// one arriving through a flight.
type representation struct {
	meta     *storage.Meta // status, stored header, clock facts for Age
	header   http.Header   // the header to send; meta.Header unless the leader's differs
	upstream []string      // Cache-Status entries from upstream (forwarded responses)
	age      bool          // send Age
	// obj is the body when it is a stored object, else body is. (A stored
	// object is kept as it is rather than boxed into a bodySource: no
	// allocation on a hit.)
	obj  storage.Object
	body bodySource
}

// knownSize returns the body length, or -1 while it is still arriving
// without a declared length.
func (rep *representation) knownSize() int64 {
	if rep.obj != nil {
		return rep.obj.Meta().Size
	}
	return rep.body.knownSize()
}

// size waits for the body length.
func (rep *representation) size(ctx context.Context) (int64, error) {
	if rep.obj != nil {
		return rep.obj.Meta().Size, nil
	}
	return rep.body.size(ctx)
}

// writeRange copies n bytes of the body from off to w; n < 0 means to the
// end.
func (rep *representation) writeRange(w io.Writer, off, n int64) (int64, error) {
	if rep.obj == nil {
		return rep.body.writeRange(w, off, n)
	}
	if n < 0 {
		n = rep.obj.Meta().Size - off
	}
	return writeRange(rep.obj, w, off, n)
}

// bodySource is the body of a representation.
type bodySource interface {
	// knownSize returns the body length, or -1 while it is still arriving
	// without a declared length.
	knownSize() int64
	// size waits for the body length.
	size(ctx context.Context) (int64, error)
	// writeRange copies n bytes from off to w; n < 0 means to the end.
	writeRange(w io.Writer, off, n int64) (int64, error)
}

// flightBody is the body of a response arriving through a flight; reads
// wait for bytes and flush what was written before they wait.
type flightBody struct {
	f        *flight
	ctx      context.Context
	declared int64 // Content-Length of the response, or -1
}

func (b flightBody) knownSize() int64 {
	if b.declared < 0 {
		if n, ok := b.f.complete(); ok {
			return n
		}
	}
	return b.declared
}

func (b flightBody) size(ctx context.Context) (int64, error) {
	if b.declared >= 0 {
		return b.declared, nil
	}
	return b.f.size(ctx)
}

func (b flightBody) writeRange(w io.Writer, off, n int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	flush := func() {}
	if fl, ok := w.(http.Flusher); ok {
		flush = fl.Flush
	}
	var written int64
	for n < 0 || written < n {
		p := buf
		if n >= 0 {
			p = p[:min(int64(len(p)), n-written)]
		}
		k, err := b.f.readAt(b.ctx, p, off+written, b.declared, flush)
		if k > 0 {
			m, werr := w.Write(p[:k])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		if err == io.EOF && n < 0 {
			return written, nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return written, err
		}
	}
	return written, nil
}

// respond writes a representation: headers with Age and Cache-Status, then
// whatever the request's preconditions and Range select (RFC 9110 §13,
// §14). A failure after the headers are sent aborts the response, so a
// client never takes a short body for a whole one.
func (h *Handler) respond(w http.ResponseWriter, r *http.Request, rep *representation, cs *cacheStatus) {
	m := rep.meta
	hdr := w.Header()
	inner := innerTier(r)
	for k, v := range rep.header {
		// Content-Length is set below; fields for CDNs leave only
		// towards another tier. Skipping them here rather than deleting
		// them after keeps the map as small as the response.
		if k == "Content-Length" || !inner && isCDNHeader(k) {
			continue
		}
		hdr[k] = v
	}
	if inner {
		setOriginTime(hdr, m) // origintime.go
	}
	now := h.now()
	vals := make([]string, 2) // one allocation for the values of both fields
	if rep.age {
		vals[0] = ageValue(currentAge(m, now))
		hdr["Age"] = vals[0:1:1]
	}
	vals[1] = withUpstream(rep.upstream, cs.format(h.cfg.Name))
	hdr["Cache-Status"] = vals[1:2:2]
	h.metrics.served(cs)

	status := m.Status
	if status/100 == 2 {
		switch evalPreconditions(r, rep.header, m.ResponseTime) {
		case notModified:
			writeNotModified(w)
			return
		case failed:
			writeBodyless(w, http.StatusPreconditionFailed)
			return
		}
	}
	if status == http.StatusOK && r.Method == http.MethodGet {
		if rh, ok := r.Header["Range"]; ok && len(rh) == 1 && ifRangeAllows(r, rep.header) {
			size, err := rep.size(r.Context())
			if err != nil {
				h.abort(w, false)
				return
			}
			if ranges, ok := h.clientRanges(rh[0], size); ok {
				h.writeRanges(w, r, rep, ranges, size)
				return
			}
		}
	}
	size := rep.knownSize()
	bodyless := status == http.StatusNoContent || status == http.StatusNotModified || status < 200
	if rep.obj != nil && !bodyless && r.Method == http.MethodGet && size >= 0 && size <= smallBody {
		h.writeSmall(w, status, rep.obj, size)
		return
	}
	if !bodyless && size >= 0 {
		if cl, ok := rep.header["Content-Length"]; ok && len(cl) == 1 && equalsInt(cl[0], size) {
			hdr["Content-Length"] = cl
		} else {
			hdr["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		}
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || bodyless {
		return
	}
	if _, err := rep.writeRange(w, 0, size); err != nil {
		h.abort(w, true)
	}
}

// smallBody is the largest stored body writeSmall sends. net/http buffers
// 2048 bytes before it must choose between Content-Length and chunking.
const smallBody = 2048

// writeSmall sends a small stored body in one Write, without a
// Content-Length field in the header map: net/http computes the length
// itself for a body that is whole when the handler returns
// (http.ResponseWriter.Write: "under a few KB and there are no Flush
// calls"). One entry fewer keeps a typical hit's header map within Go's
// small-map size, which the map and net/http's copy of it pay for on every
// request.
func (h *Handler) writeSmall(w http.ResponseWriter, status int, obj storage.Object, size int64) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b := (*bp)[:size]
	if n, _ := obj.ReadAt(b, 0); n < len(b) {
		h.abort(w, false) // a short read: 502, never a short body
		return
	}
	w.WriteHeader(status)
	w.Write(b)
}

// writeRanges answers a satisfiable or unsatisfiable Range request.
func (h *Handler) writeRanges(w http.ResponseWriter, r *http.Request, rep *representation, ranges []byteRange, size int64) {
	hdr := w.Header()
	if len(ranges) == 0 {
		// RFC 9110 §15.5.17: 416 with the current length.
		hdr["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
		delete(hdr, "Content-Type")
		delete(hdr, "Content-Encoding")
		hdr["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	if len(ranges) == 1 {
		rg := ranges[0]
		hdr["Content-Range"] = []string{contentRange(rg, size)}
		hdr["Content-Length"] = []string{strconv.FormatInt(rg.length, 10)}
		w.WriteHeader(http.StatusPartialContent)
		if _, err := rep.writeRange(w, rg.start, rg.length); err != nil {
			h.abort(w, true)
		}
		return
	}
	// multipart/byteranges (RFC 9110 §14.6), with an exact Content-Length.
	boundary := newBoundary()
	ctype := rep.header.Get("Content-Type")
	heads := make([]string, len(ranges))
	total := int64(0)
	for i, rg := range ranges {
		heads[i] = "\r\n--" + boundary + "\r\n"
		if ctype != "" {
			heads[i] += "Content-Type: " + ctype + "\r\n"
		}
		heads[i] += "Content-Range: " + contentRange(rg, size) + "\r\n\r\n"
		total += int64(len(heads[i])) + rg.length
	}
	tail := "\r\n--" + boundary + "--\r\n"
	total += int64(len(tail))
	hdr["Content-Type"] = []string{"multipart/byteranges; boundary=" + boundary}
	hdr["Content-Length"] = []string{strconv.FormatInt(total, 10)}
	delete(hdr, "Content-Range")
	w.WriteHeader(http.StatusPartialContent)
	for i, rg := range ranges {
		if _, err := io.WriteString(w, heads[i]); err != nil {
			h.abort(w, true)
		}
		if _, err := rep.writeRange(w, rg.start, rg.length); err != nil {
			h.abort(w, true)
		}
	}
	if _, err := io.WriteString(w, tail); err != nil {
		h.abort(w, true)
	}
}

// equalsInt reports whether s is the decimal form of n, without allocating.
func equalsInt(s string, n int64) bool {
	v, err := parseDigits(s)
	return err == nil && v == n
}

func newBoundary() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeNotModified sends a 304 (RFC 9110 §15.4.5): the fields a 200 would
// have carried that guide caches, without the representation's content
// metadata.
func writeNotModified(w http.ResponseWriter) {
	hdr := w.Header()
	for _, f := range [...]string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding"} {
		delete(hdr, f)
	}
	w.WriteHeader(http.StatusNotModified)
}

func writeBodyless(w http.ResponseWriter, status int) {
	hdr := w.Header()
	for _, f := range [...]string{"Content-Type", "Content-Encoding", "Content-Range", "Etag", "Last-Modified"} {
		delete(hdr, f)
	}
	hdr["Content-Length"] = []string{"0"}
	w.WriteHeader(status)
}

// abort ends a response that cannot be completed. Before the headers are
// sent it answers 502; after, it breaks the connection (STYLE: a failed
// body copy aborts with http.ErrAbortHandler), so the client sees an error
// instead of a short body.
func (h *Handler) abort(w http.ResponseWriter, headersSent bool) {
	if !headersSent {
		h.writeError(w, http.StatusBadGateway, nil)
		return
	}
	panic(http.ErrAbortHandler)
}

// innerTier reports whether the request came from another CDN tier (it
// carries CDN-Loop, RFC 8586), which still needs the fields meant for CDNs.
func innerTier(r *http.Request) bool {
	_, ok := r.Header["Cdn-Loop"]
	return ok
}

// errorBodies are the short bodies of errors the edge generates; they
// name no internal detail.
var errorBodies = map[int]string{
	http.StatusBadRequest:          "400 Bad Request\n",
	http.StatusMisdirectedRequest:  "421 Misdirected Request\n",
	http.StatusBadGateway:          "502 Bad Gateway\n",
	http.StatusGatewayTimeout:      "504 Gateway Timeout\n",
	http.StatusLoopDetected:        "508 Loop Detected\n",
	http.StatusServiceUnavailable:  "503 Service Unavailable\n",
	http.StatusMethodNotAllowed:    "405 Method Not Allowed\n",
	http.StatusRequestURITooLong:   "414 URI Too Long\n",
	http.StatusPreconditionFailed:  "412 Precondition Failed\n",
	http.StatusInternalServerError: "500 Internal Server Error\n",
}

// writeError sends an error generated by the edge, with a Cache-Status entry
// and the header fields in extra (name, value pairs).
func (h *Handler) writeError(w http.ResponseWriter, status int, cs *cacheStatus, extra ...string) {
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	body := errorBodies[status]
	if body == "" {
		body = strconv.Itoa(status) + " " + http.StatusText(status) + "\n"
	}
	if cs == nil {
		cs = &cacheStatus{detail: "error"}
	}
	hdr["Cache-Status"] = []string{cs.format(h.cfg.Name)}
	hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	hdr["Cache-Control"] = []string{"no-store"}
	hdr["Date"] = []string{h.now().UTC().Format(http.TimeFormat)}
	for i := 0; i+1 < len(extra); i += 2 {
		hdr[extra[i]] = []string{extra[i+1]}
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// ttlOf is the remaining freshness of a stored response for Cache-Status,
// in the whole seconds of its Age header, so that Age plus ttl is the
// freshness lifetime.
func ttlOf(m *storage.Meta, age time.Duration) time.Duration {
	return m.Lifetime - age.Truncate(time.Second)
}
