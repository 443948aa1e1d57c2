package edge

// Compression on the fly (RFC 9110 §8.4 content codings, §12.5.3
// Accept-Encoding).
//
// With compression on, every fill asks upstream for the identity coding
// (upstreamRequest), so one stored response per URL (per Vary variant of
// other fields) serves every coding: the origin's Vary: Accept-Encoding is
// satisfied by construction and left out of the cache key, and Outpost
// negotiates the coding with each client itself. A 200 whose type is on
// CompressionConfig.Types, at least MinSize long (or of unknown length),
// without Content-Encoding and without no-transform (RFC 9110 §7.7) is
// marked compressible when stored (flagCompressible) and given Vary:
// Accept-Encoding.
//
// A client that negotiates zstd, br or gzip for a compressible response is
// served an encoded variant: a stored object of its own under
// encodedKey(key, coding), with the base's status, header and freshness,
// Content-Encoding set, a strong ETag made distinct per coding and an exact
// Content-Length. A missing variant is produced once by a flight under its
// key (an encode fill, coalesced like any miss) that reads the base, stored
// or still arriving, through a fast encoder and streams the output to every
// client waiting for it while it is stored. A variant belongs to its base
// while they share RequestTime and ResponseTime: a 304 that refreshes the
// base refreshes its variants too, and a new base makes old variants
// misses. A variant served RecompressAfter times at the fast level is
// compressed again at the best level in the background (a bounded number
// at a time) and replaced when ready.
//
// A response the origin sent encoded (it ignored our identity request) is
// stored as it came; a client that does not accept its coding gets it
// decoded, up to MaxDecompressed bytes and never more than maxRatio times
// its encoded length: a body that expands further is refused (502), not
// served.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// CompressionConfig configures compression on the fly. The zero value
// turns it on with the defaults named.
type CompressionConfig struct {
	// Off turns compression off: responses are passed as the origin sent
	// them, and Accept-Encoding is normalised to the one coding a client
	// would be given, both in the cache key (when the origin varies on it)
	// and upstream.
	Off bool
	// Types are the media types compressed: "type/subtype", or "type/*".
	// Zero means DefaultCompressTypes.
	Types []string
	// MinSize is the least body length compressed. Zero means 1 KiB.
	MinSize int64
	// Codings are the codings offered, in order of preference at equal
	// q-value. Zero means zstd, br, gzip.
	Codings []string
	// RecompressAfter is how many hits a variant compressed at the fast
	// level takes before it is compressed again at the best level in the
	// background. Zero means 8; negative never.
	RecompressAfter int
	// MaxDecompressed bounds what a body the origin sent encoded may
	// expand to when a client that does not accept its coding is given it
	// decoded. Zero means 256 MiB.
	MaxDecompressed int64
}

// DefaultCompressTypes are the media types compressed by default: text,
// scripts, data, markup, SVG, WebAssembly, and the font formats that are
// not compressed already (WOFF and WOFF2 are).
var DefaultCompressTypes = []string{
	"text/*",
	"application/javascript", "application/x-javascript", "application/ecmascript",
	"application/json", "application/ld+json", "application/manifest+json", "application/geo+json",
	"application/xml", "application/atom+xml", "application/rss+xml", "application/xhtml+xml",
	"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
	"application/wasm",
	"font/ttf", "font/otf", "font/collection", "application/vnd.ms-fontobject",
	"application/x-font-ttf", "application/x-font-otf",
}

// maxRatio bounds how many times its encoded length a decoded body may be:
// past it, the body is taken for a decompression bomb.
const maxRatio = 1000

// Flags of stored objects for compression (storage.Meta.Flags; clear of the
// bits of freshness.go and slice.go).
const (
	// flagCompressible: a base response that is served encoded to the
	// clients that accept it.
	flagCompressible uint32 = 1 << 17
	// flagBestLevel: an encoded variant compressed at the best level.
	flagBestLevel uint32 = 1 << 18
)

