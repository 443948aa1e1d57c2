package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// runSliceFill runs a slice fill for its flight (keyed by the URL): it asks
// upstream for one slice and announces the outcome. A sliceable 206 becomes
// (or refreshes) the slice index and the flight announces outSliced, the
// slice itself streaming into its own flight; a 304 refreshes the index;
// anything else is handed to the whole-object fill, which then owns the
// flight.
func (h *Handler) runSliceFill(sf *sliceFill) {
	fl, f := sf.fill, sf.f
	handedOver := false
	defer func() {
		if !handedOver {
			h.leaveTable(fl)
			f.release()
		}
	}()
	ctx, cancel := context.WithCancel(h.ctx)
	defer func() {
		if !handedOver {
			cancel()
		}
	}()
	idle := time.AfterFunc(h.cfg.IdleTimeout, cancel)
	defer idle.Stop()
	// whole hands the flight to fill.go: with resp as the upstream answer,
	// or, when resp is nil, with a fetch of its own (fl.out asks for no
	// range and carries no validators).
	whole := func(resp *http.Response) {
		handedOver = true
		idle.Stop()
		if resp == nil {
			cancel()
		} else {
			site := *fl.site
			site.Transport = &preloaded{resp: resp, cancel: cancel, next: fl.site.Transport}
			fl.site = &site
		}
		h.runFill(fl)
	}

	reqTime := h.now()
	resp, err := fl.site.Transport.RoundTrip(sf.request(ctx))
	respTime := h.now()
	if err != nil {
		if sf.ix != nil {
			m := &sf.ix.meta
			switch {
			case h.staleIfError(m, respTime):
				h.publishStale(sf, 0, "stale-if-error", respTime)
				return
			case h.staleWhenUnreachable(m, respTime):
				h.publishStale(sf, 0, "origin-unreachable", respTime)
				return
			}
		}
		h.fillFailed(fl, err, 0) // fl.stale is nil: an error for every follower
		return
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusNotModified && sf.ix != nil:
		h.metrics.originStatus(code)
		drain(resp)
		if validatorApplies(sf.ix.meta.Header, resp.Header) {
			h.refreshIndex(sf, resp, reqTime, respTime)
			return
		}
		// The 304 validates another representation (RFC 9111 §4.3.4):
		// fetch ours whole.
		h.dropSlices(sf.ix)
		whole(nil)
		return
	case code >= 500 && sf.ix != nil && h.staleIfError(&sf.ix.meta, respTime):
		h.metrics.originStatus(code)
		drain(resp)
		h.publishStale(sf, code, "stale-if-error", respTime)
		return
	case code == http.StatusRequestedRangeNotSatisfiable:
		// Past the end of a cold object, or a stored one shrank: fetch it
		// whole (a 416 must never be stored as the URL's response).
		h.metrics.originStatus(code)
		drain(resp)
		if sf.ix != nil {
			h.dropSlices(sf.ix)
		}
		whole(nil)
		return
	case code != http.StatusPartialContent:
		// A complete response (RFC 9110 §14.2 lets a server ignore Range;
		// an error is whole too): the whole-object fill takes it as it is.
		if sf.ix != nil {
			h.dropSlices(sf.ix)
		}
		if code == http.StatusOK {
			h.noSlice.mark(fl.urlKey, respTime.Add(sliceMarkTTL))
		}
		whole(resp)
		return
	}

	start, end, size, ok := parseContentRange(firstLine(resp.Header["Content-Range"]))
	var ix *sliceIndex
	var d decision
	sliced := false
	if ok {
		ix, d = h.newSliceIndex(fl, resp.Header, size, sf.sliceSize, reqTime, respTime)
		sp := ix.span(sf.k)
		sliced = start == sp.start && end-start+1 == sp.length && h.worthSlicing(fl, &d, ix)
	}
	if sf.ix != nil && !(sliced && sf.ix.sameRepresentation(resp.Header, size)) {
		h.dropSlices(sf.ix) // changed, or no longer to be sliced
	}
	if !sliced {
		h.noSlice.mark(fl.urlKey, respTime.Add(sliceMarkTTL))
		if ok && start == 0 && end == size-1 {
			// The whole representation: a 200 in all but name.
			resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
			delete(resp.Header, "Content-Range")
			resp.Header["Content-Length"] = []string{strconv.FormatInt(size, 10)}
			resp.ContentLength = size
			whole(resp)
			return
		}
		h.metrics.originStatus(code)
		drain(resp)
		whole(nil)
		return
	}
	h.metrics.originStatus(code)
	defer resp.Body.Close()

	// Sliced: store the index, open the slice's flight, then announce.
	// Followers look for the slice in the flight table, so it must be
	// there before they hear of the index.
	stored := h.storeIndex(ix)
	key := sliceKey(fl.urlKey, sf.k)
	sl, started := h.flights.start(key)
	f.publish(flightResult{
		kind: outSliced, meta: &ix.meta, obj: ix, upstream: d.upstream,
		status: cacheStatus{fwd: fl.fwd, fwdStatus: code, stored: stored},
	})
	h.leaveTable(fl)
	f.finish(nil)
	if !started {
		return // someone is fetching this slice already
	}
	defer func() {
		h.flights.remove(sl)
		sl.release()
	}()
	h.fillSlice(ctx, sl, resp, ix.sliceMeta(sf.k, resp.Header, reqTime, respTime), idle)
}

