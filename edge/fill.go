package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// fill is one upstream fetch into the cache, run by runFill for a flight.
// Everything it needs is copied out of the client's request, which must not
// outlive its handler.
type fill struct {
	f       *flight
	site    *Host
	out     *http.Request // the upstream request, without context
	urlKey  string
	inTable bool // the flight is in the flight table
	// stale is the stored response being revalidated (nil for a plain
	// miss). The fill owns it.
	stale storage.Object
	// fwd is the Cache-Status forward reason for this fetch.
	fwd        string
	authorized bool        // the request carried Authorization (RFC 9111 §3.5)
	leaderVary http.Header // the leading request's fields, for its variant
	noStore    bool        // the leading request said no-store (RFC 9111 §5.2.1.5)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// startFill runs fl in a goroutine the Handler owns.
func (h *Handler) startFill(fl *fill) {
	h.fills.Add(1)
	h.metrics.fills.Inc()
	go func() {
		defer h.fills.Done()
		h.runFill(fl)
	}()
}

// runFill fetches the response and announces it to the flight's followers:
// stored and streamed, shared uncached, handed to the leader alone, a
// refreshed stored object, or an error.
func (h *Handler) runFill(fl *fill) {
	f := fl.f
	defer func() {
		h.leaveTable(fl)
		f.release()
	}()
	defer func() {
		if fl.stale != nil {
			fl.stale.Close()
		}
	}()
	ctx, cancel := context.WithCancel(h.ctx)
	idle := time.AfterFunc(h.cfg.IdleTimeout, cancel)
	defer idle.Stop()

	if f.hasLeader {
		// 1xx responses (RFC 9110 §15.2) go to the leading request only;
		// they are never stored.
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
				select {
				case f.interim <- interimResponse{code, http.Header(hdr).Clone()}:
				default: // the leader is not reading them: drop
				}
				return nil
			},
		})
	}
	reqTime := h.now()
	resp, err := fl.site.Transport.RoundTrip(fl.out.WithContext(ctx))
	if err != nil {
		cancel()
		h.fillFailed(fl, err, 0)
		return
	}
	respTime := h.now()
	h.metrics.originStatus(resp.StatusCode)

	if fl.stale != nil && resp.StatusCode == http.StatusNotModified &&
		!validatorApplies(fl.stale.Meta().Header, resp.Header) {
		// The 304 validates some other representation: fetch ours whole.
		drain(resp)
		fl.stale.Close()
		fl.stale = nil
		delete(fl.out.Header, "If-None-Match")
		delete(fl.out.Header, "If-Modified-Since")
		reqTime = h.now()
		if resp, err = fl.site.Transport.RoundTrip(fl.out.WithContext(ctx)); err != nil {
			cancel()
			h.fillFailed(fl, err, 0)
			return
		}
		respTime = h.now()
		h.metrics.originStatus(resp.StatusCode)
	}
	if fl.stale != nil {
		switch {
		case resp.StatusCode == http.StatusNotModified:
			drain(resp)
			cancel()
			h.refreshed(fl, resp, reqTime, respTime)
			return
		case resp.StatusCode >= 500 && h.staleIfError(fl.stale.Meta(), respTime):
			drain(resp)
			cancel()
			h.fillFailed(fl, fmt.Errorf("origin answered %d", resp.StatusCode), resp.StatusCode)
			return
		}
	}

	key := fl.f.key
	d := h.decide(respInput{
		key: key, urlKey: fl.urlKey, authorized: fl.authorized,
		reqTime: reqTime, respTime: respTime,
	}, resp)
	if len(d.meta.Vary) > 0 {
		// The response varies: it is stored as the variant the leading
		// request selects (RFC 9111 §4.1).
		d.meta.Key = variantKey(fl.urlKey, variantID(d.meta.Vary, fl.leaderVary))
	}
	if fl.noStore {
		d.store = false
	}
	status := cacheStatus{fwd: fl.fwd, fwdStatus: resp.StatusCode}
	res := flightResult{
		meta:         &d.meta,
		leaderHeader: d.leaderHeader,
		upstream:     d.upstream,
		vary:         d.meta.Vary,
		varyID:       variantID(d.meta.Vary, fl.leaderVary),
	}
	if !d.share {
		h.misses.mark(key, respTime.Add(h.cfg.HitForMissTTL))
		res.kind = outPrivate
		h.handOff(fl, &privateResponse{resp: resp, cancel: cancel, upstream: d.upstream, status: status}, res)
		return
	}
	defer cancel()
	defer resp.Body.Close()

	// The body is shared: stored when allowed, else spooled for the
	// followers only.
	var w storage.Writer
	if d.store {
		var err error
		if w, err = h.store.Put(ctx, d.meta); err != nil {
			h.log.Debug("not storing", "key", key, "err", err)
			w = nil
		}
	}
	var src bodyBuffer
	if w != nil {
		src = w
		f.hold(w)
	} else {
		sp, err := newSpool(h.cfg.SpoolDir)
		if err != nil {
			h.log.Error("spool", "err", err)
			h.fillFailed(fl, err, 0)
			return
		}
		src = sp
		f.hold(sp)
	}
	f.setSource(src)
	status.stored = w != nil
	res.kind, res.status = outStream, status
	f.publish(res)

	n, err := h.copyBody(f, resp.Body, &w, src, idle)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("body of %d bytes, declared %d: %w", n, resp.ContentLength, io.ErrUnexpectedEOF)
	}
	if err != nil {
		// A body cut short reaches every follower as an error and is
		// never stored.
		if w != nil {
			w.Abort()
		}
		h.metrics.fillErrors.Inc()
		h.log.Warn("fill failed", "url", fl.urlKey, "err", err)
		h.leaveTable(fl) // no request may join a failed flight
		f.finish(err)
		return
	}
	if w != nil && h.purgedMeanwhile(&d.meta) {
		w.Abort() // the followers still read the body from w
		w = nil
	}
	if w != nil {
		if err := w.Commit(); err != nil {
			h.log.Warn("commit failed", "key", d.meta.Key, "err", err)
		} else {
			h.misses.clear(key)
			if len(d.meta.Vary) > 0 {
				h.indexVariant(ctx, fl.urlKey, d.meta.Vary, d.meta.Key)
			}
		}
	}
	// Stored, then out of the table, then finished: a client receives
	// the body's last byte only at finish (flight.readAt), so its next
	// request finds the stored response rather than this flight.
	h.leaveTable(fl)
	f.finish(nil)
}

