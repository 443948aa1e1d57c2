package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"sync/atomic"
)

// maxBufferedBody is the largest request body forward reads before
// sending, so that it can be sent again (Request.GetBody): a transport
// such as origin.Pool retries a request lost to a dead connection only
// when it can replay its body.
const maxBufferedBody = 64 << 10

// forward passes a request the cache does not handle (any method but GET
// and HEAD) to the origin with its body, and relays the response. A
// non-error response to an unsafe method invalidates what is stored for the
// target URI and the same-origin URIs in Location and Content-Location
// (RFC 9111 §4.4).
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, site *Host, c *canonical) {
	out := h.upstreamRequest(r, c, false)
	out.Method = r.Method
	body := &clientBody{r: r.Body}
	out.Body = body
	out.ContentLength = r.ContentLength
	switch {
	case r.ContentLength == 0:
		out.Body = nil
	case r.ContentLength <= maxBufferedBody:
		// A small body is read first and kept, so the request can be
		// sent again when its connection to the origin turns out dead
		// (origin.Pool retries idempotent requests with GetBody set).
		// So is an unsized (chunked) one that ends within the limit:
		// it goes with its length, and one whose framing is broken is
		// refused before the origin sees anything of it.
		var b []byte
		var err error
		if r.ContentLength > 0 {
			b = make([]byte, r.ContentLength)
			_, err = io.ReadFull(r.Body, b)
		} else {
			b, err = io.ReadAll(io.LimitReader(r.Body, maxBufferedBody+1))
		}
		if err != nil {
			h.writeError(w, http.StatusBadRequest, &cacheStatus{fwd: fwdMethod})
			return
		}
		if len(b) > maxBufferedBody { // unsized and longer: stream the rest
			body.r = io.MultiReader(bytes.NewReader(b), r.Body)
			break
		}
		out.ContentLength = int64(len(b))
		out.Body = io.NopCloser(bytes.NewReader(b))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		if len(b) == 0 {
			out.Body, out.GetBody = nil, nil
		}
	}
	// 1xx responses are relayed as they arrive (RFC 9110 §15.2); the
	// callback runs while this goroutine waits in RoundTrip.
	out = out.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
			writeInterim(w, code, http.Header(hdr))
			return nil
		},
	}))
	resp, err := site.Transport.RoundTrip(out)
	if err != nil {
		status := errorStatus(err)
		if body.failed.Load() {
			status = http.StatusBadRequest // the client's body broke, not the origin
		}
		h.writeError(w, status, &cacheStatus{fwd: fwdMethod})
		return
	}
	defer resp.Body.Close()
	h.metrics.originStatus(resp.StatusCode)
	if !safeMethod(r.Method) && resp.StatusCode < 400 {
		h.invalidate(r.Context(), c, resp.Header)
	}
	cs := cacheStatus{fwd: fwdMethod, fwdStatus: resp.StatusCode}
	h.relay(w, r, resp, resp.Header["Cache-Status"], &cs)
}

// clientBody is a request body streamed to the origin; failed records
// that reading it from the client failed (a malformed chunk, a client
// gone), which makes a failed exchange the client's fault (400), not the
// origin's (502).
type clientBody struct {
	r      io.Reader
	failed atomic.Bool // set by the Transport's writing goroutine
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.failed.Store(true)
	}
	return n, err
}

func (b *clientBody) Close() error { return nil } // the server closes the client's body

// writeInterim sends a 1xx response with its own fields, leaving the
// final response's header as it was.
func writeInterim(w http.ResponseWriter, code int, hdr http.Header) {
	if code == http.StatusSwitchingProtocols || code < 100 || code > 199 {
		return
	}
	dst := w.Header()
	for k, v := range hdr {
		dst[k] = v
	}
	w.WriteHeader(code)
	for k := range hdr {
		delete(dst, k)
	}
}

