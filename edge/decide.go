package edge

import (
	"net/http"
	"slices"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// decision is what the edge may do with an upstream response.
type decision struct {
	store bool // RFC 9111 §3: a shared cache may store it
	share bool // every follower of the flight may receive it
	// reason says why the response is not stored (for logs and the
	// Cache-Status detail).
	reason string
	meta   storage.Meta
	// leaderHeader is set when the request that fetched the response must
	// see fields the stored copy drops (private="...", no-cache="...").
	leaderHeader http.Header
	star         bool     // Vary: *
	upstream     []string // Cache-Status entries of the caches upstream
}

// respInput is what decide needs to know about the request side.
type respInput struct {
	key, urlKey string
	authorized  bool // the request carried Authorization
	reqTime     time.Time
	respTime    time.Time
	// site is the host entry and out the request sent upstream (its
	// path, and its Cookie as the origin saw it), for the host's Privacy
	// rules; nil applies the default policy without them.
	site *Host
	out  *http.Request
	// revalidated says a 304 refreshed a stored response: the body was
	// not made for this request, so its Cookie does not taint it.
	revalidated bool
}

// decide applies RFC 9111 §3 (storing responses in a shared cache) and the
// node's policy to an upstream response, and builds the metadata to store.
func (h *Handler) decide(in respInput, resp *http.Response) decision {
	hdr := resp.Header.Clone()
	removeHopByHop(hdr)
	obtained := takeOriginTime(hdr, in.reqTime) // origintime.go
	d := decision{share: true, upstream: hdr["Cache-Status"]}
	delete(hdr, "Cache-Status") // describes the upstream fetch, not a later hit

	cc := h.responseDirectives(hdr)
	names, star := parseVary(hdr)
	d.star = star
	if !h.comp.off {
		// Fills ask upstream for the identity coding, so the response
		// cannot depend on a client's Accept-Encoding: Outpost negotiates
		// the coding itself (compress.go).
		names = slices.DeleteFunc(names, func(n string) bool { return n == "Accept-Encoding" })
	}

	date := dateOf(hdr, in.respTime)
	if _, ok := hdr["Date"]; !ok {
		// A cache adds Date when the origin sent none (RFC 9110 §6.6.1).
		hdr["Date"] = []string{in.respTime.UTC().Format(http.TimeFormat)}
	}
	life, explicit, heuristic := h.lifetimeOf(cc, hdr, resp.StatusCode, date)
	if !explicit && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone) && h.cfg.NegativeTTL > life {
		// The operator's floor for negative caching (404 and 410 are
		// cacheable by default, RFC 9110 §15.1).
		life, heuristic = h.cfg.NegativeTTL, true
	}
	_, hasETag := hdr["Etag"]
	_, hasLM := hdr["Last-Modified"]

	switch {
	case cc.noStore && !(cc.mustUnderstand && understood(resp.StatusCode)):
		// §5.2.2.5; must-understand lets a cache that knows the status
		// code store despite no-store (§5.2.2.3).
		d.reason, d.share = reasonNoStore, false
	case cc.private:
		d.reason, d.share = reasonPrivate, false // §5.2.2.7
	case in.authorized && !cc.public && !cc.mustRevalidate && cc.sMaxAge == unset:
		d.reason, d.share = reasonAuthorization, false // §3.5
	case star:
		d.reason, d.share = reasonVaryStar, false // §4.1: can never match
	case resp.StatusCode < 200 || resp.StatusCode == http.StatusNotModified ||
		resp.StatusCode == http.StatusPartialContent || resp.StatusCode > 999 ||
		(cc.mustUnderstand && !understood(resp.StatusCode)):
		// §3: a final status code; §5.2.2.3: with must-understand, one the
		// cache understands. Fills never ask for ranges, so a 206 is not
		// stored.
		d.reason, d.share = reasonStatus, false
	case !explicit && !heuristic && !cc.public && !heuristicallyCacheable(resp.StatusCode):
		d.reason = reasonStatus // §3: no explicit freshness, not cacheable by default
	case life <= 0 && !hasETag && !hasLM:
		// Stale at once and nothing to revalidate with: storing it
		// would only waste space. Outpost has no default TTL.
		d.reason = reasonNoFreshness
	default:
		d.store = true
	}
	if !d.store && d.share && resp.StatusCode < 500 {
		// Only errors are shared uncached (it shields a failing origin);
		// anything else not stored is fetched by each client itself.
		d.share = false
	}
	_, setCookie := hdr["Set-Cookie"]
	privacy(&d, privacyInput{
		site: in.site, req: in.out, status: resp.StatusCode, hdr: hdr,
		explicit: explicit, hidden: hidden(cc, "set-cookie"), revalidated: in.revalidated,
	})
	if hidden := append(cc.privateFields, cc.noCacheFields...); len(hidden) > 0 || setCookie {
		// §5.2.2.7, §5.2.2.4: the named fields are not stored or reused;
		// the rest of the response is. Set-Cookie never is: only the
		// request that fetched the response receives it (privacy.go).
		d.leaderHeader = hdr.Clone()
		for _, f := range hidden {
			hdr.Del(f)
		}
		delete(hdr, "Set-Cookie")
	}

	var flags uint32
	if cc.noCache {
		flags |= flagNoCache
	}
	if cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxAge != unset {
		flags |= flagNoStale
	}
	if heuristic {
		flags |= flagHeuristic
	}
	if !h.comp.off && !star && (contentCoding(hdr) != identity ||
		h.comp.compressible(resp.StatusCode, hdr, resp.ContentLength, parseCacheControl(hdr["Cache-Control"]).noTransform)) {
		// What a client is sent depends on its Accept-Encoding: encoded
		// for it, or decoded when it does not accept the origin's coding.
		addVary(hdr, "Accept-Encoding")
		if contentCoding(hdr) == identity {
			flags |= flagCompressible
		}
	}
	swr, sie := time.Duration(0), time.Duration(0)
	if flags&(flagNoStale|flagNoCache) == 0 {
		swr = h.staleWindow(cc.swr, h.cfg.StaleWhileRevalidate)
		sie = h.staleWindow(cc.sie, h.cfg.StaleIfError)
	}
	size := resp.ContentLength
	if resp.StatusCode == http.StatusNoContent {
		size = 0
	}
	d.meta = storage.Meta{
		Key:                  in.key,
		URL:                  in.urlKey,
		Status:               resp.StatusCode,
		Header:               hdr,
		RequestTime:          in.reqTime,
		ResponseTime:         in.respTime,
		OriginTime:           obtained,
		InitialAge:           correctedInitialAge(hdr, date, in.reqTime, in.respTime),
		Lifetime:             life,
		StaleWhileRevalidate: swr,
		StaleIfError:         sie,
		Flags:                flags,
		Size:                 size,
		Tags:                 h.tags(hdr),
		Vary:                 names,
	}
	return d
}

