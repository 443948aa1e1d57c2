package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// respondStored answers a request from a stored response that may be used:
// a slice index through its slices, any other object from its body.
// upstream holds the Cache-Status entries of the caches the response came
// through, for a response just fetched. It reports whether the request must
// look in the cache again because the object turned out not to be what it
// seemed (a record this version did not write, a representation that
// changed before anything was sent); the caller keeps obj and closes it.
func (h *Handler) respondStored(w http.ResponseWriter, r *http.Request, site *Host, c *canonical, obj storage.Object, upstream []string, cs *cacheStatus, attempt int) (again bool) {
	m := obj.Meta()
	if !isSliceIndex(m) {
		h.respondObject(w, r, obj, upstream, cs)
		return false
	}
	ix, err := readSliceIndex(obj)
	if err == nil {
		err = h.serveSlices(w, r, site, c, ix, upstream, cs)
	} else {
		h.store.Delete(r.Context(), m.Key) // not a record this version wrote
	}
	switch {
	case err == nil || r.Context().Err() != nil:
		return false
	case attempt < maxAttempts && (isSliceChange(err) || err == errBadIndex):
		return true // nothing sent yet: answer from what the URL is now
	case isSliceChange(err) || err == errBadIndex:
		h.writeError(w, http.StatusBadGateway, cs)
	default:
		h.writeError(w, errorStatus(err), cs)
	}
	return false
}

// serveSlices answers a request from the slices of ix. cs is the
// Cache-Status of how the index was obtained: for a stored index (a hit) it
// becomes fwd=partial or fwd=miss when slices the request needs must be
// fetched. The first slice needed is opened before the header is sent, so
// a change of representation it reveals is returned as an error and the
// request can start again instead of breaking the response.
func (h *Handler) serveSlices(w http.ResponseWriter, r *http.Request, site *Host, c *canonical, ix *sliceIndex, upstream []string, cs *cacheStatus) error {
	b := &sliceBody{h: h, ctx: r.Context(), ix: ix, site: site, r: r, c: *c}
	defer b.close()
	need := ix.needed(r, h.cfg.MaxRanges)
	counted := false
	if cs.hit {
		if stored, missing := h.countSlices(r.Context(), ix, need); missing > 0 {
			fwd := fwdMiss
			if stored > 0 {
				fwd = fwdPartial
			}
			*cs = cacheStatus{fwd: fwd, fwdStatus: http.StatusPartialContent, detail: cs.detail}
			counted = true
		}
	}
	if len(need) > 0 {
		src, err := b.open(need[0].start / ix.sliceSize)
		if err != nil {
			return err
		}
		b.primed = src
		if counted && src.f != nil && !src.leader {
			cs.collapsed = true
		}
	}
	_, hadAge := ix.meta.Header["Age"]
	h.respond(w, r, &representation{
		meta: &ix.meta, header: ix.meta.Header, upstream: upstream,
		age:  cs.hit || hadAge || h.now().Sub(ix.meta.ResponseTime) >= time.Second,
		body: b,
	}, cs)
	return nil
}

// needed predicts the byte ranges respond will send for r, as serve.go
// decides them: none for HEAD or a precondition that answers 304 or 412,
// the satisfiable ranges of a Range request it honours, else the whole
// body. It only guides Cache-Status and which slice is opened first.
func (ix *sliceIndex) needed(r *http.Request, maxRanges int) []byteRange {
	if r.Method != http.MethodGet {
		return nil
	}
	if evalPreconditions(r, ix.meta.Header, ix.meta.ResponseTime) != proceed {
		return nil
	}
	if rh, ok := r.Header["Range"]; ok && len(rh) == 1 && ifRangeAllows(r, ix.meta.Header) {
		if ranges, ok := parseRange(rh[0], ix.size, maxRanges); ok {
			return ranges
		}
	}
	return []byteRange{{0, ix.size}}
}

// countSlices counts the slices the ranges need that are stored, and those
// that are not.
func (h *Handler) countSlices(ctx context.Context, ix *sliceIndex, need []byteRange) (stored, missing int) {
	next := int64(0) // ranges are sorted: a slice shared by two counts once
	for _, rg := range need {
		for k := max(rg.start/ix.sliceSize, next); k <= (rg.start+rg.length-1)/ix.sliceSize; k++ {
			if o := h.storedSlice(ctx, ix, k); o != nil {
				o.Close()
				stored++
			} else {
				missing++
			}
			next = k + 1
		}
	}
	return stored, missing
}