// newSliceIndex builds the index of a representation from the header of a
// response holding part of it: the 200 the origin would have sent (no
// Content-Range, the full Content-Length), judged by decide like any
// response.
func (h *Handler) newSliceIndex(fl *fill, hdr http.Header, size, sliceSize int64, reqTime, respTime time.Time) (*sliceIndex, decision) {
	whole := hdr.Clone()
	delete(whole, "Content-Range")
	whole["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	d := h.decide(respInput{
		key: fl.urlKey, urlKey: fl.urlKey, authorized: fl.authorized,
		reqTime: reqTime, respTime: respTime,
	}, &http.Response{StatusCode: http.StatusOK, Header: whole, ContentLength: size})
	d.meta.Flags |= flagSliceIndex
	ix := &sliceIndex{meta: d.meta, size: size, sliceSize: sliceSize}
	ix.meta.Size = int64(len(ix.record()))
	return ix, d
}

// worthSlicing reports whether a representation is sliced: slicing is on,
// it is longer than the threshold, every client may be given the stored
// response (no Vary, no fields hidden from some), and it has a validator
// to tell its slices from another representation's.
func (h *Handler) worthSlicing(fl *fill, d *decision, ix *sliceIndex) bool {
	return h.cfg.SliceThreshold >= 0 && ix.size > h.cfg.SliceThreshold &&
		d.store && d.share && !fl.noStore && len(d.meta.Vary) == 0 && d.leaderHeader == nil &&
		hasSliceValidator(d.meta.Header)
}

// refreshIndex handles a 304 to an index revalidation (RFC 9111 §4.3.4):
// the index header is updated from the 304, its freshness recomputed, and
// the followers served from the slices.
func (h *Handler) refreshIndex(sf *sliceFill, resp *http.Response, reqTime, respTime time.Time) {
	old := sf.ix
	hdr := old.meta.Header.Clone()
	updateHeaders(hdr, resp.Header)
	ix, d := h.newSliceIndex(sf.fill, hdr, old.size, old.sliceSize, reqTime, respTime)
	stored := false
	if d.store {
		stored = h.storeIndex(ix)
	} else {
		h.store.Delete(h.ctx, old.meta.Key)
	}
	m := &ix.meta
	sf.f.publish(flightResult{
		kind: outSliced, meta: m, obj: ix,
		status: cacheStatus{
			fwd: sf.fwd, fwdStatus: http.StatusNotModified, stored: stored,
			ttl: ttlOf(m, currentAge(m, respTime)), hasTTL: true,
		},
	})
	sf.f.finish(nil)
}