// copyBody copies the upstream body into src, announcing progress to the
// flight. When the storage writer refuses more bytes (the object outgrew
// the tier) the body moves to a spool and the followers read on from it.
func (h *Handler) copyBody(f *flight, body io.Reader, w *storage.Writer, src bodyBuffer, idle *time.Timer) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		k, rerr := body.Read(buf)
		idle.Reset(h.cfg.IdleTimeout)
		if k > 0 {
			if _, werr := src.Write(buf[:k]); werr != nil {
				if *w == nil || src != bodyBuffer(*w) {
					return n, fmt.Errorf("spool: %w", werr)
				}
				sp, err := h.spill(*w, n)
				if err != nil {
					return n, err
				}
				f.hold(sp)
				(*w).Abort()
				*w = nil
				src = sp
				f.setSource(sp)
				if _, err := src.Write(buf[:k]); err != nil {
					return n, fmt.Errorf("spool: %w", err)
				}
			}
			n += int64(k)
			f.advance(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// spill copies the first n bytes written to w into a new spool.
func (h *Handler) spill(w storage.Writer, n int64) (*spool, error) {
	sp, err := newSpool(h.cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(sp, io.NewSectionReader(w, 0, n)); err != nil {
		sp.Close()
		return nil, fmt.Errorf("spool: copy %d bytes: %w", n, err)
	}
	return sp, nil
}

// handOff gives an unshareable response to the request that started the
// flight (or drops it when that request has gone) and releases the other
// followers to fetch on their own.
func (h *Handler) handOff(fl *fill, pr *privateResponse, res flightResult) {
	f := fl.f
	f.hmu.Lock()
	taken := f.hasLeader && !f.leaderGone
	if taken {
		f.handoff = pr
	}
	f.hmu.Unlock()
	if !taken {
		pr.resp.Body.Close()
		pr.cancel()
	}
	// Later requests must not join a flight whose response they cannot use.
	h.leaveTable(fl)
	f.publish(res)
	f.finish(nil)
}

// purgedMeanwhile reports whether a hard purge issued after the response's
// request left (the bans compare with its RequestTime) matches it: such a
// response may predate the purge and is passed on but not stored. Checking
// at commit, not only at lookup, closes the window of a fill that outlives
// the purge index's sweep.
func (h *Handler) purgedMeanwhile(m *storage.Meta) bool {
	if h.cfg.Bans == nil {
		return false
	}
	_, soft, banned := h.cfg.Bans.Check(m)
	return banned && !soft
}

// leaveTable takes a fill's flight out of the flight table, so requests
// arriving from now on start afresh instead of joining it.
func (h *Handler) leaveTable(fl *fill) {
	if fl.inTable {
		h.flights.remove(fl.f)
	}
}

// takeHandoff returns the private response for the leader, or nil.
func (f *flight) takeHandoff() *privateResponse {
	f.hmu.Lock()
	defer f.hmu.Unlock()
	pr := f.handoff
	f.handoff = nil
	return pr
}

// leaderLeft records that the request that started the flight has gone,
// discarding a private response it can no longer receive.
func (f *flight) leaderLeft() {
	f.hmu.Lock()
	f.leaderGone = true
	pr := f.handoff
	f.handoff = nil
	f.hmu.Unlock()
	if pr != nil {
		pr.resp.Body.Close()
		pr.cancel()
	}
}

// fillFailed announces that the fetch failed: the stale copy is served
// where stale-if-error allows (RFC 5861 §4, RFC 9111 §4.2.4), else an error.
func (h *Handler) fillFailed(fl *fill, err error, upstreamStatus int) {
	h.metrics.fillErrors.Inc()
	now := h.now()
	detail := ""
	if fl.stale != nil {
		switch m := fl.stale.Meta(); {
		case h.staleIfError(m, now):
			detail = "stale-if-error"
		case upstreamStatus == 0 && h.staleWhenUnreachable(m, now):
			detail = "origin-unreachable"
		}
	}
	if detail != "" {
		obj := fl.stale
		fl.stale = nil // now the flight's
		fl.f.hold(obj)
		m := obj.Meta()
		fl.f.publish(flightResult{
			kind: outObject,
			meta: m,
			obj:  obj,
			status: cacheStatus{
				fwd: fwdStale, fwdStatus: upstreamStatus,
				ttl: ttlOf(m, currentAge(m, now)), hasTTL: true,
				detail: detail,
			},
		})
		fl.f.finish(nil)
		return
	}
	if !errors.Is(err, context.Canceled) {
		h.log.Warn("origin fetch failed", "url", fl.urlKey, "err", err)
	}
	h.leaveTable(fl)
	fl.f.publish(flightResult{kind: outError, err: err, status: cacheStatus{fwd: fl.fwd, fwdStatus: upstreamStatus}})
	fl.f.finish(err)
}

// staleIfError reports whether a stored response may be served stale
// because the origin failed.
func (h *Handler) staleIfError(m *storage.Meta, now time.Time) bool {
	if m.Flags&(flagNoStale|flagNoCache) != 0 {
		return false
	}
	return currentAge(m, now)-m.Lifetime < m.StaleIfError
}

// staleWhenUnreachable reports whether a stored response may be served
// stale because no response came from upstream at all: RFC 9111 §4.2.4 lets
// a disconnected cache do so unless a directive forbids it.
func (h *Handler) staleWhenUnreachable(m *storage.Meta, now time.Time) bool {
	if m.Flags&(flagNoStale|flagNoCache) != 0 || h.cfg.StaleIfUnreachable < 0 {
		return false
	}
	return currentAge(m, now)-m.Lifetime < h.cfg.StaleIfUnreachable
}

// refreshed handles a 304 to a revalidation (RFC 9111 §4.3.4): the stored
// header is updated from the 304's fields, the freshness recomputed, and
// the followers served the stored body.
func (h *Handler) refreshed(fl *fill, resp *http.Response, reqTime, respTime time.Time) {
	old := fl.stale.Meta()
	m := old.Clone()
	updateHeaders(m.Header, resp.Header)
	// Recompute freshness from the merged header, timed by this exchange.
	fake := &http.Response{StatusCode: old.Status, Header: m.Header, ContentLength: old.Size}
	d := h.decide(respInput{
		key: old.Key, urlKey: old.URL, authorized: fl.authorized,
		reqTime: reqTime, respTime: respTime,
	}, fake)
	m.Header = d.meta.Header
	m.RequestTime, m.ResponseTime = reqTime, respTime
	m.InitialAge, m.Lifetime = d.meta.InitialAge, d.meta.Lifetime
	m.StaleWhileRevalidate, m.StaleIfError = d.meta.StaleWhileRevalidate, d.meta.StaleIfError
	m.Flags, m.Tags = d.meta.Flags, d.meta.Tags
	stored := false
	if d.store {
		if err := h.store.Update(h.ctx, m); err == nil {
			stored = true
			h.misses.clear(fl.f.key)
		}
	} else {
		h.store.Delete(h.ctx, old.Key)
	}
	obj := &refreshedObject{Object: fl.stale, meta: m}
	fl.stale = nil
	fl.f.hold(obj)
	fl.f.publish(flightResult{
		kind: outObject,
		meta: &obj.meta,
		obj:  obj,
		status: cacheStatus{
			fwd: fl.fwd, fwdStatus: http.StatusNotModified, stored: stored,
			ttl: ttlOf(&m, currentAge(&m, respTime)), hasTTL: true,
		},
	})
	fl.f.finish(nil)
}

// updateHeaders replaces stored fields with those of a 304 (RFC 9111 §3.2),
// except Content-Length and the fields that describe the stored body's
// encoding or the upstream fetch. Age comes only from the 304: the stored
// response's own Age no longer applies once it is revalidated.
func updateHeaders(stored, fresh http.Header) {
	upd := fresh.Clone()
	removeHopByHop(upd)
	for name, v := range upd {
		switch name {
		case "Content-Length", "Content-Encoding", "Content-Range", "Cache-Status":
			continue
		}
		stored[name] = v
	}
	if _, ok := upd["Age"]; !ok {
		delete(stored, "Age")
	}
}

// validatorApplies reports whether a 304 may update a stored response
// (RFC 9111 §4.3.4): the validator the 304 carries must identify the stored
// response, a strong ETag by strong comparison and a weak one by weak
// comparison (a W/"b" 304 does not refresh a W/"a" response); without an
// ETag, its Last-Modified, when both have one, must be the same date. A 304
// with no validator refers to the stored response our request named.
func validatorApplies(stored, fresh http.Header) bool {
	if etag := fresh.Get("Etag"); etag != "" {
		s := stored.Get("Etag")
		return s != "" && etagsEqual(s, etag, isWeak(etag))
	}
	lm, slm := fresh.Get("Last-Modified"), stored.Get("Last-Modified")
	if lm == "" || slm == "" {
		return true
	}
	t, ok1 := parseHTTPDate(lm)
	st, ok2 := parseHTTPDate(slm)
	if ok1 && ok2 {
		return t.Equal(st)
	}
	return lm == slm
}

// refreshedObject is a stored object with metadata updated by a 304.
type refreshedObject struct {
	storage.Object
	meta storage.Meta
}

func (o *refreshedObject) Meta() *storage.Meta { return &o.meta }

func (o *refreshedObject) WriteRange(w io.Writer, off, n int64) (int64, error) {
	return writeRange(o.Object, w, off, n)
}

// writeRange copies n bytes at off from obj to w, through the object's
// RangeWriter when it has one.
func writeRange(obj storage.Object, w io.Writer, off, n int64) (int64, error) {
	if rw, ok := obj.(storage.RangeWriter); ok {
		return rw.WriteRange(w, off, n)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	k, err := io.CopyBuffer(w, io.NewSectionReader(obj, off, n), *bp)
	if err == nil && k < n {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// drain reads a little of a body we do not use so the connection can be
// reused, then closes it.
func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// indexVariant records a variant in the URL's variant index, so lookups
// know which request fields select it (RFC 9111 §4.1). The index keeps the
// newest MaxVariants; older variants are deleted.
func (h *Handler) indexVariant(ctx context.Context, urlKey string, vary []string, key string) {
	h.indexMu.Lock()
	defer h.indexMu.Unlock()
	var variants []string
	if o, err := h.store.Get(ctx, urlKey); err == nil {
		if m := o.Meta(); m.IsVariantIndex() && equalStrings(m.Vary, vary) {
			variants = append(variants, m.Variants...)
		}
		o.Close()
	}
	out := variants[:0]
	for _, v := range variants {
		if v != key {
			out = append(out, v)
		}
	}
	out = append(out, key)
	for len(out) > h.cfg.MaxVariants {
		h.store.Delete(ctx, out[0])
		out = out[1:]
	}
	w, err := h.store.Put(ctx, storage.Meta{Key: urlKey, URL: urlKey, Vary: vary, Variants: out, Size: 0, ResponseTime: h.now()})
	if err != nil {
		return
	}
	defer w.Close()
	if err := w.Commit(); err != nil {
		h.log.Warn("variant index", "url", urlKey, "err", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
