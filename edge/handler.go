package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/internal/httpurl"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Handler. Zero values take the defaults named.
type Config struct {
	// Name is the node's identity in Cache-Status, Via and CDN-Loop.
	// Zero means "outpost".
	Name string
	// Store holds cached responses. Required.
	Store storage.Tier
	// Hosts are the virtual hosts served; an entry without Names catches
	// every other host. A request for a host no entry matches gets 421.
	Hosts []Host
	// Bans, when set, is consulted on every lookup (purges).
	Bans Bans
	// Logger receives operational events. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the edge's metrics. Nil registers none.
	Registerer prometheus.Registerer

	// HeuristicFraction is the share of the time since Last-Modified used
	// as heuristic freshness (RFC 9111 §4.2.2). Zero means 0.1.
	HeuristicFraction float64
	// HeuristicMax caps heuristic freshness. Zero means 24h.
	HeuristicMax time.Duration
	// StaleWhileRevalidate and StaleIfError are node-wide defaults for
	// responses that carry no such directive (RFC 5861). Zero means off.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// StaleIfUnreachable is how long past its freshness a stored response
	// may be served when upstream gives no response at all (connection
	// refused, reset or timed out), as RFC 9111 §4.2.4 allows a
	// disconnected cache, unless the response forbids serving it stale.
	// Zero means 1h; negative turns it off.
	StaleIfUnreachable time.Duration
	// NegativeTTL is the least freshness given to a 404 or 410 that has
	// no explicit freshness of its own and may be stored, so a missing
	// asset cannot send every request to the origin. Zero means none: such
	// responses follow their headers alone.
	NegativeTTL time.Duration
	// IgnoreClientNoCache makes the cache answer requests carrying
	// no-cache or max-age=0 from storage when fresh (an origin-protecting
	// CDN policy; RFC 9111 §5.2.1 lets a cache be configured so). Off by
	// default.
	IgnoreClientNoCache bool
	// TrustedProxies are the peers (balancers in front, or the edges in
	// front of a shield) whose X-Forwarded-For, X-Forwarded-Proto,
	// X-Forwarded-Host and Forwarded fields are kept and appended to; from
	// any other peer they are replaced (forwarded.go). Nil trusts none.
	TrustedProxies []netip.Prefix
	// HitForMissTTL is how long a key whose response could not be shared
	// is fetched without coalescing. Zero means 10s.
	HitForMissTTL time.Duration
	// IdleTimeout fails an upstream fetch that sends nothing for this
	// long, headers or body. Zero means 60s.
	IdleTimeout time.Duration
	// MaxVariants bounds the Vary variants kept per URL. Zero means 32.
	MaxVariants int
	// MaxFills bounds the upstream fetches one request may start while
	// that many run already (background revalidations, slices and encodes
	// included): a miss over it is answered 503 with Retry-After, a stale
	// response is served without revalidating, and both count in
	// outpost_fills_refused_total. Zero means 2048.
	MaxFills int
	// MaxWaiters bounds the requests that follow one fill: one more gets
	// 503 with Retry-After. Zero means 4096.
	MaxWaiters int
	// MaxRanges bounds the parts of a Range request, after overlapping
	// and nearby ranges are merged (and 4 × MaxRanges before): a request
	// asking for more gets the whole representation, 200 (RFC 9110 §14.2),
	// and counts in outpost_ranges_over_limit_total. Zero means 32.
	MaxRanges int
	// SliceSize is the length of the slices a large object is fetched and
	// stored in (slice.go): every slice but the last has this length, and a
	// cold Range request costs the origin about one. Zero means 1 MiB; less
	// than 64 KiB is an error.
	SliceSize int64
	// SliceThreshold is the length above which an object is stored in
	// slices rather than whole. A cold GET with a Range header learns the
	// length from a one-slice Range request; a cold GET without Range is
	// fetched whole and stored whole when the tier accepts it. Zero means
	// 8 MiB; negative turns slicing off: no new object is sliced, while
	// slice indexes already stored are still served and revalidated, and
	// stored whole once a revalidation brings a new representation.
	SliceThreshold int64
	// StreamDelay is how long a fill waits for a small body (up to 64 KiB)
	// to arrive whole before it sends the response header, so that the
	// body can be stored first and Cache-Status say "stored" only when it
	// was (RFC 9211 §2.5). A longer or slower body streams to its clients
	// as it arrives, and their Cache-Status leaves "stored" out. Zero means
	// 100ms; negative streams at once.
	StreamDelay time.Duration
	// Compression configures compression on the fly (compress.go); the
	// zero value turns it on.
	Compression CompressionConfig
	// SpoolMemory bounds the memory that spools may hold together when
	// SpoolDir cannot take their bytes (a full disk): a flight's clients
	// then still get the whole body. Zero means 64 MiB.
	SpoolMemory int64
	// SpoolDir is where bodies shared but not stored are spooled.
	// Zero means os.TempDir().
	SpoolDir string
	// Tags extracts the surrogate keys (tags) a stored response can be
	// purged by from its header, typically purge.ParseTags. Nil stores none.
	Tags func(http.Header) []string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Bans is what the edge asks of the purge index on every lookup: the
// newest ban that matches a stored object and is newer than it, when it
// was issued and whether it is soft.
type Bans interface {
	Check(m *storage.Meta) (at time.Time, soft bool, banned bool)
}

// Handler is the edge's request path, an http.Handler: it routes by host,
// answers from the cache, coalesces misses into one upstream fetch whose
// body streams to every waiting client, and passes through what it does
// not cache. It is safe for concurrent use. Close stops its fills.
type Handler struct {
	cfg     Config
	store   storage.Tier
	routes  atomic.Pointer[router] // replaced whole by SetHosts (reload.go)
	log     *slog.Logger
	metrics *metrics
	comp    *compressor
	// spoolMem is the memory the spools share when the disk refuses them.
	spoolMem *spoolBudget
	now      func() time.Time
	loopID   string // this node's CDN-Loop entry (RFC 8586)
	nodeTag  string // the part of loopID that identifies this process

	flights flightTable
	misses  *missMarks
	noSlice *missMarks // URLs fetched whole without a slice probe for a while (slice.go)
	indexMu sync.Mutex // serialises variant index updates

	ctx    context.Context // canceled by Close: fills stop
	cancel context.CancelFunc
	fills  sync.WaitGroup
	// running counts the fills in progress, for MaxFills (limits.go).
	running atomic.Int64
}

// errNoHosts is New's and SetHosts's error for an empty set of hosts.
var errNoHosts = errors.New("edge: no hosts (give a catch-all entry or named ones)")

// New returns a Handler for cfg, or an error naming the invalid field.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("edge: Store is required")
	}
	if len(cfg.Hosts) == 0 {
		return nil, errNoHosts
	}
	if cfg.Name == "" {
		cfg.Name = "outpost"
	}
	if err := CheckName(cfg.Name); err != nil {
		return nil, fmt.Errorf("edge: Name: %w", err)
	}
	if cfg.HeuristicFraction < 0 || cfg.HeuristicFraction > 1 {
		return nil, fmt.Errorf("edge: HeuristicFraction %v is outside [0, 1]", cfg.HeuristicFraction)
	}
	if cfg.HeuristicFraction == 0 {
		cfg.HeuristicFraction = 0.1
	}
	setDefault(&cfg.HeuristicMax, 24*time.Hour)
	setDefault(&cfg.HitForMissTTL, 10*time.Second)
	setDefault(&cfg.StaleIfUnreachable, time.Hour)
	setDefault(&cfg.IdleTimeout, 60*time.Second)
	setDefault(&cfg.MaxVariants, 32)
	setDefault(&cfg.MaxRanges, 32)
	setDefault(&cfg.MaxFills, 2048)
	setDefault(&cfg.MaxWaiters, 4096)
	setDefault(&cfg.SpoolDir, os.TempDir())
	setDefault(&cfg.StreamDelay, 100*time.Millisecond)
	setDefault(&cfg.SpoolMemory, 64<<20)
	setDefault(&cfg.SliceSize, defaultSliceSize)
	setDefault(&cfg.SliceThreshold, defaultSliceThreshold)
	if err := CheckSliceSize(cfg.SliceSize); err != nil {
		return nil, fmt.Errorf("edge: SliceSize: %w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"StaleWhileRevalidate", cfg.StaleWhileRevalidate}, {"StaleIfError", cfg.StaleIfError}, {"HeuristicMax", cfg.HeuristicMax}, {"NegativeTTL", cfg.NegativeTTL}} {
		if d.v < 0 {
			return nil, fmt.Errorf("edge: %s %v is negative", d.name, d.v)
		}
	}
	if cfg.MaxVariants < 1 {
		return nil, fmt.Errorf("edge: MaxVariants %d is below 1", cfg.MaxVariants)
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"MaxRanges", cfg.MaxRanges}, {"MaxFills", cfg.MaxFills}, {"MaxWaiters", cfg.MaxWaiters}} {
		if l.v < 1 {
			return nil, fmt.Errorf("edge: %s %d is below 1", l.name, l.v)
		}
	}
	cfg.Hosts = append([]Host(nil), cfg.Hosts...) // never keep the caller's slice
	rt, err := newRouter(cfg.Hosts)
	if err != nil {
		return nil, err
	}
	comp, err := newCompressor(cfg.Compression)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		spoolMem: &spoolBudget{max: cfg.SpoolMemory},
		cfg:      cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now, comp: comp,
		misses: newMissMarks(100_000), noSlice: newMissMarks(100_000),
	}
	h.routes.Store(rt)
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if h.now == nil {
		h.now = time.Now
	}
	var id [4]byte
	rand.Read(id[:])
	h.nodeTag = "node=" + hex.EncodeToString(id[:])
	h.loopID = cfg.Name + "; " + h.nodeTag
	if h.metrics, err = newMetrics(cfg.Registerer, func() float64 { return float64(h.flights.len()) }, comp.collectors()...); err != nil {
		return nil, err
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// CheckName reports whether name can name this cache in Cache-Status
// (RFC 9211 §2: a token here; no spaces, commas, semicolons or quotes).
func CheckName(name string) error {
	if name == "" || strings.ContainsAny(name, ",; \t\"") {
		return fmt.Errorf("bad name %q (a token: no spaces, commas, semicolons or quotes)", name)
	}
	return nil
}

// CheckSliceSize reports whether n can be Config.SliceSize (zero is the
// default).
func CheckSliceSize(n int64) error {
	if n != 0 && n < minSliceSize {
		return fmt.Errorf("%d bytes is below the 64KiB minimum", n)
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Close cancels the fills in progress and waits for them to end. Call it
// after the HTTP server has drained, so no handler is still following one.
func (h *Handler) Close() error {
	h.cancel()
	h.fills.Wait()
	return nil
}

// Wait blocks until no fill is in progress (background revalidations
// included) or ctx is done. Tests use it to observe a quiet cache.
func (h *Handler) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.fills.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP answers one client request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	c, err := canonicalize(scheme, host, r.URL.EscapedPath(), r.URL.RawQuery, nil)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, nil)
		return
	}
	site := h.route(c.host[:c.hostLen])
	if site == nil {
		// Never an open proxy (DESIGN: unknown hosts get 421).
		h.writeError(w, http.StatusMisdirectedRequest, nil)
		return
	}
	if site.Admit != nil {
		var ok bool
		if w, ok = site.Admit(w, r); !ok {
			return
		}
	}
	if c.query != "" && site.Key.rewrites() {
		c.query = rewriteQuery(c.query, &site.Key)
	}
	if h.looped(r) {
		h.writeError(w, http.StatusLoopDetected, nil)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.serveCacheable(w, r, site, &c)
	default:
		h.forward(w, r, site, &c)
	}
}

