package origin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
)

// roundTrip sends req to a server picked by the policy. When that attempt
// fails in a way that is safe to repeat, it sends req once more, to another
// server that is up; a Shield whose second parent fails too, or that has no
// other parent up, sends req to its origin as a last resort. With no server
// up at all, a Pool tries the least recently failed one, and a Shield sends
// req to its origin.
func (g *group) roundTrip(req *http.Request) (*http.Response, error) {
	if g.closed.Load() {
		return nil, ErrClosed
	}
	var key uint64
	if g.policy == Rendezvous {
		key = keyHash(req.URL)
	}
	s := g.choose(key, nil)
	if s == nil {
		g.fallbacks.Add(1)
		return g.fallback.RoundTrip(req)
	}
	resp, err := g.attempt(req, req.Body, s)
	if err == nil || !g.retryable(req, err) {
		return resp, err
	}
	next := g.choose(key, s)
	if next == s && !staleConn(err) {
		return nil, err // the only server of a Pool
	}
	// Another server, or the only one again over a new connection when
	// the failed one was a keep-alive connection it had closed while idle.
	if next != nil {
		rb, ok := rewind(req)
		if !ok {
			return nil, err
		}
		g.retries.add(retryReason(err))
		resp, err = g.attempt(req, rb, next)
		if err == nil || g.fallback == nil || !g.retryable(req, err) {
			return resp, err
		}
	}
	rb, ok := rewind(req)
	if !ok {
		return nil, err
	}
	g.retries.add(retryReason(err))
	g.fallbacks.Add(1)
	retry := *req
	retry.Body = rb
	return g.fallback.RoundTrip(&retry)
}

// rewind returns a new copy of req's body for another attempt, and whether
// there is one: retryable has checked that the body is replayable.
func rewind(req *http.Request) (io.ReadCloser, bool) {
	if !hasBody(req) {
		return req.Body, true
	}
	rb, err := req.GetBody()
	return rb, err == nil
}

// choose picks a server other than skip. With none up, it returns nil for
// a Shield, whose origin takes the request, and for a Pool the least
// recently failed server other than skip, or skip itself when it is the
// only server. A first pick (skip nil) logs when the group enters and leaves
// the state where no server is up.
func (g *group) choose(key uint64, skip *server) *server {
	s := g.pick(key, skip)
	if skip == nil {
		g.noteAllDown(s == nil)
	}
	if s != nil || g.fallback != nil {
		return s
	}
	if s = g.leastRecentlyFailed(skip); s == nil {
		return skip
	}
	g.fallbacks.Add(1)
	return s
}

// noteAllDown records whether no server was up at the last first pick,
// logging each change once.
func (g *group) noteAllDown(down bool) {
	if g.allDown.Load() == down || !g.allDown.CompareAndSwap(!down, down) {
		return
	}
	switch {
	case !down:
		g.log.Info("servers up again")
	case g.fallback != nil:
		g.log.Warn("no server up: sending requests to the origin")
	default:
		g.log.Warn("no server up: trying the least recently failed")
	}
}

// leastRecentlyFailed returns the server other than skip whose last failure
// is oldest, the first of those that never failed, or nil.
func (g *group) leastRecentlyFailed(skip *server) *server {
	var best *server
	for _, s := range g.servers {
		if s != skip && (best == nil || s.lastFailure.Load() < best.lastFailure.Load()) {
			best = s
		}
	}
	return best
}