// relay copies an upstream response to the client as it arrives.
func (h *Handler) relay(w http.ResponseWriter, r *http.Request, resp *http.Response, upstream []string, cs *cacheStatus) {
	hdr := w.Header()
	for k, v := range resp.Header {
		hdr[k] = v
	}
	removeHopByHop(hdr)
	if !innerTier(r) {
		for _, f := range cdnHeaders {
			delete(hdr, f)
		}
	}
	hdr["Cache-Status"] = []string{withUpstream(upstream, cs.format(h.cfg.Name))}
	if resp.ContentLength >= 0 && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		hdr["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	h.metrics.served(cs)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, err := io.CopyBuffer(flushWriter{w}, resp.Body, *bp)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		panic(http.ErrAbortHandler)
	}
}

// flushWriter flushes after every write, so a relayed response streams to
// the client as fast as it arrives.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// safeMethod reports the methods RFC 9110 §9.2.1 defines as safe.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// invalidate removes the stored responses for the target URI and for the
// Location and Content-Location URIs that share its origin (RFC 9111 §4.4).
func (h *Handler) invalidate(ctx context.Context, c *canonical, resp http.Header) {
	h.purgeURL(ctx, c.String())
	base := c.URL()
	for _, f := range [...]string{"Location", "Content-Location"} {
		v := resp.Get(f)
		if v == "" {
			continue
		}
		u, err := base.Parse(v)
		if err != nil || u.Scheme != c.scheme || u.Host != c.host {
			continue // only the same origin (§4.4: prevents denial of service)
		}
		target, err := canonicalize(u.Scheme, u.Host, u.EscapedPath(), u.RawQuery, nil)
		if err == nil {
			h.purgeURL(ctx, target.String())
		}
	}
}

// purgeURL deletes what is stored for a URL key: its object or variant
// index, and everything that stands under it.
func (h *Handler) purgeURL(ctx context.Context, urlKey string) { h.dropEntry(ctx, urlKey) }

// errorStatus maps an upstream failure to the status the client sees:
// 504 when the origin timed out, 502 otherwise.
func errorStatus(err error) int {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// upstreamRequest builds the request sent upstream from the client's: the
// canonical URL, the client's end-to-end fields with X-Forwarded-For, Via
// and CDN-Loop added. For a fill (cache=true) the method is GET and the
// conditional and Range fields are left out: the cache answers those
// itself from the whole response.
func (h *Handler) upstreamRequest(r *http.Request, c *canonical, cache bool) *http.Request {
	hdr := r.Header.Clone()
	if hdr == nil {
		hdr = make(http.Header)
	}
	removeHopByHop(hdr)
	if cache {
		for _, f := range conditionalFields {
			delete(hdr, f)
		}
	}
	delete(hdr, purgedAtField) // only this node says when it purged
	if cache {
		// The coding of what is stored: identity when Outpost compresses
		// (it negotiates with clients itself, compress.go); else the one
		// coding the client would be given, as the cache key has it
		// (normalizeFieldValue), so a response that varies on it is right
		// for every client sharing the key.
		switch cd := negotiate(hdr["Accept-Encoding"], allCodings); {
		case !h.comp.off:
			hdr["Accept-Encoding"] = []string{"identity"}
		case cd == identity:
			delete(hdr, "Accept-Encoding")
		default:
			hdr["Accept-Encoding"] = []string{cd.String()}
		}
	}
	h.sanitizeUpstream(hdr, r, c)
	appendField(hdr, "Via", viaValue(r)+" "+h.cfg.Name)
	appendField(hdr, "Cdn-Loop", h.loopID)
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{""} // do not add Go's
	}
	u := c.URL()
	return &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Host:       c.host,
		Header:     hdr,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
}

// viaValue is the received-protocol of a Via entry (RFC 9110 §7.6.3).
func viaValue(r *http.Request) string {
	if r.ProtoMajor == 1 {
		return "1." + strconv.Itoa(r.ProtoMinor)
	}
	return strconv.Itoa(r.ProtoMajor)
}
