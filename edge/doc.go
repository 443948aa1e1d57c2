// Package edge is Outpost's request path: an http.Handler that answers from
// the cache what RFC 9111 lets a shared cache answer, and fetches the rest
// upstream.
//
// A request is routed by host to a Host entry (its upstream is an
// http.RoundTripper, typically an origin.Pool) and canonicalised into the
// one URL form used both as the cache key and for the request sent
// upstream. GET and HEAD look in the storage.Tier: a fresh stored response
// is served with Age and Cache-Status (RFC 9211), conditional and Range
// requests answered from it (RFC 9110 §13, §14); a stale one is served under
// stale-while-revalidate or revalidated with its validators. Every other
// method passes through with its body, and a successful unsafe request
// invalidates what is stored for its URL (RFC 9111 §4.4).
//
// Misses are coalesced: concurrent requests for one key follow a single
// flight, an upstream fetch run by the Handler and detached from every
// client. Its body is written to the storage Writer (or a spool when it is
// shared but not stored) while followers read the bytes written so far, so
// each receives the body as it arrives; a follower that leaves only leaves.
// A response that may not be shared (private, no-store, a cookie, a
// different Vary selection) goes only to the request that started the
// flight, and the others fetch on their own at once. A body cut short
// reaches every follower as a broken response and is never stored.
//
// Large objects are sliced: a cold Range request for an object above
// Config.SliceThreshold stores it as an index plus fixed-size slices, each
// fetched upstream with a Range request (coalesced, like any miss) the
// first time a client needs it, so seeking into a large video costs one
// slice. Purges reach the edge through the Bans interface, checked on every
// lookup, on every flight's response before it answers a request, and again
// when a fill commits. A stored response records when its representation
// was obtained from the origin (inherited from a parent tier's copy), which
// is what purges compare with, so the order in which tiers apply a purge
// does not matter (origintime.go).
//
// The request path, in the order a request meets it:
//
//	ServeHTTP (handler.go)       canonical URL and host route (key.go, hosts.go),
//	                             loop check (RFC 8586); other methods: forward (pass.go)
//	serveCacheable (handler.go)  lookup, variant index (vary.go), purges (Bans),
//	                             judge freshness (freshness.go, cachecontrol.go);
//	                             a usable response: respondStored (slice_serve.go);
//	                             else join or lead a flight (flight.go) and follow it
//	startFill, runFill (fill.go) the upstream exchange: 304 refresh and stale-if-error
//	                             (revalidate.go), slicing's two plug points (planSlice,
//	                             sliceAnswer in slice_fill.go), storability (decide.go),
//	                             the private handoff, the body protocol (fillBody)
//	follow (handler.go)          the flight's outcome, answered by respond (serve.go):
//	                             preconditions (conditional.go), ranges (ranges.go),
//	                             Age and Cache-Status (status.go)
//
// Where each rule lives: what may be stored and shared, decide.go (RFC 9111
// §3); freshness, age and when stale may be served, freshness.go and
// fill.go's staleIfError (§4.2, RFC 5861); the directives, cachecontrol.go
// (one table for Cache-Control and CDN-Cache-Control, RFC 9213, parsed as
// a Structured Field by sfdict.go); validation, revalidate.go (§4.3);
// variants, vary.go (§4.1); what is forwarded in each direction, headers.go
// (RFC 9110 §7.6); ranges and slicing, ranges.go and slice*.go; whether
// "stored" is said, fillBody. Privacy, on top of the RFC (DESIGN "Privacy
// and request hygiene"): what a host's policy takes away from storing and
// sharing (Set-Cookie, Cookie without explicit freshness), privacy.go, called
// by decide; the deception armour, deception.go; paths refused because an
// origin would read them as another resource, key.go; the forwarding and
// override headers and names with "_" sent upstream, forwarded.go; refusing
// an upstream 101, hosts.go.
//
// The package imports storage only; origins and purges come in through
// interfaces (http.RoundTripper, Bans).
package edge