// attempt sends req, with body rb, to s. The response's body is wrapped to
// time out idle reads and to release s's in-flight slot when it ends.
func (g *group) attempt(req *http.Request, rb io.ReadCloser, s *server) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	var reused atomic.Bool
	var conns atomic.Int32
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			reused.Store(i.Reused)
			if conns.Add(1) > 1 {
				// net/http's Transport sent the request again over a
				// new connection: the first, reused, one was closed
				// before the request was written, or the request is
				// replayable (RFC 9110 §9.2.2; never a POST or PATCH
				// without an Idempotency-Key).
				g.retries.add(retryStale)
			}
		},
	})
	out := req.WithContext(ctx)
	out.Body = rb
	g.rewrite.apply(out, req, s)
	if g.bucket != nil {
		if err := g.bucket.sign(ctx, out); err != nil {
			cancel(nil)
			return nil, &Error{Server: s.name, Err: err} // not the server's failure
		}
	}
	s.requests.Add(1)
	s.inflight.Add(1)
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		e := &Error{Server: s.name, Err: err, stale: reused.Load() && lostConn(err)}
		err = e
		if !clientGone(out, false) && !e.stale { // an idle close is no fault of the server
			g.record(s, err)
		}
		cancel(nil)
		s.inflight.Add(-1)
		return nil, err
	}
	resp.Body = newBody(g, s, out, resp, cancel)
	return resp, nil
}

// retryable reports whether a request that failed with err may be sent to
// another server: its context is live, its body (if any) can be sent again,
// and either it never left (the connection failed) or its method is
// idempotent (RFC 9110 §9.2.2), so a server that received it before failing
// did no harm that a repeat would double. That holds for a request lost on
// a keep-alive connection the server had just closed too: the server may
// have received it, so a POST or PATCH is never sent twice. err carries no
// response: 5xx responses are never retried. A request not retried for its
// method or body counts in outpost_origin_retries_skipped_total.
func (g *group) retryable(req *http.Request, err error) bool {
	if req.Context().Err() != nil {
		return false
	}
	var ce *connectError
	switch {
	case !replayable(req):
		g.retries.skip(skipBody)
		return false
	case errors.As(err, &ce), idempotent(req):
		return true
	}
	g.retries.skip(skipMethod)
	return false
}

// Why a request was sent again, in outpost_origin_retries_total.
const (
	retryConnect = iota // the connection failed: the request never left
	retryStale          // lost on a keep-alive connection the server had closed
	retryFailure        // an idempotent request failed before any response
	numRetryReasons
)

// Why a failed request was not sent again, in
// outpost_origin_retries_skipped_total.
const (
	skipMethod = iota // not idempotent: the server may have acted on it
	skipBody          // its body cannot be sent again
	numSkipReasons
)

var (
	retryReasons = [numRetryReasons]string{"connect", "stale_connection", "failure"}
	skipReasons  = [numSkipReasons]string{"not_idempotent", "body_not_replayable"}
)

// retryStats counts retries by reason, and the failures not retried.
type retryStats struct {
	sent    [numRetryReasons]atomic.Uint64
	skipped [numSkipReasons]atomic.Uint64
}

func (r *retryStats) add(reason int)  { r.sent[reason].Add(1) }
func (r *retryStats) skip(reason int) { r.skipped[reason].Add(1) }

// Load returns the retries of every reason.
func (r *retryStats) Load() uint64 {
	var n uint64
	for i := range r.sent {
		n += r.sent[i].Load()
	}
	return n
}

// retryReason is why a request that failed with err is sent again.
func retryReason(err error) int {
	var ce *connectError
	switch {
	case errors.As(err, &ce):
		return retryConnect
	case staleConn(err):
		return retryStale
	}
	return retryFailure
}

// replayable reports whether req's body can be sent twice: there is none,
// or the caller made it replayable (Request.GetBody, as net/http's
// Transport requires too). How large a body is worth buffering for that is
// the caller's choice (the edge buffers up to 64 KiB).
func replayable(req *http.Request) bool {
	return !hasBody(req) || req.GetBody != nil
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// idempotent reports whether req's method is idempotent, or the request
// says it is with an Idempotency-Key header, as net/http's Transport decides
// for its own retries.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := req.Header["X-Idempotency-Key"]
	return ok
}

// statusError is a response status that counts as a server failure.
type statusError int

func (e statusError) Error() string { return "status " + strconv.Itoa(int(e)) }

// staleConn reports whether err is a request lost on a reused connection
// the server had closed (Error.stale).
func staleConn(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.stale
}
