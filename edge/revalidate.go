package edge

import (
	"io"
	"net/http"

	"github.com/outpost-cdn/outpost/storage"
)

// refreshed handles a 304 to a revalidation (RFC 9111 §4.3.4): the stored
// header is updated from the 304's fields, the freshness recomputed, and
// the followers served the stored response (a whole body, or a slice index
// that serves its slices).
func (h *Handler) refreshed(fl *fill, ex exchange) {
	old := fl.stale.Meta()
	m := old.Clone()
	updateHeaders(m.Header, ex.resp.Header)
	// Recompute freshness from the merged header, timed by this exchange.
	whole := &http.Response{StatusCode: old.Status, Header: m.Header, ContentLength: old.Size}
	if ix, err := readSliceIndex(fl.stale); err == nil {
		whole.ContentLength = ix.size
	}
	d := h.decide(respInput{
		key: old.Key, urlKey: old.URL, authorized: fl.authorized, site: fl.site, out: fl.out,
		reqTime: ex.reqTime, respTime: ex.respTime, revalidated: true,
	}, whole)
	m.Header = d.meta.Header
	m.RequestTime, m.ResponseTime, m.OriginTime = ex.reqTime, ex.respTime, d.meta.OriginTime
	m.InitialAge, m.Lifetime = d.meta.InitialAge, d.meta.Lifetime
	m.StaleWhileRevalidate, m.StaleIfError = d.meta.StaleWhileRevalidate, d.meta.StaleIfError
	m.Flags = d.meta.Flags | old.Flags&flagSliceIndex
	m.Tags = d.meta.Tags
	stored := false
	switch {
	case fl.noStore:
		// RFC 9111 §5.2.1.5: nothing of this exchange is stored, and the
		// stored response stays as it was.
	case d.store:
		err := h.store.Update(h.ctx, m)
		if stored = err == nil; stored {
			h.misses.clear(fl.f.key)
			h.refreshVariants(old, &m)
		}
	default:
		h.dropStored(fl.stale)
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
			ttl: ttlOf(&m, currentAge(&m, ex.respTime)), hasTTL: true,
		},
	})
	fl.f.finish(nil)
}

// dropStale forgets the stored response a fill was revalidating, in
// storage too, because upstream showed it is no longer current; the fill
// then fetches the object whole and unconditionally.
func (h *Handler) dropStale(fl *fill) {
	fl.slice = nil
	if fl.stale == nil {
		return
	}
	h.dropStored(fl.stale)
	fl.stale.Close()
	fl.stale = nil
}

// dropStored deletes a stored response that is no longer current: a whole
// object with its encoded variants, or a slice index with its slices.
func (h *Handler) dropStored(o storage.Object) {
	if ix, err := readSliceIndex(o); err == nil {
		h.dropSlices(ix)
		return
	}
	h.dropEntry(h.ctx, o.Meta().Key)
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
