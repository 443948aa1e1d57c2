package edge

import (
	"net/http"
)

// Privacy is one host's policy for responses meant for one user (DESIGN
// "Privacy and request hygiene"). The zero value is private by default: a
// response that sets a cookie is neither stored nor shared, a response to a
// request with Cookie is stored only under explicit freshness, a response
// whose Content-Type contradicts the static extension of its path is not
// stored, and the override headers of overrideHeaders never reach the
// origin.
type Privacy struct {
	// SetCookie says what becomes of a response carrying Set-Cookie.
	// Zero means SetCookiePass.
	SetCookie SetCookiePolicy
	// StripCookie removes Cookie from every request sent upstream for this
	// host (fills and passes alike), so no response can depend on it:
	// responses to requests that carried one are then judged like any
	// other, heuristic freshness included. Set it when the host's origin
	// does not read cookies (cmd sets it when request_headers.remove names
	// Cookie).
	StripCookie bool
	// HeuristicWithCookie lets a response to a request that carried Cookie
	// be stored under heuristic freshness or the negative-caching floor,
	// as RFC 9111 allows, for a host whose origin is known not to
	// personalise by cookie. Off by default: such a response is stored only
	// under the origin's explicit freshness.
	HeuristicWithCookie bool
	// StoreTypeMismatch turns off the deception armour (deception.go):
	// responses whose Content-Type contradicts the static extension of
	// their path are then stored like any other. Off by default.
	StoreTypeMismatch bool
	// KeepHeaders names override headers (overrideHeaders) passed to the
	// origin for this host, as a client sent them. Names are
	// case-insensitive; a name outside overrideHeaders is an error in New.
	KeepHeaders []string
}

// SetCookiePolicy says what the cache does with a response that sets a
// cookie. Whatever the policy, a Set-Cookie field reaches only the client
// whose request fetched the response.
type SetCookiePolicy int

const (
	// SetCookiePass neither stores nor shares the response: the client that
	// fetched it receives it, and every other client fetches its own (what
	// Varnish and nginx do by default). The default.
	SetCookiePass SetCookiePolicy = iota
	// SetCookieStrip stores the response without its Set-Cookie fields and
	// shares it; only the request that fetched it receives the cookie, as
	// with Cache-Control: no-cache="Set-Cookie" (RFC 9111 §5.2.2.4).
	SetCookieStrip
)

// String returns the policy's name in configuration: "pass" or "strip".
func (p SetCookiePolicy) String() string {
	if p == SetCookieStrip {
		return "strip"
	}
	return "pass"
}

// Reasons a response is not stored: the Cache-Status detail a client sees
// (RFC 9211 §2.8) and the reason label of outpost_not_stored_total.
const (
	reasonNoStore       = "no-store"      // RFC 9111 §5.2.2.5
	reasonPrivate       = "private"       // §5.2.2.7
	reasonAuthorization = "authorization" // §3.5
	reasonVaryStar      = "vary-star"     // §4.1
	reasonStatus        = "status"        // §3: status not final, understood or cacheable by default
	reasonNoFreshness   = "no-freshness"  // stale at once, nothing to revalidate with
	reasonSetCookie     = "set-cookie"    // Privacy.SetCookie
	reasonCookie        = "cookie"        // request Cookie, no explicit freshness
	reasonTypeMismatch  = "type-mismatch" // Content-Type contradicts the path's extension
)

// notStoredReasons lists every reason, so the metric has each series from
// the start.
var notStoredReasons = [...]string{
	reasonNoStore, reasonPrivate, reasonAuthorization, reasonVaryStar, reasonStatus,
	reasonNoFreshness, reasonSetCookie, reasonCookie, reasonTypeMismatch,
}

// privacyInput is what the privacy rules need beyond the RFC's decision.
type privacyInput struct {
	site     *Host
	req      *http.Request // the request sent upstream (Cookie already stripped when the host says so)
	status   int
	hdr      http.Header // the response header, hop-by-hop fields removed
	explicit bool        // the origin gave explicit freshness
	hidden   bool        // Set-Cookie is withheld by private="..." or no-cache="..."
	// revalidated: a 304 refreshed a stored body fetched for another
	// request (respInput.revalidated).
	revalidated bool
}

// privacy applies the host's Privacy to a decision the RFC rules made: it
// may only take storing and sharing away, never grant them.
func privacy(d *decision, in privacyInput) {
	var p Privacy
	if in.site != nil {
		p = in.site.Privacy
	}
	if _, ok := in.hdr["Set-Cookie"]; ok && !in.hidden && p.SetCookie == SetCookiePass {
		// Whatever else decided, a cookie goes to its own client only:
		// not even an error shared with the requests waiting for it.
		if d.store {
			d.reason = reasonSetCookie
		}
		d.store, d.share = false, false
		return
	}
	if !d.store {
		return
	}
	if !p.StoreTypeMismatch && in.req != nil && contradictsExtension(in.req.URL.EscapedPath(), in.status, in.hdr["Content-Type"]) {
		d.store, d.share, d.reason = false, false, reasonTypeMismatch
		return
	}
	if !in.explicit && !in.revalidated && !p.HeuristicWithCookie && in.req != nil && len(in.req.Header["Cookie"]) > 0 {
		// A response to a request with Cookie may have been made for
		// that user; only the origin's own freshness says it is not.
		d.store, d.share, d.reason = false, false, reasonCookie
	}
}