// level is how hard an encoder works.
type level uint8

const (
	levelFast level = iota // on demand, while a client waits
	levelBest              // in the background, for variants that are hit
)

var levelNames = [...]string{"fast", "best"}

// compressor holds the Handler's compression settings, encoder pools,
// hit counts and metrics.
type compressor struct {
	off       bool
	offered   []coding
	types     []string // "type/subtype" or "type/" for "type/*", lowercase
	minSize   int64
	maxOut    int64
	recompAt  int
	recompSem *semaphore.Weighted // background recompressions at a time

	mu      sync.Mutex
	hits    map[string]int // fast variants' hits, towards RecompressAfter
	pending map[string]bool

	pools [numCodings][2]sync.Pool // encoders by coding and level

	// seen remembers the coding negotiated for the Accept-Encoding values
	// met last: clients send a handful of distinct values, so most
	// requests skip parsing theirs.
	seen [8]atomic.Pointer[negotiated]

	in, out, secs [numCodings][2]prometheus.Counter
	decoded       [numCodings]prometheus.Counter
	refused       prometheus.Counter

	inVec, outVec, secsVec, decodedVec *prometheus.CounterVec
}

// collectors are the compressor's metrics, registered with the edge's.
func (c *compressor) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.inVec, c.outVec, c.secsVec, c.decodedVec, c.refused}
}

// negotiated is an Accept-Encoding value and the coding chosen for it.
type negotiated struct {
	value string
	cd    coding
}

// negotiate chooses the coding for a request's Accept-Encoding among the
// offered codings, from the values met last when it can.
func (c *compressor) negotiate(lines []string) coding {
	if len(lines) != 1 {
		return negotiate(lines, c.offered)
	}
	v := lines[0]
	slot := &c.seen[(len(v)+int(v[len(v)/2]))%len(c.seen)]
	if e := slot.Load(); e != nil && e.value == v {
		return e.cd
	}
	cd := negotiate(lines, c.offered)
	if len(v) <= 256 {
		slot.Store(&negotiated{value: strings.Clone(v), cd: cd})
	}
	return cd
}

// maxHitCounts bounds the table of hit counts; when full it starts again,
// which only delays some recompressions.
const maxHitCounts = 10_000

// Validate reports the first invalid field of cfg, naming it.
func (cfg CompressionConfig) Validate() error {
	_, err := newCompressor(cfg)
	return err
}

func newCompressor(cfg CompressionConfig) (*compressor, error) {
	c := &compressor{
		off: cfg.Off, minSize: cfg.MinSize, maxOut: cfg.MaxDecompressed, recompAt: cfg.RecompressAfter,
		recompSem: semaphore.NewWeighted(1), hits: map[string]int{}, pending: map[string]bool{},
	}
	setDefault(&c.minSize, 1<<10)
	setDefault(&c.maxOut, 256<<20)
	setDefault(&c.recompAt, 8)
	types := cfg.Types
	if len(types) == 0 {
		types = DefaultCompressTypes
	}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		main, sub, ok := strings.Cut(t, "/")
		if !ok || main == "*" || !isToken(main) || sub != "*" && !isToken(sub) {
			return nil, fmt.Errorf("edge: Compression.Types: %w", fmt.Errorf("%q is not a media type (type/subtype or type/*)", t))
		}
		c.types = append(c.types, strings.TrimSuffix(t, "*"))
	}
	names := cfg.Codings
	if len(names) == 0 {
		names = []string{"zstd", "br", "gzip"}
	}
	for _, n := range names {
		cd, ok := parseCoding(n)
		if !ok || cd == identity {
			return nil, fmt.Errorf("edge: Compression.Codings: %w", fmt.Errorf("%q is not zstd, br or gzip", n))
		}
		c.offered = append(c.offered, cd)
	}
	if c.minSize < 0 || c.maxOut < 0 {
		return nil, fmt.Errorf("edge: Compression.MinSize and MaxDecompressed must not be negative")
	}

	c.inVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_compression_input_bytes_total",
		Help: "Bytes compressed on the fly, by coding and level (fast on demand, best in the background).",
	}, []string{"coding", "level"})
	c.outVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_compression_output_bytes_total",
		Help: "Bytes the on-the-fly compression produced, by coding and level; output/input is the ratio.",
	}, []string{"coding", "level"})
	c.secsVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_compression_seconds_total",
		Help: "Time spent compressing, by coding and level.",
	}, []string{"coding", "level"})
	c.decodedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_decompression_output_bytes_total",
		Help: "Bytes decoded for clients that do not accept the coding the origin sent, by coding.",
	}, []string{"coding"})
	c.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_decompression_refused_total",
		Help: "Encoded bodies refused because they expanded past the bound (decompression bombs).",
	})
	in, out, secs, decoded := c.inVec, c.outVec, c.secsVec, c.decodedVec
	for cd := codingGzip; cd < numCodings; cd++ {
		for l, ln := range levelNames {
			c.in[cd][l] = in.WithLabelValues(cd.String(), ln)
			c.out[cd][l] = out.WithLabelValues(cd.String(), ln)
			c.secs[cd][l] = secs.WithLabelValues(cd.String(), ln)
		}
		c.decoded[cd] = decoded.WithLabelValues(cd.String())
	}
	return c, nil
}