// responseDirectives returns the directives that govern caching by this
// node: CDN-Cache-Control when present (RFC 9213 §2.1: it takes precedence
// and Cache-Control is then ignored for caching), else Surrogate-Control,
// else Cache-Control.
func (h *Handler) responseDirectives(hdr http.Header) directives {
	if v, ok := hdr["Cdn-Cache-Control"]; ok {
		if d, ok := parseCDNCacheControl(v); ok {
			return d
		}
	}
	if v, ok := hdr["Surrogate-Control"]; ok {
		return parseCacheControl(v)
	}
	return parseCacheControl(hdr["Cache-Control"])
}

// staleWindow is a stale-while-revalidate or stale-if-error window: the
// response's directive when present, else the node's default.
func (h *Handler) staleWindow(directive int64, def time.Duration) time.Duration {
	if directive != unset {
		return time.Duration(directive) * time.Second
	}
	return def
}

// hidden reports whether a field is withheld from storage by a qualified
// private or no-cache directive, so its presence does not block storing.
func hidden(cc directives, field string) bool {
	for _, f := range cc.privateFields {
		if f == field {
			return true
		}
	}
	for _, f := range cc.noCacheFields {
		if f == field {
			return true
		}
	}
	return false
}

// understood reports the final status codes Outpost knows the caching
// semantics of (RFC 9111 §5.2.2.3: must-understand stores only those).
func understood(code int) bool {
	return code >= 200 && code <= 599 && http.StatusText(code) != ""
}

// tags reads the surrogate keys a response is purgeable by, with
// Config.Tags; none without it.
func (h *Handler) tags(hdr http.Header) []string {
	if h.cfg.Tags == nil {
		return nil
	}
	return h.cfg.Tags(hdr)
}
