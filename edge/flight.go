package edge

import (
	"context"
	"io"
	"math"
	"net/http"
	"sync"

	"github.com/outpost-cdn/outpost/storage"
)

// A flight is one upstream fetch that any number of requests follow: the
// request that starts it, the requests that join while it runs, and none at
// all for a background revalidation. The fetch runs in a goroutine the
// Handler owns, detached from every client, so a client that leaves only
// leaves (STYLE: work shared by many requests must not die with one).
//
// A flight announces its outcome once (ready), then, for a streamed
// response, publishes body progress: followers read the bytes written so far
// from src, and wait for more on wake.
type flight struct {
	key string // the storage key being filled; the flight table's key

	ready     chan struct{} // closed once res is set
	published sync.Once     // the first outcome announced is the outcome
	res       flightResult  // read-only after ready
	// interim carries 1xx responses (103 Early Hints) received before the
	// final one to the leading request, which relays them.
	interim chan interimResponse

	// handoff passes an unshareable response to the request that started
	// the flight, or discards it when that request has gone.
	hmu        sync.Mutex
	hasLeader  bool
	leaderGone bool
	handoff    *privateResponse

	mu     sync.Mutex
	src    bodyBuffer // where the body is written; may switch to a spool
	n      int64      // bytes of the body written to src
	done   bool       // the body is complete or failed
	stored bool       // the body was committed to storage (set before done)
	err    error      // why the body failed
	wake   chan struct{}
	refs   int         // the fill plus every follower; the last release closes
	closer []io.Closer // released with the last reference
}

// outcome is what the followers of a flight do once it is ready.
type outcome int

const (
	// outStream: the response is shareable; stream it from the flight.
	outStream outcome = iota
	// outObject: serve res.obj, a stored object (refreshed by a 304,
	// stale under stale-if-error, or a slice index just fetched, whose
	// slices serve the body).
	outObject
	// outPrivate: only the request that started the flight may see the
	// response; every other follower fetches on its own at once.
	outPrivate
	// outError: the upstream fetch failed; res.err says how.
	outError
)

// flightResult is what a flight announces when it is ready.
type flightResult struct {
	kind outcome
	// meta describes the response: its status, header (as stored and
	// served to followers) and clock facts for Age. Set for outStream and
	// outObject.
	meta *storage.Meta
	obj  storage.Object // outObject; closed with the flight's last reference
	// leaderHeader is the header for the request that started the flight
	// when it differs from meta.Header (fields private="..." hides from
	// others); nil otherwise.
	leaderHeader http.Header
	upstream     []string // Cache-Status entries of the caches upstream
	status       cacheStatus
	// base is set for an encoded variant made from a body still
	// arriving: the variant is kept only if that body was stored.
	base *flight
	// vary and varyID let a follower check that the response applies to
	// it (RFC 9111 §4.1) before using it.
	vary   []string
	varyID string
	err    error
}

// privateResponse is an upstream response only the leader may use, with the
// cancel function of the context it was fetched under.
type privateResponse struct {
	resp     *http.Response
	cancel   context.CancelFunc
	upstream []string
	status   cacheStatus
}

// bodyBuffer is where a flight writes a body and followers read it: a
// storage.Writer, or a spool for bodies that are shared but not stored.
type bodyBuffer interface {
	io.Writer
	io.ReaderAt
	io.Closer
}

// interimResponse is a 1xx response received upstream.
type interimResponse struct {
	code   int
	header http.Header
}

func newFlight(key string) *flight {
	return &flight{key: key, ready: make(chan struct{}), refs: 1, interim: make(chan interimResponse, 4)}
}

// publish announces the outcome to the followers.
func (f *flight) publish(res flightResult) {
	f.published.Do(func() {
		f.res = res
		close(f.ready)
	})
}

// retain adds a follower's reference; release drops one, and the last
// release closes what the flight holds (storage writers, spools, objects).
func (f *flight) retain() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

func (f *flight) release() {
	f.mu.Lock()
	f.refs--
	var closers []io.Closer
	if f.refs == 0 {
		closers, f.closer = f.closer, nil
	}
	f.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
}

// hold registers c to be closed with the flight's last reference.
func (f *flight) hold(c io.Closer) {
	f.mu.Lock()
	f.closer = append(f.closer, c)
	f.mu.Unlock()
}

// setSource sets where the body is read from. Bytes already announced must
// be readable from the new source too.
func (f *flight) setSource(src bodyBuffer) {
	f.mu.Lock()
	f.src = src
	f.mu.Unlock()
}