// storedSlice returns slice k of ix from storage, or nil. A stored slice of
// another representation is a miss (its fill replaces it); one a hard purge
// matches is deleted. A soft purge does not make a slice a miss: its
// freshness is the index's, which the lookup judged already.
func (h *Handler) storedSlice(ctx context.Context, ix *sliceIndex, k int64) storage.Object {
	key := sliceKey(ix.meta.Key, k)
	o, err := h.store.Get(ctx, key)
	if err != nil {
		return nil
	}
	m := o.Meta()
	if !ix.holds(m, k) {
		o.Close()
		return nil
	}
	if h.cfg.Bans != nil {
		if _, soft, banned := h.cfg.Bans.Check(m); banned && !soft {
			o.Close()
			h.store.Delete(ctx, key)
			return nil
		}
	}
	return o
}

// sliceBody is the body of a sliced representation, a bodySource that
// reads across slices: each from storage, or from the flight fetching it
// (joined or started), one at a time. Memory stays flat: bytes go from a
// slice to the client through writeRange's one pooled buffer (or none), and
// the body is never held whole.
type sliceBody struct {
	h    *Handler
	ctx  context.Context // the client's request
	ix   *sliceIndex
	site *Host
	r    *http.Request
	c    canonical // a copy: the request's must not escape to the heap
	// out is the upstream request slices are fetched with, built from r
	// on the first miss.
	out *http.Request
	// primed is the first slice, opened before the header was sent.
	primed *sliceSource
}

func (b *sliceBody) knownSize() int64                    { return b.ix.size }
func (b *sliceBody) size(context.Context) (int64, error) { return b.ix.size, nil }

func (b *sliceBody) writeRange(w io.Writer, off, n int64) (int64, error) {
	if n < 0 {
		n = b.ix.size - off
	}
	if off < 0 || n < 0 || off+n > b.ix.size {
		return 0, fmt.Errorf("edge: range %d+%d outside %d bytes", off, n, b.ix.size)
	}
	var written int64
	for written < n {
		pos := off + written
		k := pos / b.ix.sliceSize
		sp := b.ix.span(k)
		part := min(n-written, sp.start+sp.length-pos)
		src, err := b.open(k)
		if err != nil {
			return written, err
		}
		m, err := src.copy(b.ctx, w, pos-sp.start, part)
		src.close()
		written += m
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// close releases the first slice if respond did not read it.
func (b *sliceBody) close() {
	if b.primed != nil {
		b.primed.close()
		b.primed = nil
	}
}

// upstream returns the request slices are fetched with. It is shared by
// the fetches this body starts, which copy it before changing anything.
func (b *sliceBody) upstream() *http.Request {
	if b.out == nil {
		b.out = b.h.upstreamRequest(b.r, &b.c, true)
		b.h.sinceLastPurge(b.out.Header, b.ix.meta.URL, time.Time{}) // origintime.go
	}
	return b.out
}

// open returns slice k: stored, or arriving through a flight that has
// received its response header and checked it against the index. A
// follower of a flight for another representation gets errSliceChanged.
func (b *sliceBody) open(k int64) (*sliceSource, error) {
	if p := b.primed; p != nil && p.k == k {
		b.primed = nil
		return p, nil
	}
	h := b.h
	if o := h.storedSlice(b.ctx, b.ix, k); o != nil {
		return &sliceSource{k: k, obj: o}, nil
	}
	key := sliceKey(b.ix.meta.Key, k)
	f, leader := h.flights.join(key)
	if leader {
		if o := h.storedSlice(h.ctx, b.ix, k); o != nil {
			// Stored between our look and our join (its flight had just
			// left the table): serve it to whoever joined meanwhile.
			f.hold(o)
			f.publish(flightResult{kind: outObject, meta: o.Meta(), obj: o})
			h.endFill(f, nil)
			f.release() // the fill's reference
		} else {
			out := b.upstream()
			h.goFill(f, func() { h.fetchSlice(f, b.site, out, b.ix, k) })
		}
	}
	select {
	case <-f.ready:
	case <-b.ctx.Done():
		f.release()
		return nil, b.ctx.Err()
	}
	res := &f.res
	switch {
	case res.kind == outError:
		f.release()
		return nil, res.err
	case res.kind != outStream && res.kind != outObject || !b.ix.holds(res.meta, k):
		f.release()
		return nil, errSliceChanged
	}
	return &sliceSource{k: k, f: f, leader: leader}, nil
}

// sliceSource is one slice being read: a stored object, or a flight.
type sliceSource struct {
	k      int64
	obj    storage.Object
	f      *flight
	leader bool // the request started the flight
}

// copy writes n bytes of the slice from off to w.
func (s *sliceSource) copy(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	switch {
	case s.obj != nil:
		return writeRange(s.obj, w, off, n)
	case s.f.res.kind == outObject:
		return writeRange(s.f.res.obj, w, off, n)
	}
	return flightBody{f: s.f, ctx: ctx, declared: s.f.res.meta.Size}.writeRange(w, off, n)
}

func (s *sliceSource) close() {
	if s.obj != nil {
		s.obj.Close()
		return
	}
	s.f.release()
}
