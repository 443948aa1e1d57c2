package access

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns the address of the client that sent r: the peer's
// (r.RemoteAddr), or, when the peer is in one of trusted (balancers in
// front), the rightmost X-Forwarded-For entry that is not itself trusted,
// which is the last address a proxy we trust vouched for. Entries to the
// left of it were written by the client or by proxies we do not know, and
// are never believed. A malformed entry ends the walk at the last trusted
// hop. The zero Addr means no address could be read (a request built in
// process). IPv4-mapped IPv6 addresses are unmapped.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !isTrusted(trusted, peer) {
		return peer
	}
	addr := peer
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var entry string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				entry, list = list, ""
			}
			a := parseAddr(strings.TrimSpace(entry))
			if !a.IsValid() {
				return addr
			}
			addr = a
			if !isTrusted(trusted, a) {
				return a
			}
		}
	}
	return addr
}

// parseAddr reads an address with or without a port ("192.0.2.1:80",
// "[2001:db8::1]:443", "2001:db8::1"), or returns the zero Addr.
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