// compressible reports whether a response is served encoded to the clients
// that accept a coding: a 200 of a type on the list, long enough or of
// unknown length, not encoded, without no-transform.
func (c *compressor) compressible(status int, hdr http.Header, size int64, noTransform bool) bool {
	if c.off || status != http.StatusOK || noTransform || size >= 0 && size < c.minSize {
		return false
	}
	if ce, ok := hdr["Content-Encoding"]; ok && !(len(ce) == 1 && strings.EqualFold(trimOWS(ce[0]), "identity")) {
		return false
	}
	mt, _, _ := strings.Cut(hdr.Get("Content-Type"), ";")
	mt = strings.ToLower(trimOWS(mt))
	for _, t := range c.types {
		if mt == t || strings.HasSuffix(t, "/") && strings.HasPrefix(mt, t) {
			return true
		}
	}
	return false
}

// contentCoding returns the single coding Outpost can decode that a stored
// header's Content-Encoding names, or identity.
func contentCoding(hdr http.Header) coding {
	ce := hdr["Content-Encoding"]
	if len(ce) != 1 {
		return identity
	}
	cd, ok := parseCoding(trimOWS(ce[0]))
	if !ok {
		return identity
	}
	return cd
}

// variantMeta is the metadata of base's variant encoded with cd: the
// base's status, freshness and tags; its header with Content-Encoding, a
// strong ETag made distinct per coding (RFC 9110 §8.8.3) and no
// Content-Length (the body's own length is Size, known once stored).
func variantMeta(base *storage.Meta, key string, cd coding, lv level) storage.Meta {
	m := base.Clone()
	m.Key, m.Size = encodedKey(key, cd), -1
	m.Flags &^= flagCompressible
	if lv == levelBest {
		m.Flags |= flagBestLevel
	}
	delete(m.Header, "Content-Length")
	m.Header["Content-Encoding"] = []string{cd.String()}
	if etag := firstLine(m.Header["Etag"]); etag != "" && !isWeak(etag) && strings.HasSuffix(etag, `"`) {
		m.Header["Etag"] = []string{etag[:len(etag)-1] + "-" + cd.String() + `"`}
	}
	return m
}

// belongsTo reports whether a stored variant was encoded from base as it
// is now (see the package comment on compression).
func belongsTo(v, base *storage.Meta) bool {
	return v.RequestTime.Equal(base.RequestTime) && v.ResponseTime.Equal(base.ResponseTime)
}