// looped reports whether the request has already passed through this node
// (RFC 8586 §2): its CDN-Loop field carries our process's entry.
func (h *Handler) looped(r *http.Request) bool {
	for _, v := range r.Header["Cdn-Loop"] {
		if strings.Contains(v, h.nodeTag) {
			return true
		}
	}
	return false
}

// maxAttempts bounds how often one request looks in the cache again after
// what it found turned out not to apply to it (a flight's response selected
// another variant; a stored slice index was not current).
const maxAttempts = 2

// serveCacheable answers a GET or HEAD: from storage when a stored response
// may be used (RFC 9111 §4), else through a flight. It looks again when what
// it learns sends it back to storage, at most maxAttempts times coalesced,
// then once more on its own.
func (h *Handler) serveCacheable(w http.ResponseWriter, r *http.Request, site *Host, c *canonical) {
	urlKey := c.String()
	var varyHint []string // the Vary names a flight that did not apply to us learned
	for attempt := 0; ; attempt++ {
		rc := parseCacheControl(r.Header["Cache-Control"])
		if attempt == 0 && h.freshVariant(w, r, urlKey, &rc) {
			return // a fresh encoded variant, found without its base (compress.go)
		}
		lk := h.lookup(r.Context(), urlKey, r.Header, varyHint)
		fwd := lk.fwd
		if lk.obj != nil {
			m := lk.obj.Meta()
			purgedSince(r, &rc, m)
			age := currentAge(m, h.now())
			if use := h.judge(m, &rc, age, lk.soft); use != useValidate {
				cs := cacheStatus{hit: true, ttl: ttlOf(m, age), hasTTL: true}
				if lk.soft {
					cs.ttl = -age
				}
				if use == useSWR {
					// RFC 5861 §3: serve the stale response now, refresh it
					// in the background, once however many clients ask.
					cs.detail = "stale-while-revalidate"
					h.revalidateInBackground(r, site, c, lk.key)
				}
				again := h.respondStored(w, r, site, c, lk.obj, nil, &cs, attempt)
				lk.obj.Close()
				if again {
					continue
				}
				return
			}
			fwd = fwdStale
			fresh := !lk.soft && m.Flags&flagNoCache == 0 && m.Lifetime > age
			if fresh || rc.noCache || rc.maxAge != unset && age > time.Duration(rc.maxAge)*time.Second {
				// RFC 9211 §2.2: the request's directives (no-cache,
				// max-age, min-fresh) sent it upstream, not the
				// response's staleness.
				fwd = fwdRequest
			}
		}
		if rc.onlyIfCached {
			// RFC 9111 §5.2.1.7: nothing usable without going upstream.
			if lk.obj != nil {
				lk.obj.Close()
			}
			h.writeError(w, http.StatusGatewayTimeout, &cacheStatus{fwd: fwd, detail: "only-if-cached"})
			return
		}

		coalesce := !rc.noStore && attempt < maxAttempts && !h.misses.marked(lk.key, h.now())
		var f *flight
		leader := true
		var over string
		if coalesce {
			f, leader, over = h.flights.joinWithin(lk.key, h.fillsFull, h.cfg.MaxWaiters)
		} else if h.fillsFull() {
			over = limitFills
		} else {
			f = newLeadFlight(lk.key)
			if fwd == fwdMiss && attempt < maxAttempts {
				fwd = fwdBypass
			}
		}
		if over != "" {
			if lk.obj != nil {
				lk.obj.Close()
			}
			h.refuseFill(w, over, fwd)
			return
		}
		if leader {
			fl := h.newFill(r, site, c, f, lk.obj)
			fl.inTable, fl.fwd, fl.noStore = coalesce, fwd, rc.noStore
			h.askNoOlderThanPurges(fl.out.Header, r, urlKey, lk.banAt)
			h.startFill(fl, r, attempt, varyHint)
		} else if lk.obj != nil {
			lk.obj.Close()
		}
		next := h.follow(w, r, f, leader, site, c, attempt)
		if !next.again {
			return
		}
		varyHint = next.vary
		if next.alone {
			attempt = maxAttempts - 1 // the next attempt fetches without coalescing
		}
	}
}

