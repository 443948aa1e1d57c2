package edge

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// The fill side of slicing: the points where fill.go's pipeline asks it
// something (planSlice when a fill starts, sliceAnswer when its response
// arrives) and the fetch of one slice of a known index (fetchSlice). Every
// slice body goes through fillBody, like any other.

// slicePlan is what a fill asks upstream when it asks for one slice: slice
// k, in slices of size bytes.
type slicePlan struct{ k, size int64 }

// planSlice decides whether a fill asks upstream for one slice. A fill
// revalidating a slice index always does (a whole-object fill must never
// take an index for a response body), unless the index is unreadable or
// the request said no-store: the object is then fetched whole and
// unconditionally. A cold GET is probed when it has a Range field and the
// URL is not marked to be fetched whole.
func (h *Handler) planSlice(fl *fill, r *http.Request, attempt int, varyHint []string) {
	if fl.stale != nil {
		if !isSliceIndex(fl.stale.Meta()) {
			return
		}
		ix, err := readSliceIndex(fl.stale)
		if err != nil || fl.noStore {
			if err != nil {
				h.store.Delete(h.ctx, fl.urlKey)
			}
			fl.stale.Close()
			fl.stale = nil
			return
		}
		k, _ := firstSlice(r.Header, ix.sliceSize)
		if k >= ix.count() {
			k = 0
		}
		fl.slice = &slicePlan{k: k, size: ix.sliceSize}
		return
	}
	if h.cfg.SliceThreshold < 0 || r.Method != http.MethodGet || !fl.inTable || fl.noStore ||
		varyHint != nil || attempt >= maxAttempts || h.noSlice.marked(fl.urlKey, h.now()) {
		return
	}
	if k, ok := firstSlice(r.Header, h.cfg.SliceSize); ok {
		fl.slice = &slicePlan{k: k, size: h.cfg.SliceSize}
	}
}

// sliceOutcome is what sliceAnswer made of the answer to a slice request.
type sliceOutcome int

const (
	sliceWhole   sliceOutcome = iota // a whole response: the fill goes on with it
	sliceRefetch                     // the fill fetches the object whole instead
	sliceStored                      // stored as slices; the flight is announced
)