// addVary adds a field name to a header's Vary, unless it is there already
// or Vary is "*".
func addVary(hdr http.Header, name string) {
	names, star := parseVary(hdr)
	if star {
		return
	}
	for _, n := range names {
		if n == name {
			return
		}
	}
	appendField(hdr, "Vary", name)
}

// respondObject answers a request from a stored whole object usable for it:
// as it is, through its encoded variant when the client negotiates a coding
// for a compressible object, or decoded when the client does not accept the
// coding the origin sent.
func (h *Handler) respondObject(w http.ResponseWriter, r *http.Request, obj storage.Object, upstream []string, cs *cacheStatus) {
	m := obj.Meta()
	if cd := h.coding(r, m); cd != identity {
		h.respondEncoded(w, r, obj, &representation{meta: m, header: m.Header, upstream: upstream, age: true, obj: obj}, cd, cs)
		return
	}
	if x := contentCoding(m.Header); x != identity && !h.comp.off && !acceptable(r.Header["Accept-Encoding"], x) {
		n := m.Size
		rep := &representation{meta: m, header: m.Header, upstream: upstream, age: true, obj: obj}
		h.respondDecoded(w, r, rep, func() io.Reader { return io.NewSectionReader(obj, 0, n) }, n, x, cs)
		return
	}
	h.respond(w, r, &representation{meta: m, header: m.Header, upstream: upstream, age: true, obj: obj}, cs)
}

// freshVariant answers a request that negotiates a coding from the encoded
// variant stored for its URL, when there is one that is fresh and not
// purged: a stored response of its own, with its base's freshness, so a hit
// on it costs one lookup, as a hit on the base does. Anything else (no
// variant, a stale one, a URL whose responses vary on other fields) goes
// the base's way, which judges the base and finds or makes its variant.
func (h *Handler) freshVariant(w http.ResponseWriter, r *http.Request, urlKey string, rc *directives) bool {
	if h.comp.off || len(r.Header["Accept-Encoding"]) == 0 || rc.noTransform || h.replaying() {
		return false
	}
	cd := h.comp.negotiate(r.Header["Accept-Encoding"])
	if cd == identity {
		return false
	}
	v, err := h.store.Get(r.Context(), encodedKey(urlKey, cd))
	if err != nil {
		return false
	}
	defer v.Close()
	m := v.Meta()
	if h.cfg.Bans != nil {
		if _, _, banned := h.cfg.Bans.Check(m); banned {
			return false
		}
	}
	age := currentAge(m, h.now())
	if h.judge(m, rc, age, false) != useFresh {
		return false
	}
	h.respond(w, r, &representation{meta: m, header: m.Header, age: true, obj: v}, &cacheStatus{hit: true, ttl: ttlOf(m, age), hasTTL: true})
	if m.Flags&flagBestLevel == 0 {
		h.hitFastVariant(urlKey, cd)
	}
	return true
}

// coding is the coding to serve a compressible response in, or identity.
func (h *Handler) coding(r *http.Request, m *storage.Meta) coding {
	if m.Flags&flagCompressible == 0 || h.comp.off {
		return identity
	}
	if cc, ok := r.Header["Cache-Control"]; ok && parseCacheControl(cc).noTransform {
		return identity // RFC 9111 §5.2.1.6
	}
	return h.comp.negotiate(r.Header["Accept-Encoding"])
}

