// Package access decides, before the cache is consulted, whether a request
// may be served at all: the rules an edge that faces the internet needs
// besides caching.
//
// A Policy holds one host's rules, each off at its zero value:
//
//   - signed URLs (signed.go): an expiring HMAC-SHA256 token in the query,
//     optionally limited to a path prefix and a client address, verified
//     against one or two keys (rotation); a bad or expired token gets 403.
//   - hotlink rules (hotlink.go): the Referer must match an allowed
//     pattern; whether an absent Referer passes is a switch; others get 403.
//   - rate limits (ratelimit.go): token buckets from golang.org/x/time/rate
//     per client address and per /24 (IPv4) or /64 (IPv6) prefix, for the
//     request rate (429 with Retry-After) and for bandwidth (responses are
//     paced; a client with more than a second of bytes queued gets 429),
//     plus a per-response cap after the first N bytes, like nginx's
//     limit_rate_after and limit_rate. The tables of clients are bounded
//     (table.go): the least recently seen client is forgotten first.
//
// Policy.Admit answers a refused request itself and returns false; an
// admitted one gets back the writer to answer through: the caller's own
// unless bandwidth rules apply, so a host without them pays nothing on its
// response path. The client's address is the peer's, or, when the peer is a
// trusted proxy, the one the proxy names in X-Forwarded-For (client.go).
//
// A Policy is immutable once built (its client tables are its only state),
// so rules are reloaded by building a new Policy and storing it in the
// host's Gate, which the request path reads with one atomic load.
//
// The package imports nothing else of Outpost. Counts go to a Metrics
// (outpost_access_*, outpost_rate_limit_*), shared by every host's Policy.
package access
