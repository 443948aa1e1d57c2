package edge

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// KeyConfig tunes how request URLs become cache keys for one host.
// The zero value keeps the query exactly as the client sent it.
type KeyConfig struct {
	// SortQuery orders query parameters by name (stable for equal names),
	// so ?a=1&b=2 and ?b=2&a=1 share an object.
	SortQuery bool
	// IgnoreQuery lists query parameter names dropped from the key and from
	// the request sent upstream. A trailing "*" matches any suffix
	// ("utm_*").
	IgnoreQuery []string
}

// rewrites reports whether kc changes queries at all.
func (kc *KeyConfig) rewrites() bool { return kc.SortQuery || len(kc.IgnoreQuery) > 0 }

var errBadTarget = errors.New("bad request target")

// canonical is a request URL in the one form used both as the cache key and
// for the request sent upstream (so the two can never disagree).
type canonical struct {
	scheme  string
	host    string // lowercased, default port removed
	path    string // escaped path, dot segments resolved, percent-encoding normalised
	query   string // raw query after KeyConfig
	hostLen int    // len(host) without port, for routing
}

// String returns the canonical URL: scheme://host/path?query.
func (c *canonical) String() string {
	n := len(c.scheme) + 3 + len(c.host) + len(c.path)
	if c.query != "" {
		n += 1 + len(c.query)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(c.scheme)
	b.WriteString("://")
	b.WriteString(c.host)
	b.WriteString(c.path)
	if c.query != "" {
		b.WriteByte('?')
		b.WriteString(c.query)
	}
	return b.String()
}

// URL returns the canonical form as a *url.URL for the upstream request.
func (c *canonical) URL() *url.URL {
	u := &url.URL{Scheme: c.scheme, Host: c.host, RawQuery: c.query, RawPath: c.path}
	// c.path is a valid encoding (normalizePath made it so), so URL keeps
	// it as RawPath and sends it byte for byte.
	u.Path, _ = url.PathUnescape(c.path)
	return u
}

// canonicalize builds the canonical form of a request target: scheme, host
// (lowercased, default port dropped), path (RFC 3986 §5.2.4 dot segments
// removed, §6.2.2 percent-encoding normalised) and query (per kc).
func canonicalize(scheme, host, rawPath, rawQuery string, kc *KeyConfig) (canonical, error) {
	h, err := normalizeHost(scheme, host)
	if err != nil {
		return canonical{}, err
	}
	p, err := normalizePath(rawPath)
	if err != nil {
		return canonical{}, err
	}
	q := rawQuery
	if kc != nil && q != "" && kc.rewrites() {
		q = rewriteQuery(q, kc)
	}
	hostLen := len(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		hostLen = i
	}
	return canonical{scheme: scheme, host: h, path: p, query: q, hostLen: hostLen}, nil
}

func normalizeHost(scheme, host string) (string, error) {
	if host == "" {
		return "", errBadTarget
	}
	lower := true
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'A' <= c && c <= 'Z':
			lower = false
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == ':', c == '[', c == ']':
		default:
			// Only what a reg-name, IP literal and port hold (RFC 3986
			// §3.2.2); percent-encoded names are not accepted.
			return "", errBadTarget
		}
	}
	if !lower {
		host = strings.ToLower(host)
	}
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = host[:len(host)-3]
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = host[:len(host)-4]
	}
	host = strings.TrimSuffix(host, ":")
	if host == "" || host[0] == ':' || host[len(host)-1] == ':' {
		return "", errBadTarget
	}
	return host, nil
}

// normalizePath returns the path unchanged when it is already canonical
// (the common case, no allocation), else rewrites it.
func normalizePath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' {
		return "", errBadTarget
	}
	clean := true
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c >= 0x7f || c == '#' || c == '?':
			return "", errBadTarget
		case c == '%', !pathChar(c):
			clean = false
		case c == '.' && p[i-1] == '/':
			clean = false
		}
	}
	if clean {
		return p, nil
	}
	q, err := normalizePercent(p)
	if err != nil {
		return "", err
	}
	q = removeDotSegments(q)
	if hiddenDotSegment(q) {
		return "", errBadTarget
	}
	return q, nil
}

// hiddenDotSegment reports whether a normalised path holds a dot segment
// that RFC 3986 does not see but origins do: ".." or "." next to an encoded
// slash or backslash (/static/..%2Faccount, which an origin that decodes
// %2F reads as /account) or before a ";" parameter (/..;/, which servlet
// containers resolve as /../). The cache would key such a path as one
// resource and the origin serve another, so it is refused (400) rather
// than forwarded.
func hiddenDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if !strings.Contains(seg, ".") {
			continue
		}
		for seg != "" {
			piece := seg
			if i := indexAny(seg, "%2F", "%5C"); i >= 0 {
				piece, seg = seg[:i], seg[i+3:]
			} else {
				seg = ""
			}
			if i := indexAny(piece, ";", "%3B"); i >= 0 {
				piece = piece[:i]
			}
			if piece == "." || piece == ".." {
				return true
			}
		}
	}
	return false
}

// indexAny returns the first index in s of any of subs, or -1.
func indexAny(s string, subs ...string) int {
	first := -1
	for _, sub := range subs {
		if i := strings.Index(s, sub); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

// unreserved reports the characters RFC 3986 §2.3 says need no encoding.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pathChar reports the characters a path may hold unencoded: pchar and
// "/" (RFC 3986 §3.3).
func pathChar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '/', ':', '@', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

const hexUpper = "0123456789ABCDEF"

// normalizePercent decodes percent-encoded unreserved characters, uppercases
// the hex digits of the rest (RFC 3986 §6.2.2.1, §6.2.2.2) and encodes
// characters a path may not hold, so the result is a valid path as sent
// upstream.
func normalizePercent(p string) (string, error) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			if pathChar(p[i]) {
				b.WriteByte(p[i])
			} else {
				b.WriteByte('%')
				b.WriteByte(hexUpper[p[i]>>4])
				b.WriteByte(hexUpper[p[i]&15])
			}
			continue
		}
		if i+2 >= len(p) || !ishex(p[i+1]) || !ishex(p[i+2]) {
			return "", errBadTarget
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if c == 0 {
			// An encoded NUL ends the path early in origins written in C
			// (/account%00.css read as /account): refused, never keyed.
			return "", errBadTarget
		}
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexUpper[c>>4])
			b.WriteByte(hexUpper[c&15])
		}
		i += 2
	}
	return b.String(), nil
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// removeDotSegments implements RFC 3986 §5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// rewriteQuery drops ignored parameters and sorts by name if asked. Pairs are
// kept byte for byte as sent; only their order and presence change.
func rewriteQuery(q string, kc *KeyConfig) string {
	pairs := strings.Split(q, "&")
	kept := pairs[:0]
	for _, p := range pairs {
		if p == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if !ignored(name, kc.IgnoreQuery) {
			kept = append(kept, p)
		}
	}
	if kc.SortQuery {
		slices.SortStableFunc(kept, func(a, b string) int {
			an, _, _ := strings.Cut(a, "=")
			bn, _, _ := strings.Cut(b, "=")
			return strings.Compare(an, bn)
		})
	}
	return strings.Join(kept, "&")
}

func ignored(name string, patterns []string) bool {
	for _, pat := range patterns {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == pat {
			return true
		}
	}
	return false
}
