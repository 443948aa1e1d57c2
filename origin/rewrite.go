package origin

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// HostHeader names the Host header a Pool sends to its servers.
type HostHeader string

const (
	// HostClient forwards the Host the client sent (the default), so
	// virtual-hosted origins see the site's own name.
	HostClient HostHeader = "client"
	// HostOrigin sends each server's own host[:port], as in its URL.
	HostOrigin HostHeader = "origin"
)

// HeaderRules edits the request headers sent to every server of a Pool.
// Remove applies before Add.
type HeaderRules struct {
	// Add sets each header to its value, replacing any value the client
	// sent, so that a client cannot forge it.
	Add map[string]string
	// Remove deletes each header. CDN-Loop may be neither removed nor set:
	// loop detection between CDNs (RFC 8586 §2) depends on every hop
	// passing on what earlier hops wrote.
	Remove []string
}

// rewriter turns a request for the cache URL into the request sent to one
// server: a Pool's with its host, path and header rules, a Shield's with
// the zero rewriter, which keeps the client's Host, path and headers.
type rewriter struct {
	originHost bool
	add        [][2]string // canonical name, value; sorted
	remove     []string    // canonical names
}

// newRewriter validates the rules and returns their rewriter.
func newRewriter(host HostHeader, rules HeaderRules) (rewriter, error) {
	var rw rewriter
	switch host {
	case "", HostClient:
	case HostOrigin:
		rw.originHost = true
	default:
		return rw, fmt.Errorf("host_header %q: must be %q or %q", host, HostClient, HostOrigin)
	}
	for _, name := range rules.Remove {
		key := http.CanonicalHeaderKey(name)
		switch {
		case !validHeaderName(name):
			return rw, fmt.Errorf("request_headers.remove: %q is not a header name", name)
		case key == "Cdn-Loop" || key == "Host":
			return rw, fmt.Errorf("request_headers.remove: %s may not be removed", name)
		}
		rw.remove = append(rw.remove, key)
	}
	seen := make(map[string]string, len(rules.Add))
	for name, value := range rules.Add {
		key := http.CanonicalHeaderKey(name)
		other, dup := seen[key]
		seen[key] = name
		switch {
		case dup:
			return rw, fmt.Errorf("request_headers.add: %q and %q are the same header", other, name)
		case !validHeaderName(name):
			return rw, fmt.Errorf("request_headers.add: %q is not a header name", name)
		case key == "Host" || key == "Cdn-Loop":
			return rw, fmt.Errorf("request_headers.add: %s may not be set", name)
		case !validHeaderValue(value):
			return rw, fmt.Errorf("request_headers.add: %s: value has control characters", name)
		}
		rw.add = append(rw.add, [2]string{key, value})
	}
	slices.SortFunc(rw.add, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return rw, nil
}

// apply sets out (a shallow copy of in) to go to server s: the scheme and host
// of the URL become s's and its path gets s's prefix; the Host header is the
// client's or s's; headers are edited by the rules, on a copy.
func (rw *rewriter) apply(out, in *http.Request, s *server) {
	u := new(url.URL)
	*u = *in.URL
	u.Scheme, u.Host = s.scheme, s.host
	u.User, u.Fragment, u.RawFragment = nil, "", ""
	if s.path != "" {
		path, raw := in.URL.Path, in.URL.EscapedPath()
		if path == "" {
			path, raw = "/", "/"
		}
		u.Path, u.RawPath = s.path+path, s.rawPath+raw
	}
	out.URL = u
	out.RequestURI = "" // a server request's; a client request must not have one
	switch {
	case rw.originHost:
		out.Host = s.host
	case in.Host == "":
		out.Host = in.URL.Host
	}
	if len(rw.add) == 0 && len(rw.remove) == 0 {
		return
	}
	out.Header = in.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, len(rw.add))
	}
	for _, key := range rw.remove {
		delete(out.Header, key)
	}
	for _, kv := range rw.add {
		out.Header[kv[0]] = []string{kv[1]}
	}
}

// validHeaderName reports whether name is an RFC 9110 §5.1 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether value has no control characters but
// horizontal tab (RFC 9110 §5.5).
func validHeaderValue(value string) bool {
	for i := range len(value) {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
