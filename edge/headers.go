package edge

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop are the fields that describe one connection, not the message
// (RFC 9110 §7.6.1), plus the proxy authentication fields meant for us.
// They are removed from everything forwarded, in both directions.
var hopByHop = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard, still sent
	"Keep-Alive",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	"Proxy-Authenticate",
	"Proxy-Authorization",
}

// removeHopByHop deletes hop-by-hop fields from h, including those the
// Connection field names (RFC 9110 §7.6.1).
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, f := range hopByHop {
		delete(h, f)
	}
}

// conditionalFields are the request fields the cache answers itself
// (RFC 9110 §13.1) and therefore does not forward on a fill; Range is
// answered from the whole object.
var conditionalFields = [...]string{
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range",
}

// cdnHeaders are response fields aimed at the CDN itself: honoured, kept
// between tiers, and removed before a response leaves the outermost one.
var cdnHeaders = [...]string{"Surrogate-Control", "Surrogate-Key", "Cache-Tag", originTimeField}

// isCDNHeader reports whether the canonical field name k is one of
// cdnHeaders.
func isCDNHeader(k string) bool {
	for _, f := range cdnHeaders {
		if k == f {
			return true
		}
	}
	return false
}

// appendField adds a list element to a field, keeping prior values as one
// comma-separated line.
func appendField(h http.Header, name, value string) {
	if prior := h[name]; len(prior) > 0 {
		value = strings.Join(prior, ", ") + ", " + value
	}
	h[name] = []string{value}
}
