package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime/debug"
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
	out     *http.Request // the upstream request, without context, Range or validators
	urlKey  string
	inTable bool // the flight is in the flight table
	// stale is the stored response being revalidated (nil for a plain
	// miss): a whole object, or a slice index. The fill owns it.
	stale storage.Object
	// slice, when set, makes the fill ask upstream for one slice of the
	// object (slice.go): the probe of a cold Range request, or the
	// revalidation of a slice index.
	slice *slicePlan
	// fwd is the Cache-Status forward reason for this fetch.
	fwd        string
	authorized bool        // the request carried Authorization (RFC 9111 §3.5)
	leaderVary http.Header // the leading request's fields, for its variant
	noStore    bool        // the leading request said no-store (RFC 9111 §5.2.1.5)
}

// newFill returns the fill of flight f for a request: its upstream request
// is built from r, and it revalidates stale when that is not nil.
func (h *Handler) newFill(r *http.Request, site *Host, c *canonical, f *flight, stale storage.Object) *fill {
	return &fill{
		f: f, site: site, out: h.upstreamRequest(r, c, true), urlKey: c.String(), stale: stale,
		authorized: r.Header.Get("Authorization") != "", leaderVary: r.Header.Clone(),
	}
}

// request builds the upstream request of an attempt: the fill's, with a
// Range field for the slice it asks for and the validators of the stored
// response it revalidates (RFC 9111 §4.3.1; RFC 9110 §13.2.2 evaluates
// If-None-Match before Range, so an unchanged sliced object costs a 304 and
// a changed one arrives as the slice asked for).
func (fl *fill) request(ctx context.Context) *http.Request {
	out := fl.out.WithContext(ctx)
	if fl.slice == nil && fl.stale == nil {
		return out
	}
	out.Header = fl.out.Header.Clone()
	if sp := fl.slice; sp != nil {
		start := sp.k * sp.size
		out.Header["Range"] = rangeField(start, start+sp.size-1)
	}
	if fl.stale != nil {
		stored := fl.stale.Meta().Header
		if etag := stored["Etag"]; len(etag) > 0 {
			out.Header["If-None-Match"] = etag
		}
		if lm := stored["Last-Modified"]; len(lm) > 0 {
			out.Header["If-Modified-Since"] = lm
		}
	}
	return out
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// goFill runs a fill in a goroutine the Handler owns (Close waits for it).
//
// A panic in run (a transport's, say) is not the node's end: it is logged
// with its stack, and f, the flight run fills (nil for none), fails for
// every follower that has not heard its outcome yet.
func (h *Handler) goFill(f *flight, run func()) {
	h.fills.Add(1)
	h.running.Add(1)
	h.metrics.fills.Inc()
	go func() {
		defer h.fills.Done()
		defer h.running.Add(-1)
		defer func() {
			if v := recover(); v != nil {
				h.metrics.fillErrors.Inc()
				h.log.Error("fill panicked", "panic", v, "stack", string(debug.Stack()))
				if f != nil {
					h.flights.remove(f)
					f.abandon(fmt.Errorf("edge: fill panicked: %v", v))
				}
			}
		}()
		run()
	}()
}

// exchange is an upstream response with the clock facts RFC 9111 §4.2.3
// needs.
type exchange struct {
	resp              *http.Response
	reqTime, respTime time.Time
}

// roundTrip sends one upstream request.
func (h *Handler) roundTrip(site *Host, req *http.Request) (exchange, error) {
	reqTime := h.now()
	resp, err := site.Transport.RoundTrip(req)
	if err != nil {
		return exchange{}, err
	}
	h.metrics.originStatus(resp.StatusCode)
	return exchange{resp: resp, reqTime: reqTime, respTime: h.now()}, nil
}

// runFill fetches the response for a flight and announces it to the
// followers, in protocol steps: send the request (again without validators
// when a 304 validates some other representation); a 304 refreshes the
// stored response and an error may serve it stale; a slice request's answer
// goes to slicing, which stores it as slices or hands back a whole response;
// a response only the leader may see is handed to it; any other is streamed
// to every follower by fillBody, stored when RFC 9111 allows.
func (h *Handler) runFill(fl *fill) {
	f := fl.f
	ctx, cancel := context.WithCancel(h.ctx)
	handedOff := false // a private response keeps its context for the leader
	defer func() {
		if !handedOff {
			cancel()
		}
		if fl.stale != nil {
			fl.stale.Close()
		}
		h.flights.remove(f)
		f.release()
	}()
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

	ex, err := h.roundTrip(fl.site, fl.request(ctx))
	if err == nil && fl.stale != nil && ex.resp.StatusCode == http.StatusNotModified &&
		!validatorApplies(fl.stale.Meta().Header, ex.resp.Header) {
		// The 304 validates some other representation (RFC 9111 §4.3.4):
		// fetch ours whole.
		drain(ex.resp)
		h.dropStale(fl)
		ex, err = h.roundTrip(fl.site, fl.request(ctx))
	}
	if err != nil {
		h.fillFailed(fl, err, 0)
		return
	}
	if fl.stale != nil {
		switch code := ex.resp.StatusCode; {
		case code == http.StatusNotModified:
			drain(ex.resp)
			h.refreshed(fl, ex)
			return
		case code >= 500 && h.staleIfError(fl.stale.Meta(), ex.respTime):
			drain(ex.resp)
			h.fillFailed(fl, fmt.Errorf("origin answered %d", code), code)
			return
		}
	}
	if fl.slice != nil {
		switch h.sliceAnswer(ctx, fl, ex, idle) {
		case sliceStored:
			return
		case sliceRefetch:
			// Fetch the object whole: no Range, no validators.
			drain(ex.resp)
			h.dropStale(fl)
			if ex, err = h.roundTrip(fl.site, fl.request(ctx)); err != nil {
				h.fillFailed(fl, err, 0)
				return
			}
		}
	}

	d := h.decide(respInput{
		key: f.key, urlKey: fl.urlKey, authorized: fl.authorized, site: fl.site, out: fl.out,
		reqTime: ex.reqTime, respTime: ex.respTime,
	}, ex.resp)
	if len(d.meta.Vary) > 0 {
		// The response varies: it is stored as the variant the leading
		// request selects (RFC 9111 §4.1).
		d.meta.Key = variantKey(fl.urlKey, variantID(d.meta.Vary, fl.leaderVary))
	}
	if fl.noStore {
		d.store = false
	}
	res := flightResult{
		kind:         outStream,
		meta:         &d.meta,
		leaderHeader: d.leaderHeader,
		upstream:     d.upstream,
		status:       cacheStatus{fwd: fl.fwd, fwdStatus: ex.resp.StatusCode, detail: d.reason},
		vary:         d.meta.Vary,
		varyID:       variantID(d.meta.Vary, fl.leaderVary),
	}
	if !d.share {
		h.misses.mark(f.key, ex.respTime.Add(h.cfg.HitForMissTTL))
		res.kind = outPrivate
		handedOff = h.handOff(fl, &privateResponse{resp: ex.resp, cancel: cancel, upstream: d.upstream, status: res.status}, res)
		return
	}
	defer ex.resp.Body.Close()
	stored, err := h.fillBody(ctx, f, ex.resp.Body, &d.meta, d.store, res, idle)
	if stored {
		f.markStored()
		h.misses.clear(f.key)
		if fl.stale != nil {
			if !h.comp.off {
				h.dropEncoded(ctx, f.key) // encoded from the response this one replaced
			}
		}
		if len(d.meta.Vary) > 0 {
			h.indexVariant(ctx, fl.urlKey, d.meta.Vary, d.meta.Key)
		}
	}
	h.endFill(f, err)
}

// smallFill is the most body fillBody waits for before it announces a
// response, for at most Config.StreamDelay: a body that arrives whole
// within both is committed first, so Cache-Status can say "stored" (or
// not) truthfully; a longer or slower one is announced as it streams, its
// fate in storage unknown to the clients receiving it, and "stored" is left
// out.
const smallFill = 64 << 10

// fillBody is the body protocol every fill follows, for whole responses
// and slices alike: the body is written to a storage Writer (or to a spool
// when it is shared but not stored, or outgrows the tier); res is announced
// to the followers (see smallFill for when), who read the bytes written so
// far; a body shorter or longer than its declared length is an error for
// every follower and never stored; a hard purge that arrived meanwhile keeps
// it out of storage (purgedMeanwhile); then it is committed.
//
// The caller ends the flight with endFill once whatever follows a commit
// (a variant index) is done.
func (h *Handler) fillBody(ctx context.Context, f *flight, body io.Reader, m *storage.Meta, store bool, res flightResult, idle *time.Timer) (stored bool, err error) {
	var w storage.Writer
	if store {
		if w, err = h.store.Put(ctx, *m); err != nil {
			h.metrics.stores(err)
			h.log.Debug("not storing", "key", m.Key, "err", err)
			w = nil
		}
	}
	var src bodyBuffer = w
	if w == nil {
		sp, err := newSpool(h.cfg.SpoolDir, h.spoolMem)
		if err != nil {
			h.log.Error("spool", "err", err)
			f.publish(flightResult{kind: outError, err: err, status: res.status})
			return false, err
		}
		src = sp
	}
	f.hold(src)
	f.setSource(src)
	// announce publishes res once, from this goroutine or the timer's.
	var once sync.Once
	announce := func(fate func(*flightResult)) {
		once.Do(func() {
			if fate != nil {
				fate(&res)
			}
			f.publish(res)
		})
	}
	if m.Size > smallFill || h.cfg.StreamDelay < 0 {
		announce(nil)
	} else {
		t := time.AfterFunc(h.cfg.StreamDelay, func() { announce(nil) })
		defer t.Stop()
	}

	n, err := h.copyBody(f, body, &w, src, idle, announce)
	if err == nil && m.Size >= 0 && n != m.Size {
		err = fmt.Errorf("body of %d bytes, declared %d: %w", n, m.Size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		// A body cut short reaches every follower as an error and is
		// never stored.
		if w != nil {
			w.Abort()
		}
		h.metrics.fillErrors.Inc()
		h.log.Warn("fill failed", "key", m.Key, "err", err)
		announce(func(res *flightResult) { *res = flightResult{kind: outError, err: err, status: res.status} })
		return false, err
	}
	if w != nil && h.purgedMeanwhile(m) {
		w.Abort() // the followers still read the body from w
		h.metrics.stores(errPurged)
		w = nil
	}
	if w != nil && res.base != nil && !res.base.wasStored() {
		w.Abort() // a variant of nothing stored would never be found
		w = nil
	}
	if w != nil {
		err := w.Commit()
		h.metrics.stores(err)
		if stored = err == nil; !stored {
			h.log.Debug("commit refused", "key", m.Key, "err", err)
		}
	}
	announce(func(res *flightResult) { res.status.stored = stored })
	return stored, nil
}

// endFill ends a flight's body: out of the table first, so a client that
// receives the last byte (flight.readAt holds it back until finish) and asks
// again finds the stored response rather than this flight, and no request
// joins a failed one.
func (h *Handler) endFill(f *flight, err error) {
	h.flights.remove(f)
	f.finish(err)
}

// copyBody copies the upstream body into src, announcing progress to the
// flight. When the storage writer refuses more bytes (the object outgrew
// the tier) the body moves to a spool and the followers read on from it.
//
// Past smallFill bytes it announces the response (fillBody).
func (h *Handler) copyBody(f *flight, body io.Reader, w *storage.Writer, src bodyBuffer, idle *time.Timer, announce func(func(*flightResult))) (int64, error) {
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
				h.metrics.stores(werr)
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
			if n > smallFill {
				announce(nil)
			}
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
	sp, err := newSpool(h.cfg.SpoolDir, h.spoolMem)
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
// flight and releases the other followers to fetch on their own. It reports
// whether the leader took it; when the leader has gone, the response is
// closed.
func (h *Handler) handOff(fl *fill, pr *privateResponse, res flightResult) bool {
	f := fl.f
	f.hmu.Lock()
	taken := f.hasLeader && !f.leaderGone
	if taken {
		f.handoff = pr
	}
	f.hmu.Unlock()
	if !taken {
		pr.resp.Body.Close()
	}
	// Later requests must not join a flight whose response they cannot use.
	h.flights.remove(f)
	f.publish(res)
	f.finish(nil)
	return taken
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
	if detail == "" {
		h.failFlight(fl.f, err, cacheStatus{fwd: fl.fwd, fwdStatus: upstreamStatus})
		return
	}
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
}

// failFlight announces that a fetch failed before any body: every follower
// gets an error.
func (h *Handler) failFlight(f *flight, err error, cs cacheStatus) {
	if !errors.Is(err, context.Canceled) {
		h.log.Warn("origin fetch failed", "key", f.key, "err", err)
	}
	h.flights.remove(f)
	f.publish(flightResult{kind: outError, err: err, status: cs})
	f.finish(err)
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

// purgedMeanwhile reports whether a hard purge issued after the response's
// representation was obtained (the bans compare with Meta.ObtainedAt: when
// its request left, or a parent tier's copy was obtained) matches it: such a
// response may predate the purge and is not stored. Checking
// at commit, not only at lookup, closes the window of a fill that outlives
// the purge index's sweep.
func (h *Handler) purgedMeanwhile(m *storage.Meta) bool {
	if h.cfg.Bans == nil {
		return false
	}
	_, soft, banned := h.cfg.Bans.Check(m)
	return banned && !soft
}

// drain reads a little of a body we do not use so the connection can be
// reused, then closes it.
func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// errPurged is how the metrics count a body a purge kept out of storage.
var errPurged = errors.New("edge: purged while filling")

// isCanceled reports whether err says a fill was canceled (the node is
// closing, or the fill's idle timeout fired on a client's behalf).
func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }
