package origin

import (
	"math"
	"net/url"

	"github.com/cespare/xxhash/v2"
)

// This file holds the one rendezvous (highest random weight) hashing of the
// package, used by the Rendezvous policy and by every Shield: Thaler and
// Ravishankar's HRW, with weights by the logarithmic method of Schindelhauer
// and Schomaker ("Weighted distributed hash tables", 2005). Every node that
// has the same server URLs ranks them the same way for a key, with no
// coordination, so edges agree on an object's home shield.

// keyHash returns the xxhash of u.String(), the cache key an edge puts in the
// request URL, without allocating for the absolute URLs an edge sends. URLs
// with parts an edge does not send (user info, a fragment, an opaque part or
// a host that String escapes) are hashed through u.String().
func keyHash(u *url.URL) uint64 {
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil || u.Fragment != "" || !plainHost(u.Host) {
		return xxhash.Sum64String(u.String())
	}
	var d xxhash.Digest
	d.Reset()
	d.WriteString(u.Scheme)
	d.WriteString("://")
	d.WriteString(u.Host)
	path := u.EscapedPath()
	if path != "" && path[0] != '/' {
		d.WriteString("/")
	}
	d.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		d.WriteString("?")
		d.WriteString(u.RawQuery)
	}
	return d.Sum64()
}

// plainHost reports whether url.URL.String writes host unescaped.
func plainHost(host string) bool {
	for i := range len(host) {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// mix returns the rendezvous hash of a key and a server: MurmurHash3's 64-bit
// finalizer over their exclusive or, so a small change in either changes
// about half the bits of the result.
func mix(key, server uint64) uint64 {
	h := key ^ server
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// weightedScore maps hash h to a uniform u in (0, 1) and returns
// weight / -ln(u): the server with the highest score wins a key with
// probability proportional to its weight. With equal weights the ranking is
// the ranking of h itself.
func weightedScore(h uint64, weight int64) float64 {
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return float64(weight) / -math.Log(u)
}

// pickRendezvous returns the available server other than skip that ranks
// highest for key, or nil when there is none. After a failure at the first
// choice, the retry's pick (skipping it) is the key's second choice. Only a
// server that would beat the best so far is checked for availability, and
// the hashes are read from one slice, which keeps a pick among 100 servers
// cheap.
func (g *group) pickRendezvous(key uint64, skip *server, c *clock) *server {
	var best *server
	if g.uniform {
		var top uint64
		for i, sh := range g.hashes {
			if h := mix(key, sh); best == nil || h > top {
				if s := g.servers[i]; s != skip && s.available(c) {
					best, top = s, h
				}
			}
		}
		return best
	}
	var top float64
	for i, sh := range g.hashes {
		s := g.servers[i]
		if score := weightedScore(mix(key, sh), s.weight); best == nil || score > top {
			if s != skip && s.available(c) {
				best, top = s, score
			}
		}
	}
	return best
}