// publishStale serves the followers from the stale index because upstream
// failed (RFC 5861 §4, RFC 9111 §4.2.4).
func (h *Handler) publishStale(sf *sliceFill, code int, detail string, now time.Time) {
	h.metrics.fillErrors.Inc()
	m := &sf.ix.meta
	sf.f.publish(flightResult{
		kind: outSliced, meta: m, obj: sf.ix,
		status: cacheStatus{
			fwd: fwdStale, fwdStatus: code,
			ttl: ttlOf(m, currentAge(m, now)), hasTTL: true, detail: detail,
		},
	})
	sf.f.finish(nil)
}

// storeIndex writes a slice index under its URL key, replacing what is
// there. It reports whether the tier took it; the index is small, so it is
// always written whole rather than updated in place.
func (h *Handler) storeIndex(ix *sliceIndex) bool {
	w, err := h.store.Put(h.ctx, ix.meta)
	if err != nil {
		h.log.Debug("not storing slice index", "url", ix.meta.Key, "err", err)
		return false
	}
	defer w.Close()
	if _, err := w.Write(ix.record()); err != nil {
		w.Abort()
		h.log.Debug("not storing slice index", "url", ix.meta.Key, "err", err)
		return false
	}
	if h.purgedMeanwhile(&ix.meta) {
		w.Abort()
		return false
	}
	if err := w.Commit(); err != nil {
		h.log.Warn("slice index", "url", ix.meta.Key, "err", err)
		return false
	}
	h.misses.clear(ix.meta.Key)
	return true
}

// dropSlices deletes a representation that is no longer current: its
// index, unless a newer one has replaced it already, and its slices. A
// slice of a newer representation deleted on the way only costs a refetch.
func (h *Handler) dropSlices(ix *sliceIndex) {
	key := ix.meta.Key
	if o, err := h.store.Get(h.ctx, key); err == nil {
		cur, err := readSliceIndex(o)
		o.Close()
		if err == nil && cur.sameRepresentation(ix.meta.Header, ix.size) {
			h.store.Delete(h.ctx, key)
		}
	}
	for k := range ix.count() {
		h.store.Delete(h.ctx, sliceKey(key, k))
	}
}

// sliceMeta is the metadata slice k is stored with: its Content-Range, the
// validators of the response it came in, and the index's URL and tags, so
// purges find it (storage.Meta.URL).
func (ix *sliceIndex) sliceMeta(k int64, hdr http.Header, reqTime, respTime time.Time) storage.Meta {
	sp := ix.span(k)
	sh := http.Header{"Content-Range": {contentRange(sp, ix.size)}}
	for _, name := range [...]string{"Etag", "Last-Modified"} {
		if v, ok := hdr[name]; ok {
			sh[name] = v
		}
	}
	return storage.Meta{
		Key:          sliceKey(ix.meta.Key, k),
		URL:          ix.meta.URL,
		Status:       http.StatusPartialContent,
		Header:       sh,
		RequestTime:  reqTime,
		ResponseTime: respTime,
		Size:         sp.length,
		Tags:         ix.meta.Tags,
	}
}

// startSliceFetch fetches slice k of ix into f, a flight in the table whose
// fill the caller leads, with a Range request built on out.
func (h *Handler) startSliceFetch(f *flight, site *Host, out *http.Request, ix *sliceIndex, k int64) {
	h.fills.Add(1)
	h.metrics.fills.Inc()
	go func() {
		defer h.fills.Done()
		h.fetchSlice(f, site, out, ix, k)
	}()
}