// lookupResult is what a storage lookup found.
type lookupResult struct {
	obj  storage.Object // nil on a miss
	key  string         // the storage key for this request (its variant)
	fwd  string         // the Cache-Status forward reason on a miss
	soft bool           // a soft purge made obj stale
	// banAt is the time of the purge that matched the stored response
	// (hard or soft), zero when none did.
	banAt time.Time
}

// lookup finds the stored response for a request: the object under the
// URL, or through the URL's variant index the variant the request's fields
// select (RFC 9111 §4.1). Purged objects are misses.
func (h *Handler) lookup(ctx context.Context, urlKey string, reqHeader http.Header, varyHint []string) lookupResult {
	lk := lookupResult{key: urlKey, fwd: fwdMiss}
	if h.replaying() { // origintime.go: what is stored may be about to be purged
		if varyHint != nil {
			lk.key = variantKey(urlKey, variantID(varyHint, reqHeader))
		}
		lk.fwd = fwdBypass
		return lk
	}
	o, err := h.store.Get(ctx, urlKey)
	if err != nil && varyHint != nil {
		lk.key = variantKey(urlKey, variantID(varyHint, reqHeader))
		o, err = h.store.Get(ctx, lk.key)
	}
	if err != nil {
		return lk
	}
	m := o.Meta()
	if m.IsVariantIndex() {
		lk.key = variantKey(urlKey, variantID(m.Vary, reqHeader))
		o.Close()
		if o, err = h.store.Get(ctx, lk.key); err != nil {
			lk.fwd = fwdVaryMiss
			return lk
		}
		m = o.Meta()
	}
	if h.cfg.Bans != nil {
		if at, soft, banned := h.cfg.Bans.Check(m); banned {
			lk.banAt = at
			if !soft {
				o.Close()
				h.store.Delete(ctx, lk.key)
				return lk
			}
			lk.soft = true
		}
	}
	lk.obj = o
	return lk
}