// sliceAnswer handles upstream's answer to a fill that asked for one slice.
// A 206 of a representation worth slicing becomes (or refreshes) the slice
// index; the flight announces the index and the body fills the slice's own
// flight. A 206 covering the whole representation is made the 200 it
// equals. A 416 (past the end of a cold object, or a stored one shrank) or
// a 206 not worth slicing sends the fill to fetch the object whole (the probe
// cost at most one slice). Any other status is a whole response, as it is
// (RFC 9110 §14.2 lets a server ignore Range); a 200 marks the URL to be
// fetched whole for a while. A stored index the answer shows is no longer
// current is dropped with its slices; an error status leaves it.
func (h *Handler) sliceAnswer(ctx context.Context, fl *fill, ex exchange, idle *time.Timer) sliceOutcome {
	resp, code := ex.resp, ex.resp.StatusCode
	switch {
	case code == http.StatusRequestedRangeNotSatisfiable:
		return sliceRefetch
	case code == http.StatusOK:
		h.noSlice.mark(fl.urlKey, ex.respTime.Add(sliceMarkTTL))
		h.dropStale(fl)
		return sliceWhole
	case code != http.StatusPartialContent:
		if code < 400 || code == http.StatusNotFound || code == http.StatusGone {
			h.dropStale(fl)
		}
		fl.slice = nil
		return sliceWhole
	}

	start, end, size, ok := parseContentRange(firstLine(resp.Header["Content-Range"]))
	var ix *sliceIndex
	var d decision
	sliced := false
	if ok {
		ix, d = h.newSliceIndex(fl, resp.Header, size, fl.slice.size, ex)
		sp := ix.span(fl.slice.k)
		sliced = start == sp.start && end-start+1 == sp.length && h.worthSlicing(fl, &d, ix)
	}
	if !sliced {
		h.noSlice.mark(fl.urlKey, ex.respTime.Add(sliceMarkTTL))
		h.dropStale(fl)
		if !ok || start != 0 || end != size-1 {
			return sliceRefetch
		}
		// The whole representation: a 200 in all but name.
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		delete(resp.Header, "Content-Range")
		resp.Header["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		resp.ContentLength = size
		return sliceWhole
	}
	if fl.stale != nil {
		if old, err := readSliceIndex(fl.stale); err == nil && !old.sameRepresentation(resp.Header, size) {
			h.dropSlices(old)
		}
	}

	// Store the index, open the slice's flight, then announce: followers
	// look for the slice in the flight table, so it must be there before
	// they hear of the index.
	h.storeIndex(ix)
	sl, started := h.flights.start(sliceKey(fl.urlKey, fl.slice.k))
	fl.f.publish(flightResult{
		kind: outObject, meta: &ix.meta, obj: ix, upstream: d.upstream,
		status: cacheStatus{fwd: fl.fwd, fwdStatus: code},
	})
	h.endFill(fl.f, nil)
	defer resp.Body.Close()
	if !started {
		return sliceStored // someone is fetching this slice already
	}
	defer sl.release()
	m := ix.sliceMeta(fl.slice.k, resp.Header, ex)
	_, err := h.fillBody(ctx, sl, resp.Body, &m, true, flightResult{kind: outStream, meta: &m}, idle)
	h.endFill(sl, err)
	return sliceStored
}

// newSliceIndex builds the index of a representation from the header of a
// response holding part of it: the 200 the origin would have sent (no
// Content-Range, the full Content-Length), judged by decide like any
// response.
func (h *Handler) newSliceIndex(fl *fill, hdr http.Header, size, sliceSize int64, ex exchange) (*sliceIndex, decision) {
	whole := hdr.Clone()
	delete(whole, "Content-Range")
	whole["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	d := h.decide(respInput{
		key: fl.urlKey, urlKey: fl.urlKey, authorized: fl.authorized, site: fl.site, out: fl.out,
		reqTime: ex.reqTime, respTime: ex.respTime,
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

// storeIndex writes a slice index under its URL key, replacing what is
// there. The index is small, so it is always written whole rather than
// updated in place.
func (h *Handler) storeIndex(ix *sliceIndex) {
	w, err := h.store.Put(h.ctx, ix.meta)
	if err != nil {
		h.metrics.stores(err)
		return
	}
	defer w.Close()
	if _, err := w.Write(ix.record()); err != nil {
		w.Abort()
		h.metrics.stores(err)
		return
	}
	if h.purgedMeanwhile(&ix.meta) {
		w.Abort()
		h.metrics.stores(errPurged)
		return
	}
	err = w.Commit()
	h.metrics.stores(err)
	if err == nil {
		h.misses.clear(ix.meta.Key)
	}
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
func (ix *sliceIndex) sliceMeta(k int64, hdr http.Header, ex exchange) storage.Meta {
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
		RequestTime:  ex.reqTime,
		ResponseTime: ex.respTime,
		OriginTime:   originTimeOf(hdr, ex.reqTime),
		Size:         sp.length,
		Tags:         ix.meta.Tags,
	}
}

// fetchSlice asks upstream for slice k of ix and streams it into f (a
// flight in the table that the caller leads) and storage. An answer that
// shows the representation changed, that the origin ignores Range, or that
// the resource is gone drops the index and its slices, and fails the flight
// with errSliceChanged or errNoRanges so its followers start again.
func (h *Handler) fetchSlice(f *flight, site *Host, out *http.Request, ix *sliceIndex, k int64) {
	defer f.release()
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	idle := time.AfterFunc(h.cfg.IdleTimeout, cancel)
	defer idle.Stop()

	sp := ix.span(k)
	req := out.WithContext(ctx)
	req.Header = out.Header.Clone()
	req.Header["Range"] = rangeField(sp.start, sp.start+sp.length-1)
	ex, err := h.roundTrip(site, req)
	if err == nil {
		if err = h.checkSlice(ix, k, ex); err != nil {
			drain(ex.resp)
		}
	}
	if err != nil {
		if isSliceChange(err) {
			h.log.Info("slices dropped", "url", ix.meta.URL, "why", err)
		} else if !isCanceled(err) {
			h.metrics.fillErrors.Inc()
			h.log.Warn("slice fetch failed", "url", ix.meta.URL, "err", err)
		}
		h.failFlight(f, err, cacheStatus{})
		return
	}
	defer ex.resp.Body.Close()
	m := ix.sliceMeta(k, ex.resp.Header, ex)
	_, err = h.fillBody(ctx, f, ex.resp.Body, &m, true, flightResult{kind: outStream, meta: &m}, idle)
	h.endFill(f, err)
}

// checkSlice checks that an answer to a request for slice k of ix is that
// slice, dropping the index and its slices when the answer shows they are no
// longer current.
func (h *Handler) checkSlice(ix *sliceIndex, k int64, ex exchange) error {
	switch ex.resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		h.noSlice.mark(ix.meta.Key, ex.respTime.Add(sliceMarkTTL))
		h.dropSlices(ix)
		return errNoRanges
	case http.StatusNotFound, http.StatusGone, http.StatusRequestedRangeNotSatisfiable:
		h.dropSlices(ix)
		return errSliceChanged
	default:
		return fmt.Errorf("origin answered %d to a slice request", ex.resp.StatusCode)
	}
	sp := ix.span(k)
	start, end, size, ok := parseContentRange(firstLine(ex.resp.Header["Content-Range"]))
	switch {
	case ok && !ix.sameRepresentation(ex.resp.Header, size):
		h.dropSlices(ix)
		return errSliceChanged
	case !ok || start != sp.start || end-start+1 != sp.length:
		// Not the range asked for (multipart, or another one): this
		// origin's ranges cannot be relied on.
		h.noSlice.mark(ix.meta.Key, ex.respTime.Add(sliceMarkTTL))
		h.dropSlices(ix)
		return errNoRanges
	}
	return nil
}