// fetchSlice asks upstream for one slice of ix and streams it into f and
// storage. A response that shows the representation changed, that the
// origin ignores Range, or that the resource is gone drops the index and
// its slices, and fails the flight with errSliceChanged or errNoRanges so
// its followers start again.
func (h *Handler) fetchSlice(f *flight, site *Host, out *http.Request, ix *sliceIndex, k int64) {
	defer func() {
		h.flights.remove(f)
		f.release()
	}()
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	idle := time.AfterFunc(h.cfg.IdleTimeout, cancel)
	defer idle.Stop()

	sp := ix.span(k)
	req := out.WithContext(ctx)
	req.Header = out.Header.Clone()
	req.Header["Range"] = rangeField(sp.start, sp.start+sp.length-1)
	reqTime := h.now()
	resp, err := site.Transport.RoundTrip(req)
	respTime := h.now()
	if err != nil {
		h.sliceFailed(f, ix, err)
		return
	}
	h.metrics.originStatus(resp.StatusCode)
	if resp.StatusCode != http.StatusPartialContent {
		drain(resp)
		switch resp.StatusCode {
		case http.StatusOK:
			h.noSlice.mark(ix.meta.Key, respTime.Add(sliceMarkTTL))
			h.dropSlices(ix)
			h.sliceFailed(f, ix, errNoRanges)
		case http.StatusNotFound, http.StatusGone, http.StatusRequestedRangeNotSatisfiable:
			h.dropSlices(ix)
			h.sliceFailed(f, ix, errSliceChanged)
		default:
			h.sliceFailed(f, ix, fmt.Errorf("origin answered %d to a slice request", resp.StatusCode))
		}
		return
	}
	start, end, size, ok := parseContentRange(firstLine(resp.Header["Content-Range"]))
	switch {
	case ok && !ix.sameRepresentation(resp.Header, size):
		drain(resp)
		h.dropSlices(ix)
		h.sliceFailed(f, ix, errSliceChanged)
		return
	case !ok || start != sp.start || end-start+1 != sp.length:
		// Not the range asked for (multipart, or another one): this
		// origin's ranges cannot be relied on.
		drain(resp)
		h.noSlice.mark(ix.meta.Key, respTime.Add(sliceMarkTTL))
		h.dropSlices(ix)
		h.sliceFailed(f, ix, errNoRanges)
		return
	}
	defer resp.Body.Close()
	h.fillSlice(ctx, f, resp, ix.sliceMeta(k, resp.Header, reqTime, respTime), idle)
}

// fillSlice streams a slice body into storage as m, announcing it to f's
// followers as it arrives, as fill.go does for a whole body: a slice the
// tier refuses is spooled for them instead. A body cut short reaches the
// followers as an error and is never stored.
func (h *Handler) fillSlice(ctx context.Context, f *flight, resp *http.Response, m storage.Meta, idle *time.Timer) {
	w, err := h.store.Put(ctx, m)
	if err != nil {
		h.log.Debug("not storing slice", "key", m.Key, "err", err)
		w = nil
	}
	var src bodyBuffer
	if w != nil {
		src = w
		f.hold(w)
	} else {
		sp, err := newSpool(h.cfg.SpoolDir)
		if err != nil {
			h.log.Error("spool", "err", err)
			h.flights.remove(f)
			f.publish(flightResult{kind: outError, err: err})
			f.finish(err)
			return
		}
		src = sp
		f.hold(sp)
	}
	f.setSource(src)
	f.publish(flightResult{kind: outStream, meta: &m})

	n, err := h.copyBody(f, resp.Body, &w, src, idle)
	if err == nil && n != m.Size {
		err = fmt.Errorf("slice of %d bytes, want %d: %w", n, m.Size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		if w != nil {
			w.Abort()
		}
		h.metrics.fillErrors.Inc()
		h.log.Warn("slice fill failed", "key", m.Key, "err", err)
		h.flights.remove(f) // no request may join a failed flight
		f.finish(err)
		return
	}
	if w != nil && h.purgedMeanwhile(&m) {
		w.Abort()
		w = nil
	}
	if w != nil {
		if err := w.Commit(); err != nil {
			h.log.Warn("commit failed", "key", m.Key, "err", err)
		}
	}
	h.flights.remove(f) // before finish: see runFill
	f.finish(nil)
}

// sliceFailed announces that a slice fetch failed before its body began.
func (h *Handler) sliceFailed(f *flight, ix *sliceIndex, err error) {
	h.flights.remove(f)
	switch {
	case errors.Is(err, errSliceChanged) || errors.Is(err, errNoRanges):
		h.log.Info("slices dropped", "url", ix.meta.URL, "why", err)
	case !errors.Is(err, context.Canceled):
		h.metrics.fillErrors.Inc()
		h.log.Warn("slice fetch failed", "url", ix.meta.URL, "err", err)
	}
	f.publish(flightResult{kind: outError, err: err})
	f.finish(err)
}