// purgedAtField carries, from a tier to its parent, the time of the purge
// that made it refetch (Unix nanoseconds): the precise form of the
// max-age=<seconds since the purge> sent beside it (sinceLastPurge).
const purgedAtField = "Outpost-Purged-At"

// purgedSince applies a child tier's Outpost-Purged-At to its request's
// directives: a stored response fetched after the purge is what the
// child's max-age asks for, however many whole seconds it is old, and one
// fetched before must be revalidated whatever its age. Without it, a max-age
// of 0 in a purge's first second would send every child's refetch to the
// origin. Only requests from another tier (CDN-Loop) carry it; a client's
// is removed before it goes upstream (upstreamRequest).
func purgedSince(r *http.Request, rc *directives, m *storage.Meta) {
	v, ok := r.Header[purgedAtField]
	if !ok || len(v) != 1 || !innerTier(r) || rc.maxAge == unset {
		return
	}
	at, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return
	}
	if m.ObtainedAt().UnixNano() >= at {
		rc.maxAge = unset
	} else {
		rc.noCache = true
	}
}

// newestBans is implemented by a Bans that can tell, before a response is
// known, the newest purge that would match any object of a URL.
type newestBans interface {
	Newest(url string) (time.Time, bool)
}

// purgeReach is how long after a purge the refetches it causes ask the
// tier above for a copy no older than the purge.
const purgeReach = 24 * time.Hour

