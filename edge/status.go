package edge

import (
	"strconv"
	"strings"
	"time"
)

// cacheStatus is one Cache-Status entry (RFC 9211 §2) describing how this
// node handled a request.
type cacheStatus struct {
	hit       bool
	fwd       string // RFC 9211 §2.2: uri-miss, vary-miss, miss, request, stale, method, bypass
	fwdStatus int    // status the next hop answered (§2.3), 0 = omit
	ttl       time.Duration
	hasTTL    bool
	stored    bool // §2.5
	collapsed bool // §2.6
	detail    string
}

// Values of cacheStatus.fwd (RFC 9211 §2.2).
const (
	fwdURIMiss  = "uri-miss"
	fwdVaryMiss = "vary-miss"
	fwdMiss     = "miss"
	fwdRequest  = "request"
	fwdStale    = "stale"
	fwdMethod   = "method"
	fwdBypass   = "bypass"
)

// format renders the entry with the node's name as its identity,
// e.g. `outpost; hit; ttl=3521` or `outpost; fwd=miss; fwd-status=200; stored`.
func (cs *cacheStatus) format(name string) string {
	var buf [128]byte // on the stack: the string below is the one allocation
	b := append(buf[:0], name...)
	if cs.hit {
		b = append(b, "; hit"...)
	}
	if cs.fwd != "" {
		b = append(b, "; fwd="...)
		b = append(b, cs.fwd...)
	}
	if cs.fwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(cs.fwdStatus), 10)
	}
	if cs.hasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, int64(cs.ttl/time.Second), 10)
	}
	if cs.stored {
		b = append(b, "; stored"...)
	}
	if cs.collapsed {
		b = append(b, "; collapsed"...)
	}
	if cs.detail != "" {
		b = append(b, "; detail="...)
		b = strconv.AppendQuote(b, cs.detail)
	}
	return string(b)
}

// withUpstream appends this node's entry after the entries of the caches
// upstream (RFC 9211 §2: the cache closest to the origin comes first).
func withUpstream(upstream []string, entry string) string {
	if len(upstream) == 0 {
		return entry
	}
	return strings.Join(upstream, ", ") + ", " + entry
}
