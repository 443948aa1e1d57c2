package access

import (
	"fmt"
	"strings"
)

// Hotlink configures hotlink protection for a host: requests whose Referer
// matches none of the allowed patterns get 403. With no Referers it is off.
type Hotlink struct {
	// Referers are the allowed referring sites, each a host name, exact
	// ("example.com") or with a leading wildcard label ("*.example.com",
	// which matches a.example.com and a.b.example.com but not
	// example.com), optionally followed by a path prefix
	// ("example.com/gallery/"). The scheme (http or https) and port of the
	// Referer do not matter; host names match case-insensitively.
	Referers []string
	// DenyEmpty refuses requests without a Referer, or with an empty one.
	// Zero allows them: browsers omit it under strict referrer policies,
	// and players, apps and direct visits send none.
	DenyEmpty bool
}

// referer is one compiled pattern.
type referer struct {
	host     string // lowercase; for a wildcard the suffix ".example.com"
	wildcard bool
	path     string // "" or a prefix starting with "/"
}

// hotlink matches Referer fields against a host's patterns.
type hotlink struct {
	patterns  []referer
	denyEmpty bool
}

func newHotlink(cfg Hotlink) (*hotlink, error) {
	hl := &hotlink{denyEmpty: cfg.DenyEmpty}
	for i, p := range cfg.Referers {
		raw := p
		p = strings.TrimSpace(p)
		if strings.Contains(p, "://") {
			return nil, fmt.Errorf("hotlink: referers[%d]: %q: give a host name without scheme (example.com or *.example.com/path/)", i, raw)
		}
		host, path := p, ""
		if j := strings.IndexByte(p, '/'); j >= 0 {
			host, path = p[:j], p[j:] // the path keeps its case
		}
		host = strings.ToLower(host)
		r := referer{host: host, path: path}
		if suffix, ok := strings.CutPrefix(host, "*"); ok {
			r.host, r.wildcard = suffix, true
			host = suffix
			if !strings.HasPrefix(host, ".") {
				return nil, fmt.Errorf("hotlink: referers[%d]: %q: a wildcard is a whole leading label (*.example.com)", i, raw)
			}
			host = host[1:]
		}
		if !validHostName(host) {
			return nil, fmt.Errorf("hotlink: referers[%d]: %q: not a host name", i, raw)
		}
		hl.patterns = append(hl.patterns, r)
	}
	return hl, nil
}

// validHostName reports whether s is a plausible DNS name or address
// literal: letters, digits, '-', '.', ':' and brackets, no empty label.
func validHostName(s string) bool {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// Why a Referer was refused: the reason label of
// outpost_access_denied_total{rule="hotlink"}.
const (
	reasonEmpty   = "empty"
	reasonReferer = "referer"
)

// check returns "" when a request with these Referer values may pass, else
// the reason it may not.
func (hl *hotlink) check(values []string) string {
	if len(values) == 0 || values[0] == "" {
		if hl.denyEmpty {
			return reasonEmpty
		}
		return ""
	}
	if len(values) > 1 {
		return reasonReferer // one field only (RFC 9110 §10.1.3)
	}
	host, path, ok := splitReferer(values[0])
	if !ok {
		return reasonReferer
	}
	for i := range hl.patterns {
		p := &hl.patterns[i]
		if p.wildcard {
			if len(host) <= len(p.host) || !hasSuffixFold(host, p.host) {
				continue
			}
		} else if !strings.EqualFold(host, p.host) {
			continue
		}
		if strings.HasPrefix(path, p.path) {
			return ""
		}
	}
	return reasonReferer
}

// splitReferer returns the host (without port) and path of an http(s)
// Referer URL, without allocating.
func splitReferer(v string) (host, path string, ok bool) {
	var rest string
	switch {
	case len(v) > 8 && strings.EqualFold(v[:8], "https://"):
		rest = v[8:]
	case len(v) > 7 && strings.EqualFold(v[:7], "http://"):
		rest = v[7:]
	default:
		return "", "", false
	}
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	host, path = rest[:end], "/"
	if end < len(rest) && rest[end] == '/' {
		path = rest[end:]
		for i := 0; i < len(path); i++ {
			if c := path[i]; c == '?' || c == '#' {
				path = path[:i]
				break
			}
		}
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:] // user info is no part of the host
	}
	if strings.HasPrefix(host, "[") {
		i := strings.IndexByte(host, ']')
		if i < 0 {
			return "", "", false
		}
		host = host[:i+1]
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return host, path, host != ""
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}