// sinceLastPurge asks upstream caches (a shield that may not have applied a
// purge yet) for a response no older than the newest purge of the URL:
// Cache-Control: max-age=<seconds since the purge> (DESIGN "Purges across a
// fleet"; RFC 9111 §5.2.1.1). A smaller max-age the client sent is kept.
func (h *Handler) sinceLastPurge(out http.Header, urlKey string, banAt time.Time) {
	if nb, ok := h.cfg.Bans.(newestBans); ok {
		if at, ok := nb.Newest(urlKey); ok && at.After(banAt) {
			banAt = at
		}
	}
	if banAt.IsZero() {
		return
	}
	since := h.now().Sub(banAt)
	if since < 0 || since > purgeReach {
		return
	}
	secs := int64(since / time.Second)
	if cc := parseCacheControl(out["Cache-Control"]); cc.maxAge != unset && cc.maxAge <= secs {
		return
	}
	appendField(out, "Cache-Control", "max-age="+strconv.FormatInt(secs, 10))
	out[purgedAtField] = []string{strconv.FormatInt(banAt.UnixNano(), 10)}
}

// revalidateInBackground starts a conditional refresh of a stored response
// unless one is already running.
func (h *Handler) revalidateInBackground(r *http.Request, site *Host, c *canonical, key string) {
	if h.fillsFull() {
		h.metrics.fillsRefused[limitFills].Inc()
		return // the stale response is served; a later request tries again
	}
	f, ok := h.flights.start(key)
	if !ok {
		return
	}
	stale, err := h.store.Get(h.ctx, key)
	if err != nil {
		h.flights.remove(f)
		f.release()
		return
	}
	fl := h.newFill(r, site, c, f, stale)
	fl.inTable, fl.fwd = true, fwdStale
	h.askNoOlderThanPurges(fl.out.Header, r, fl.urlKey, time.Time{})
	h.startFill(fl, r, 0, nil)
}

// startFill runs a fill for the request that leads its flight, in a
// goroutine the Handler owns; slicing decides first whether it asks
// upstream for one slice.
func (h *Handler) startFill(fl *fill, r *http.Request, attempt int, varyHint []string) {
	h.planSlice(fl, r, attempt, varyHint)
	h.goFill(fl.f, func() { h.runFill(fl) })
}