// respondEncoded answers from base's variant encoded with cd: the stored
// one when it belongs to base, else the one an encode flight is producing
// from it (started when there is none). rep is base's representation,
// served as it is when base has just been replaced.
func (h *Handler) respondEncoded(w http.ResponseWriter, r *http.Request, base storage.Object, rep *representation, cd coding, cs *cacheStatus) {
	key := base.Meta().Key
	vkey := encodedKey(key, cd)
	if v, err := h.store.Get(r.Context(), vkey); err == nil {
		vm := v.Meta()
		if belongsTo(vm, base.Meta()) {
			h.respond(w, r, &representation{meta: vm, header: vm.Header, upstream: rep.upstream, age: true, obj: v}, cs)
			v.Close()
			if vm.Flags&flagBestLevel == 0 {
				h.hitFastVariant(key, cd)
			}
			return
		}
		v.Close()
	}
	// The encode fill reads a copy of base of its own, which outlives
	// this request.
	src, err := h.store.Get(h.ctx, key)
	if err != nil || !belongsTo(src.Meta(), base.Meta()) {
		if err == nil {
			src.Close()
		}
		h.respond(w, r, rep, cs) // base was just replaced or dropped
		return
	}
	f, leader := h.flights.join(vkey)
	if leader {
		status := *cs
		h.goFill(f, func() {
			defer src.Close()
			h.runEncode(f, io.NewSectionReader(src, 0, src.Meta().Size), src.Meta(), key, cd, status, nil)
		})
	} else {
		src.Close()
	}
	h.followEncode(w, r, f, leader)
}

// respondEncodedStream answers a follower of a fill whose response is
// compressible, through the encode flight that reads the response as it
// arrives. The caller keeps its reference to f.
func (h *Handler) respondEncodedStream(w http.ResponseWriter, r *http.Request, f *flight, cd coding, cs cacheStatus) {
	vkey := encodedKey(f.key, cd)
	ef, leader := h.flights.join(vkey)
	if leader && h.storedVariant(ef, vkey, f.res.meta, cs) {
		leader = false // served from the variant another encode just stored
	} else if leader {
		f.retain() // the encode fill's, released when it ends
		res := &f.res
		status := cs
		status.collapsed, status.stored = false, false
		h.goFill(ef, func() {
			defer f.release()
			h.runEncode(ef, &flightReader{f: f, ctx: h.ctx, declared: res.meta.Size}, res.meta, f.key, cd, status, f)
		})
	}
	h.followEncode(w, r, ef, leader)
}

// followEncode answers a request from an encode flight.
func (h *Handler) followEncode(w http.ResponseWriter, r *http.Request, f *flight, leader bool) {
	select {
	case <-f.ready:
	case <-r.Context().Done():
		f.release()
		return
	}
	defer f.release()
	res := &f.res
	cs := res.status
	if !leader {
		cs.collapsed = true
	}
	switch res.kind {
	case outObject:
		h.respond(w, r, &representation{meta: res.meta, header: res.meta.Header, age: true, obj: res.obj}, &cs)
	case outStream:
		h.respond(w, r, &representation{
			meta: res.meta, header: res.meta.Header, upstream: res.upstream, age: true,
			body: flightBody{f: f, ctx: r.Context(), declared: -1},
		}, &cs)
	default:
		h.writeError(w, errorStatus(res.err), &cs)
	}
}

// storedVariant ends an encode flight ef that the caller leads with the
// variant stored under vkey, when one belongs to base: a follower of the
// base's fill that woke up late finds the variant another encode flight
// stored, and does not compress the body a second time.
func (h *Handler) storedVariant(ef *flight, vkey string, base *storage.Meta, cs cacheStatus) bool {
	v, err := h.store.Get(h.ctx, vkey)
	if err != nil {
		return false
	}
	if !belongsTo(v.Meta(), base) {
		v.Close()
		return false
	}
	ef.hold(v)
	cs.collapsed = false
	ef.publish(flightResult{kind: outObject, meta: v.Meta(), obj: v, status: cs})
	h.endFill(ef, nil)
	ef.release() // the fill's reference
	return true
}

