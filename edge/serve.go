package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	body     bodySource
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

// objectBody is the body of a stored object.
type objectBody struct{ obj storage.Object }

func (b objectBody) knownSize() int64                    { return b.obj.Meta().Size }
func (b objectBody) size(context.Context) (int64, error) { return b.obj.Meta().Size, nil }
func (b objectBody) writeRange(w io.Writer, off, n int64) (int64, error) {
	if n < 0 {
		n = b.obj.Meta().Size - off
	}
	return writeRange(b.obj, w, off, n)
}

// flightBody is the body of a response arriving through a flight; reads
// wait for bytes and flush what was written before they wait.
type flightBody struct {
	f        *flight
	ctx      context.Context
	declared int64 // Content-Length of the response, or -1
}

func (b flightBody) knownSize() int64 { return b.declared }

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
		k, err := b.f.readAt(b.ctx, p, off+written, flush)
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
	for k, v := range rep.header {
		hdr[k] = v
	}
	if !innerTier(r) {
		for _, f := range cdnHeaders {
			delete(hdr, f)
		}
	}
	now := h.now()
	if rep.age {
		hdr["Age"] = []string{ageValue(currentAge(m, now))}
	}
	hdr["Cache-Status"] = []string{withUpstream(rep.upstream, cs.format(h.cfg.Name))}
	h.addVia(hdr)
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
			size, err := rep.body.size(r.Context())
			if err != nil {
				h.abort(w, false)
				return
			}
			if ranges, ok := parseRange(rh[0], size); ok {
				h.writeRanges(w, r, rep, ranges, size)
				return
			}
		}
	}
	size := rep.body.knownSize()
	bodyless := status == http.StatusNoContent || status == http.StatusNotModified || status < 200
	switch {
	case bodyless:
		delete(hdr, "Content-Length")
	case size >= 0:
		if cl, ok := rep.header["Content-Length"]; !ok || len(cl) != 1 || !equalsInt(cl[0], size) {
			hdr["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		}
	default:
		delete(hdr, "Content-Length")
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || bodyless {
		return
	}
	if _, err := rep.body.writeRange(w, 0, size); err != nil {
		h.abort(w, true)
	}
}

// addVia adds this node to the response's Via (RFC 9110 §7.6.3: a proxy
// sends Via in each message it forwards).
func (h *Handler) addVia(hdr http.Header) {
	if prior, ok := hdr["Via"]; ok {
		hdr["Via"] = []string{strings.Join(prior, ", ") + ", " + h.via[0]}
		return
	}
	hdr["Via"] = h.via
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
		if _, err := rep.body.writeRange(w, rg.start, rg.length); err != nil {
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
		if _, err := rep.body.writeRange(w, rg.start, rg.length); err != nil {
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

// writeError sends an error generated by the edge, with a Cache-Status entry.
func (h *Handler) writeError(w http.ResponseWriter, status int, cs *cacheStatus) {
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
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// ttlOf is the remaining freshness of a stored response for Cache-Status,
// in the whole seconds of its Age header, so that Age plus ttl is the
// freshness lifetime.
func ttlOf(m *storage.Meta, age time.Duration) time.Duration {
	return m.Lifetime - age.Truncate(time.Second)
}
