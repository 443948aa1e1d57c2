package edge

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Request hygiene: what the origin learns about the client comes from
// Outpost, not from the client. The forwarding fields are written from the
// real connection; what a client sent in them is dropped unless the peer is
// a trusted proxy (Config.TrustedProxies: a balancer in front, or an edge
// in front of this shield). Headers that frameworks read as overrides of
// the URL, the host or the client's address are removed unless the host
// keeps them, and so are header names with an underscore, which CGI-style
// gateways read as their hyphenated twins (Transfer_Encoding as
// Transfer-Encoding), as nginx does by default.

// forwardingFields are the fields Outpost writes itself.
var forwardingFields = [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"}

// overrideHeaders are request fields that web frameworks and servers trust
// to override the request URL, host, scheme, method or client address: a
// cache key that leaves them out would store what one client's override
// produced for everyone. None is forwarded unless a host's
// Privacy.KeepHeaders names it.
var overrideHeaders = [...]string{
	"X-Original-Url", "X-Rewrite-Url", "X-Host", "X-Original-Host",
	"X-Forwarded-Server", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl",
	"X-Forwarded-Scheme", "Front-End-Https", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// OverrideHeaders returns the canonical names of the request headers the
// edge removes before the origin unless a host's Privacy.KeepHeaders names
// them: X-Original-URL, X-Real-IP and the others frameworks read as
// overrides of the URL, host, scheme or client address. The slice is the
// caller's.
func OverrideHeaders() []string { return append([]string(nil), overrideHeaders[:]...) }

// isOverrideHeader reports whether the canonical name k is one of
// overrideHeaders.
func isOverrideHeader(k string) bool {
	for _, f := range overrideHeaders {
		if k == f {
			return true
		}
	}
	return false
}

// validateKeepHeaders checks that a host keeps only override headers and
// returns their canonical names.
func validateKeepHeaders(names []string) ([]string, bool) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		k := http.CanonicalHeaderKey(strings.TrimSpace(n))
		if !isOverrideHeader(k) {
			return nil, false
		}
		out = append(out, k)
	}
	return out, true
}

// trusted reports whether addr (an IP, possibly with a port) is in one of
// the prefixes.
func trusted(prefixes []netip.Prefix, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// peerAddr parses the peer address of a request (RemoteAddr).
func peerAddr(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// sanitizeUpstream prepares the header of a request sent upstream for c's
// host: it drops header names with "_", the override headers the host does
// not keep, Cookie when the host strips it, and writes the forwarding
// fields from the connection r arrived on.
func (h *Handler) sanitizeUpstream(hdr http.Header, r *http.Request, c *canonical) {
	var p *Privacy
	if site := h.route(c.host[:c.hostLen]); site != nil {
		p = &site.Privacy
	}
	for k := range hdr {
		if strings.IndexByte(k, '_') >= 0 || (isOverrideHeader(k) && (p == nil || !keeps(p.KeepHeaders, k))) {
			delete(hdr, k)
		}
	}
	if p != nil && p.StripCookie {
		delete(hdr, "Cookie")
	}
	h.writeForwarding(hdr, r, c)
}

func keeps(kept []string, k string) bool {
	for _, f := range kept {
		if f == k {
			return true
		}
	}
	return false
}

// writeForwarding sets X-Forwarded-For (appended), X-Forwarded-Proto,
// X-Forwarded-Host and Forwarded (RFC 7239 §4) from the connection r came
// on. From a trusted peer the values it sent are kept and the peer's own
// address appended; from any other, they are replaced.
func (h *Handler) writeForwarding(hdr http.Header, r *http.Request, c *canonical) {
	peer := peerAddr(r.RemoteAddr)
	if !trusted(h.cfg.TrustedProxies, peer) {
		for _, f := range forwardingFields {
			delete(hdr, f)
		}
	}
	if !peer.IsValid() {
		return // no connection to speak of (a request built in process)
	}
	ip := peer.String()
	appendField(hdr, "X-Forwarded-For", ip)
	proto := c.scheme
	if _, ok := hdr["X-Forwarded-Proto"]; !ok {
		hdr["X-Forwarded-Proto"] = []string{proto}
	}
	host := r.Host
	if host == "" {
		host = c.host
	}
	if _, ok := hdr["X-Forwarded-Host"]; !ok {
		hdr["X-Forwarded-Host"] = []string{host}
	}
	node := ip
	if peer.Is6() {
		node = `"[` + ip + `]"`
	}
	appendField(hdr, "Forwarded", "for="+node+";host="+forwardedValue(host)+";proto="+proto)
}

// forwardedValue is a value of a Forwarded pair: a token as it is, else a
// quoted string (RFC 7239 §4). A host with a port needs quotes.
func forwardedValue(v string) string {
	for i := 0; i < len(v); i++ {
		if !tchar(v[i]) {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		}
	}
	return v
}

// tchar reports the characters of a token (RFC 9110 §5.6.2).
func tchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