// runEncode is the fill of an encode flight: it reads src, the body of
// base, through a fast encoder into the variant's storage, for the
// followers of f. cs is the Cache-Status of how the base was obtained.
func (h *Handler) runEncode(f *flight, src io.Reader, base *storage.Meta, key string, cd coding, cs cacheStatus, baseFill *flight) {
	defer f.release()
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	idle := time.AfterFunc(h.cfg.IdleTimeout, cancel)
	defer idle.Stop()
	m := variantMeta(base, key, cd, levelFast)
	cr := h.comp.newReader(src, base.Size, cd, levelFast)
	defer cr.close()
	stored, err := h.fillBody(ctx, f, cr, &m, true, flightResult{kind: outStream, meta: &m, status: cs, base: baseFill}, idle)
	if stored {
		// A new base committed between fillBody's checks and the commit
		// would find this variant; take it back.
		if cur, err := h.store.Get(ctx, key); err != nil || !belongsTo(cur.Meta(), base) {
			h.store.Delete(ctx, m.Key)
		} else {
			cur.Close()
		}
	}
	h.endFill(f, err)
}

// hitFastVariant counts a hit on a variant compressed at the fast level
// and, at RecompressAfter hits, compresses it again at the best level in
// the background, when a slot is free.
func (h *Handler) hitFastVariant(key string, cd coding) {
	c := h.comp
	if c.recompAt < 0 {
		return
	}
	vkey := encodedKey(key, cd)
	c.mu.Lock()
	if len(c.hits) >= maxHitCounts {
		clear(c.hits)
	}
	c.hits[vkey]++
	due := c.hits[vkey] >= c.recompAt && !c.pending[vkey]
	if due && c.recompSem.TryAcquire(1) {
		delete(c.hits, vkey)
		c.pending[vkey] = true
	} else {
		due = false
	}
	c.mu.Unlock()
	if due {
		h.goFill(nil, func() {
			defer func() {
				c.recompSem.Release(1)
				c.mu.Lock()
				delete(c.pending, vkey)
				c.mu.Unlock()
			}()
			h.recompress(key, cd)
		})
	}
}

// recompress replaces the variant of the object under key encoded with cd
// by one compressed at the best level, if the object is still the one the
// variant belongs to when the new variant is committed.
func (h *Handler) recompress(key string, cd coding) {
	base, err := h.store.Get(h.ctx, key)
	if err != nil {
		return
	}
	defer base.Close()
	bm := base.Meta()
	m := variantMeta(bm, key, cd, levelBest)
	w, err := h.store.Put(h.ctx, m)
	if err != nil {
		return
	}
	defer w.Close()
	cr := h.comp.newReader(io.NewSectionReader(base, 0, bm.Size), bm.Size, cd, levelBest)
	defer cr.close()
	if _, err := io.Copy(w, cr); err != nil {
		w.Abort()
		return
	}
	if cur, err := h.store.Get(h.ctx, key); err == nil {
		same := belongsTo(cur.Meta(), bm)
		cur.Close()
		if same && !h.purgedMeanwhile(&m) {
			h.metrics.stores(w.Commit())
			return
		}
	}
	w.Abort()
}

// refreshVariants carries a 304's refresh of a base (old to now) to its
// encoded variants, so they keep belonging to it.
func (h *Handler) refreshVariants(old, now *storage.Meta) {
	if h.comp.off || old.Flags&flagCompressible == 0 {
		return
	}
	for _, cd := range h.comp.offered {
		v, err := h.store.Get(h.ctx, encodedKey(old.Key, cd))
		if err != nil {
			continue
		}
		vm := v.Meta()
		if belongsTo(vm, old) {
			m := variantMeta(now, old.Key, cd, levelFast)
			m.Flags |= vm.Flags & flagBestLevel
			m.Size = vm.Size
			h.store.Update(h.ctx, m)
		}
		v.Close()
	}
}

