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
// Large objects are sliced (slice.go): a cold Range request for an object
// above Config.SliceThreshold stores it as an index plus fixed-size slices,
// each fetched upstream with a Range request (coalesced, like any miss) the
// first time a client needs it, so seeking into a large video costs one
// slice. Purges reach the edge through the Bans interface, checked on every
// lookup and again when a fill commits.
//
// The package imports storage only; origins and purges come in through
// interfaces (http.RoundTripper, Bans).
package edge