// advance announces n more bytes of body.
func (f *flight) advance(n int) {
	f.mu.Lock()
	f.n += int64(n)
	f.wakeLocked()
	f.mu.Unlock()
}

// finish ends the body: err nil means complete.
func (f *flight) finish(err error) {
	f.mu.Lock()
	f.done, f.err = true, err
	f.wakeLocked()
	f.mu.Unlock()
}

func (f *flight) wakeLocked() {
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// size returns the body length once known: the whole body has arrived.
func (f *flight) size(ctx context.Context) (int64, error) {
	for {
		f.mu.Lock()
		if f.done {
			n, err := f.n, f.err
			f.mu.Unlock()
			return n, err
		}
		wake := f.waitLocked()
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// markStored records that the body was committed to storage.
func (f *flight) markStored() {
	f.mu.Lock()
	f.stored = true
	f.mu.Unlock()
}

// wasStored reports whether the body, complete, was committed to storage.
func (f *flight) wasStored() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done && f.stored
}

// complete returns the body length once the whole body has arrived.
func (f *flight) complete() (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.done && f.err == nil
}

func (f *flight) waitLocked() <-chan struct{} {
	if f.wake == nil {
		f.wake = make(chan struct{})
	}
	return f.wake
}

// readAt reads body bytes at off into p, waiting until some are available.
// It returns fewer than len(p) bytes when that is all there is yet; io.EOF
// at the end of a complete body; the fill's error for a failed one. Before
// it waits it calls idle, so the caller can flush what it has written.
//
// declared is the body's Content-Length, or -1. Of a body of declared
// length, the last byte waits for finish, which comes after the fill
// stored the response and left the flight table: a client cannot receive
// a whole response and then miss it with its next request. (A body of
// unknown length ends only at finish anyway.)
func (f *flight) readAt(ctx context.Context, p []byte, off, declared int64, idle func()) (int, error) {
	for {
		f.mu.Lock()
		n, done, err, src := f.n, f.done, f.err, f.src
		if !done && declared >= 0 && n >= declared {
			n = declared - 1
		}
		if off < n {
			f.mu.Unlock()
			k, rerr := src.ReadAt(p[:min(int64(len(p)), n-off)], off)
			if k > 0 {
				return k, nil
			}
			if rerr == nil || rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return 0, rerr
		}
		if done {
			f.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		wake := f.waitLocked()
		f.mu.Unlock()
		if idle != nil {
			idle()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// flightTable maps storage keys to the flights filling them.
type flightTable struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight filling key, retained for the caller, creating
// it when there is none; leader reports whether the caller created it and
// must start the fill (its reference is the fill's). It knows no limits:
// the slices and encodes of a request that is already being served.
func (t *flightTable) join(key string) (f *flight, leader bool) {
	f, leader, _ = t.joinWithin(key, func() bool { return false }, math.MaxInt)
	return f, leader
}

// joinWithin is join under the fill limits: it refuses (over names the
// limit) to create a flight when full reports that the node runs as many
// fills as it may, and to join one that already has maxWaiters followers.
func (t *flightTable) joinWithin(key string, full func() bool, maxWaiters int) (f *flight, leader bool, over string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.m[key]; ok {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.refs > maxWaiters { // the fill's reference and maxWaiters requests'
			return nil, false, limitWaiters
		}
		f.refs++
		return f, false, ""
	}
	if full() {
		return nil, false, limitFills
	}
	if t.m == nil {
		t.m = make(map[string]*flight)
	}
	f = newLeadFlight(key)
	t.m[key] = f
	return f, true, ""
}

// newLeadFlight returns a flight started by a request: the fill and the
// request each hold a reference.
func newLeadFlight(key string) *flight {
	f := newFlight(key)
	f.hasLeader, f.refs = true, 2
	return f
}

// start registers a flight with no leading request (a background
// revalidation). It returns false when key already has a flight.
func (t *flightTable) start(key string) (*flight, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; ok {
		return nil, false
	}
	if t.m == nil {
		t.m = make(map[string]*flight)
	}
	f := newFlight(key)
	t.m[key] = f
	return f, true
}

// remove takes f out of the table, so later requests look in storage (or
// start a new flight) instead of joining it.
func (t *flightTable) remove(f *flight) {
	t.mu.Lock()
	if t.m[f.key] == f {
		delete(t.m, f.key)
	}
	t.mu.Unlock()
}

// len returns the number of flights in progress.
func (t *flightTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// abandon ends a flight whose fill stopped without saying how: followers
// that have not heard the outcome get err, those reading a body get it as
// the body's error.
func (f *flight) abandon(err error) {
	f.publish(flightResult{kind: outError, err: err})
	f.finish(err)
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