// respondDecoded answers a request whose client does not accept the coding
// x the stored response came in: a stored body is decoded once to learn
// its length (and to refuse a bomb before anything is sent), then again
// into the response, with an exact Content-Length; the ETag becomes weak
// (the decoded body is another encoding of the same representation).
func (h *Handler) respondDecoded(w http.ResponseWriter, r *http.Request, rep *representation, open func() io.Reader, n int64, x coding, cs *cacheStatus) {
	size, err := h.comp.decodedSize(open(), x, n)
	if err != nil {
		if errors.Is(err, errBomb) {
			h.comp.refused.Inc()
		}
		h.log.Warn("decode for a client", "key", rep.meta.Key, "coding", x.String(), "err", err)
		h.writeError(w, http.StatusBadGateway, cs)
		return
	}
	m := *rep.meta
	m.Size = size
	m.Header = rep.header.Clone()
	delete(m.Header, "Content-Encoding")
	delete(m.Header, "Content-Length")
	if etag := firstLine(m.Header["Etag"]); etag != "" && !isWeak(etag) {
		m.Header["Etag"] = []string{"W/" + etag}
	}
	h.comp.decoded[x].Add(float64(size))
	h.respond(w, r, &representation{
		meta: &m, header: m.Header, upstream: rep.upstream, age: rep.age,
		body: decodedBody{open: open, x: x, n: size},
	}, cs)
}

// respondDecodedStream answers a follower of a fill whose response came
// encoded with x, which the client does not accept: once the encoded body
// has arrived whole, as respondDecoded does.
func (h *Handler) respondDecodedStream(w http.ResponseWriter, r *http.Request, rep *representation, f *flight, x coding, cs *cacheStatus) {
	n, err := f.size(r.Context())
	if err != nil {
		if r.Context().Err() == nil {
			h.writeError(w, http.StatusBadGateway, cs)
		}
		return
	}
	open := func() io.Reader { return &flightReader{f: f, ctx: r.Context(), declared: n} }
	h.respondDecoded(w, r, rep, open, n, x, cs)
}

// errBomb reports a body that decoded past its bound.
var errBomb = errors.New("decoded body past its bound")

// decodedSize decodes an encoded body to count its decoded length, within
// the bound for an encoded body of n bytes.
func (c *compressor) decodedSize(r io.Reader, x coding, n int64) (int64, error) {
	dec, err := newDecoder(x, r)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	limit := min(c.maxOut, max(n, 1<<10)*maxRatio)
	got, err := io.Copy(io.Discard, io.LimitReader(dec, limit+1))
	if err != nil {
		return 0, fmt.Errorf("decode %s: %w", x, err)
	}
	if got > limit {
		return 0, fmt.Errorf("%s body of %d bytes: %w (%d)", x, n, errBomb, limit)
	}
	return got, nil
}

// decodedBody is the body of a stored encoded response, decoded.
type decodedBody struct {
	open func() io.Reader // the encoded body, from its start
	x    coding
	n    int64 // decoded length
}

func (b decodedBody) knownSize() int64                    { return b.n }
func (b decodedBody) size(context.Context) (int64, error) { return b.n, nil }