// next is what a request does once it has followed a flight: done, or look
// in the cache again (again), with the Vary names the flight learned, and
// on its own rather than coalesced (alone).
type next struct {
	again, alone bool
	vary         []string
}

// follow waits for a flight's outcome and answers the request from it.
func (h *Handler) follow(w http.ResponseWriter, r *http.Request, f *flight, leader bool, site *Host, c *canonical, attempt int) next {
	var interim <-chan interimResponse
	if leader {
		interim = f.interim
	}
wait:
	for {
		select {
		case <-f.ready:
			// The 1xx responses came before the final one: relay those
			// still queued (select may have picked ready first).
			for len(interim) > 0 {
				ir := <-interim
				writeInterim(w, ir.code, ir.header)
			}
			break wait
		case ir := <-interim:
			writeInterim(w, ir.code, ir.header)
		case <-r.Context().Done():
			if leader {
				f.leaderLeft()
			}
			f.release()
			return next{}
		}
	}
	res := &f.res
	if h.flightPurged(res, attempt) { // origintime.go: fetch again, no older than the purge
		h.flights.remove(f)
		f.release()
		return next{again: true, vary: res.vary}
	}
	cs := res.status
	cs.collapsed = !leader
	switch res.kind {
	case outError:
		f.release()
		h.writeError(w, errorStatus(res.err), &cs)
	case outPrivate:
		if !leader {
			// Released: fetch on its own at once, not queued behind
			// another fetch.
			f.release()
			return next{again: true, alone: true, vary: res.vary}
		}
		pr := f.takeHandoff()
		f.release()
		if pr == nil {
			h.writeError(w, http.StatusBadGateway, &cs)
			break
		}
		defer pr.cancel()
		defer pr.resp.Body.Close()
		pcs := pr.status
		if pcs.detail == "" {
			pcs.detail = "uncacheable" // else why it was not stored
		}
		h.relay(w, r, pr.resp, pr.upstream, &pcs)
	case outObject:
		defer f.release()
		if h.respondStored(w, r, site, c, res.obj, res.upstream, &cs, attempt) {
			return next{again: true}
		}
	case outStream:
		if !leader && len(res.vary) > 0 && variantID(res.vary, r.Header) != res.varyID {
			// RFC 9111 §4.1: this response was selected by other
			// request fields; look again as the variant we are.
			f.release()
			return next{again: true, vary: res.vary}
		}
		defer f.release()
		if cd := h.coding(r, res.meta); cd != identity && !(leader && res.leaderHeader != nil) {
			h.respondEncodedStream(w, r, f, cd, cs)
			break
		}
		hdr := res.meta.Header
		if leader && res.leaderHeader != nil {
			hdr = res.leaderHeader
		}
		_, hadAge := hdr["Age"]
		rep := &representation{
			meta: res.meta, header: hdr, upstream: res.upstream,
			age:  hadAge || h.now().Sub(res.meta.ResponseTime) >= time.Second,
			body: flightBody{f: f, ctx: r.Context(), declared: res.meta.Size},
		}
		if x := contentCoding(hdr); x != identity && !h.comp.off && !acceptable(r.Header["Accept-Encoding"], x) {
			h.respondDecodedStream(w, r, rep, f, x, &cs)
			break
		}
		h.respond(w, r, rep, &cs)
	}
	return next{}
}

// CanonicalURL returns the canonical form of an absolute http(s) URL: the
// form storage.Meta.URL holds and purges match, with the query options of
// the host entry the URL routes to. A URL for a host no entry serves is
// still canonicalised, without query options.
func (h *Handler) CanonicalURL(raw string) (string, error) {
	u, err := httpurl.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("edge: %q: %w", raw, err)
	}
	c, err := canonicalize(strings.ToLower(u.Scheme), u.Host, u.EscapedPath(), u.RawQuery, nil)
	if err != nil {
		return "", fmt.Errorf("edge: %q: %w", raw, err)
	}
	if site := h.route(c.host[:c.hostLen]); site != nil && c.query != "" && site.Key.rewrites() {
		c.query = rewriteQuery(c.query, &site.Key)
	}
	return c.String(), nil
}
