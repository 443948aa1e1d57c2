package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Host is one virtual host entry: the names it answers for and where its
// misses go.
type Host struct {
	// Names are host names without port, exact ("static.example.com") or
	// with a leading wildcard label ("*.cdn.example.com", which matches
	// a.cdn.example.com and a.b.cdn.example.com but not cdn.example.com).
	// Matching is case-insensitive. Empty Names make a catch-all entry.
	Names []string
	// Transport fetches misses and passes requests upstream; typically an
	// origin.Pool. Required.
	Transport http.RoundTripper
	// Key tunes the cache key for this host.
	Key KeyConfig
	// Privacy keeps what the origin meant for one user from the others.
	// The zero value is the private-by-default policy (privacy.go).
	Privacy Privacy
	// Admit, when set, is asked about every request routed to this host
	// before the cache lookup: it returns the writer to answer through
	// (w itself, or a wrapper of it) and true, or false once it has
	// answered the request itself (a 403 or 429), which then reaches
	// neither the cache nor upstream. Nil admits every request. It must be
	// safe for concurrent use; typically an access.Gate's Admit.
	Admit func(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool)
}

// router finds the Host entry for a request's host name.
type router struct {
	exact    map[string]*Host
	wildcard []wildcardHost // longest suffix first
	fallback *Host
}

type wildcardHost struct {
	suffix string // ".cdn.example.com"
	host   *Host
}

func newRouter(hosts []Host) (*router, error) {
	r := &router{exact: make(map[string]*Host)}
	for i := range hosts {
		h := &hosts[i]
		if h.Transport == nil {
			return nil, fmt.Errorf("edge: hosts[%d]: no transport", i)
		}
		h.Transport = noSwitch{h.Transport}
		kept, ok := validateKeepHeaders(h.Privacy.KeepHeaders)
		if !ok {
			return nil, fmt.Errorf("edge: hosts[%d]: Privacy.KeepHeaders %q: only these may be kept: %s", i, h.Privacy.KeepHeaders, strings.Join(overrideHeaders[:], ", "))
		}
		h.Privacy.KeepHeaders = kept
		if h.Privacy.SetCookie != SetCookiePass && h.Privacy.SetCookie != SetCookieStrip {
			return nil, fmt.Errorf("edge: hosts[%d]: Privacy.SetCookie %d is not a policy", i, h.Privacy.SetCookie)
		}
		if len(h.Names) == 0 {
			if r.fallback != nil {
				return nil, fmt.Errorf("edge: hosts[%d]: a second catch-all entry", i)
			}
			r.fallback = h
			continue
		}
		for _, n := range h.Names {
			n = strings.ToLower(strings.TrimSpace(n))
			if suffix, ok := strings.CutPrefix(n, "*"); ok {
				if !strings.HasPrefix(suffix, ".") || len(suffix) < 2 || strings.Contains(suffix, "*") {
					return nil, fmt.Errorf("edge: hosts[%d]: bad wildcard name %q", i, n)
				}
				r.wildcard = append(r.wildcard, wildcardHost{suffix: suffix, host: h})
				continue
			}
			if n == "" || strings.ContainsAny(n, "*/: ") {
				return nil, fmt.Errorf("edge: hosts[%d]: bad host name %q", i, n)
			}
			if _, dup := r.exact[n]; dup {
				return nil, fmt.Errorf("edge: hosts[%d]: host name %q listed twice", i, n)
			}
			r.exact[n] = h
		}
	}
	// Longest suffix first, so the most specific wildcard wins.
	for i := 1; i < len(r.wildcard); i++ {
		for j := i; j > 0 && len(r.wildcard[j].suffix) > len(r.wildcard[j-1].suffix); j-- {
			r.wildcard[j], r.wildcard[j-1] = r.wildcard[j-1], r.wildcard[j]
		}
	}
	return r, nil
}

// route returns the entry for a lowercased host name without port, or nil.
func (r *router) route(name string) *Host {
	if h, ok := r.exact[name]; ok {
		return h
	}
	for _, w := range r.wildcard {
		if len(name) > len(w.suffix) && strings.HasSuffix(name, w.suffix) {
			return w.host
		}
	}
	return r.fallback
}

// errSwitched is the error a host's transport returns for a 101 (Switching
// Protocols) response.
var errSwitched = errors.New("upstream switched protocols")

// noSwitch refuses a 101 response from upstream. The edge forwards no
// Upgrade (a hop-by-hop field, RFC 9110 §7.8), so it never asks for a
// switch; a 101 anyway would leave the client a connection that is HTTP on
// one side and raw bytes on the other. The client gets a 502 instead.
type noSwitch struct{ rt http.RoundTripper }

func (n noSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := n.rt.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Redacted(), errSwitched)
	}
	return resp, err
}