func (b decodedBody) writeRange(w io.Writer, off, n int64) (int64, error) {
	if n < 0 {
		n = b.n - off
	}
	dec, err := newDecoder(b.x, b.open())
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	if _, err := io.CopyN(io.Discard, dec, off); err != nil {
		return 0, err
	}
	k, err := io.CopyN(w, dec, n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// flightReader reads the body of a flight from the start as it arrives.
type flightReader struct {
	f        *flight
	ctx      context.Context
	declared int64
	off      int64
}

func (fr *flightReader) Read(p []byte) (int, error) {
	n, err := fr.f.readAt(fr.ctx, p, fr.off, fr.declared, nil)
	fr.off += int64(n)
	return n, err
}

// decoder is a content-coding decoder.
type decoder interface {
	io.Reader
	Close() error
}

// newDecoder returns a decoder of x reading r.
func newDecoder(x coding, r io.Reader) (decoder, error) {
	switch x {
	case codingGzip:
		return gzip.NewReader(r)
	case codingBr:
		return io.NopCloser(brotli.NewReader(r)), nil
	case codingZstd:
		// RFC 9659: a zstd content coding's window is at most 8 MiB.
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			return nil, err
		}
		return zstdDecoder{d}, nil
	}
	return nil, fmt.Errorf("edge: no decoder for %s", x)
}

type zstdDecoder struct{ *zstd.Decoder }

func (d zstdDecoder) Close() error { d.Decoder.Close(); return nil }

// encoder is a content-coding encoder that can be reused.
type encoder interface {
	io.WriteCloser
	Reset(io.Writer)
}

// newEncoder returns an encoder of cd at level lv writing w, for a body of
// size bytes (-1: unknown). The levels (BenchmarkCompress measures them):
// on demand, gzip 6, brotli 4 and zstd's default (about 3), each some tens
// of MB/s; in the background, the best of each, brotli 11 for bodies up to
// 256 KiB and 9 up to 4 MiB (11 runs at well under 1 MB/s), else 6.
func newEncoder(cd coding, lv level, size int64, w io.Writer) encoder {
	switch cd {
	case codingGzip:
		e, _ := gzip.NewWriterLevel(w, [...]int{gzip.DefaultCompression, gzip.BestCompression}[lv])
		return e
	case codingBr:
		best := 11
		if size < 0 || size > 4<<20 {
			best = 6
		} else if size > 256<<10 {
			best = 9
		}
		return brotli.NewWriterLevel(w, [...]int{4, best}[lv])
	default:
		e, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4<<20),
			zstd.WithEncoderLevel([...]zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedBestCompression}[lv]))
		return zstdEncoder{e}
	}
}

type zstdEncoder struct{ *zstd.Encoder }

func (e zstdEncoder) Reset(w io.Writer) { e.Encoder.Reset(w) }

// compressReader reads src through an encoder: each Read returns encoded
// bytes, without a goroutine or a pipe.
type compressReader struct {
	c      *compressor
	src    io.Reader
	enc    encoder
	cd     coding
	lv     level
	buf    bytes.Buffer // encoded bytes not yet read
	in     *[]byte
	closed bool
	err    error
}

// newReader returns a reader of src, a body of size bytes (-1: unknown),
// encoded with cd at level lv. Encoders at the fast level are pooled.
func (c *compressor) newReader(src io.Reader, size int64, cd coding, lv level) *compressReader {
	cr := &compressReader{c: c, src: src, cd: cd, lv: lv}
	if e, ok := c.pools[cd][lv].Get().(encoder); ok && lv == levelFast {
		e.Reset(&cr.buf)
		cr.enc = e
	} else {
		cr.enc = newEncoder(cd, lv, size, &cr.buf)
	}
	cr.in = bufPool.Get().(*[]byte)
	return cr
}

func (cr *compressReader) Read(p []byte) (int, error) {
	for cr.buf.Len() == 0 && cr.err == nil {
		n, err := cr.src.Read(*cr.in)
		start := time.Now()
		if n > 0 {
			cr.enc.Write((*cr.in)[:n])
			cr.c.in[cr.cd][cr.lv].Add(float64(n))
		}
		if err == io.EOF {
			cr.err = cr.enc.Close()
			cr.closed = true
			if cr.err == nil {
				cr.err = io.EOF
			}
		} else if err != nil {
			cr.err = err
		}
		cr.c.secs[cr.cd][cr.lv].Add(time.Since(start).Seconds())
		cr.c.out[cr.cd][cr.lv].Add(float64(cr.buf.Len()))
	}
	if cr.buf.Len() > 0 {
		return cr.buf.Read(p)
	}
	return 0, cr.err
}

// close returns the encoder to its pool once it finished cleanly.
func (cr *compressReader) close() {
	if cr.in != nil {
		bufPool.Put(cr.in)
		cr.in = nil
	}
	if cr.closed && cr.enc != nil && cr.lv == levelFast {
		cr.enc.Reset(io.Discard)
		cr.c.pools[cr.cd][cr.lv].Put(cr.enc)
		cr.enc = nil
	}
}
