package purge

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/outpost-cdn/outpost/internal/httpurl"
)

// Request is the body of the admin API's POST /purge (DESIGN.md, "Admin
// API"): what to purge, and how. Fields may be omitted; at least one target
// must be given.
type Request struct {
	// URLs are absolute http(s) URLs; each purges every variant of the
	// resource.
	URLs []string `json:"urls,omitempty"`
	// Prefixes are absolute http(s) URLs; each purges every URL that starts
	// with it once both are in canonical form. A prefix without a path
	// (http://example.com) covers the whole origin (http://example.com/).
	Prefixes []string `json:"prefixes,omitempty"`
	// Tags are surrogate keys (see ParseTags).
	Tags []string `json:"tags,omitempty"`
	// Hosts are host names without scheme or port; each purges the host on
	// every port and scheme. Case-insensitive.
	Hosts []string `json:"hosts,omitempty"`
	// All purges everything.
	All bool `json:"all,omitempty"`
	// Soft marks matches stale instead of removing them (see Index.Check).
	Soft bool `json:"soft,omitempty"`
}

// Result is the body of a successful POST /purge answer.
type Result struct {
	// ID identifies the purge: in the log, on the status page, across the
	// fleet.
	ID string `json:"id"`
	// Bans is the number of bans recorded: the targets of the request, once
	// canonical and without repeats.
	Bans int `json:"bans"`
	// Purged is the number of objects removed from storage on behalf of the
	// purge when the answer was written. Removal happens in the background
	// (Index.Run), so it is usually 0; matching objects are nevertheless
	// never served fresh again (Index.Check). Index.Recent reports the count
	// as it grows.
	Purged int64 `json:"purged"`
	// Warning, when set, says the purge is in force on the node that
	// answered but may not have reached the rest of the fleet yet (its
	// Bus could not publish it).
	Warning string `json:"warning,omitempty"`
}

// ValidationError reports a request or record refused as a whole: nothing
// of it was recorded. Reason is fit to show the client (the admin API sends
// it as the 400 answer's "error").
type ValidationError struct {
	Reason string
}

// Error implements error.
func (e *ValidationError) Error() string { return "purge: " + e.Reason }

func invalidf(format string, args ...any) error {
	return &ValidationError{Reason: fmt.Sprintf(format, args...)}
}

// Bounds on what one ban names.
const (
	maxURLLen  = 8 << 10
	maxHostLen = 255
)

// bans validates every target of req before any is recorded, and returns
// them canonical and without repeats, in request order.
func (req *Request) bans(canonicalize func(string) (string, error)) ([]Ban, error) {
	var bans []Ban
	seen := make(map[Ban]struct{})
	add := func(b Ban) {
		if _, dup := seen[b]; !dup {
			seen[b] = struct{}{}
			bans = append(bans, b)
		}
	}
	for i, raw := range req.URLs {
		c, err := canonicalURL(raw, canonicalize)
		if err != nil {
			return nil, invalidf("urls[%d] %s: %v", i, quote(raw), err)
		}
		add(Ban{Kind: KindURL, Value: c})
	}
	for i, raw := range req.Prefixes {
		c, err := canonicalURL(raw, canonicalize)
		if err == nil {
			c, err = prefixPath(c)
		}
		if err != nil {
			return nil, invalidf("prefixes[%d] %s: %v", i, quote(raw), err)
		}
		add(Ban{Kind: KindPrefix, Value: c})
	}
	for i, t := range req.Tags {
		if err := checkTag(t); err != nil {
			return nil, invalidf("tags[%d] %s: %v", i, quote(t), err)
		}
		add(Ban{Kind: KindTag, Value: t})
	}
	for i, raw := range req.Hosts {
		h, err := canonicalHost(raw)
		if err != nil {
			return nil, invalidf("hosts[%d] %s: %v", i, quote(raw), err)
		}
		add(Ban{Kind: KindHost, Value: h})
	}
	if req.All {
		add(Ban{Kind: KindAll})
	}
	if len(bans) == 0 {
		return nil, invalidf("nothing to purge: give urls, prefixes, tags, hosts or all")
	}
	return bans, nil
}

// canonicalURL checks that raw is an absolute http(s) URL and returns its
// canonical form, which must be one too.
func canonicalURL(raw string, canonicalize func(string) (string, error)) (string, error) {
	if err := checkHTTPURL(raw); err != nil {
		return "", err
	}
	c, err := canonicalize(raw)
	if err != nil {
		return "", err
	}
	if err := checkHTTPURL(c); err != nil {
		return "", fmt.Errorf("canonical form %s: %w", quote(c), err)
	}
	return c, nil
}

// checkHTTPURL reports whether s is an absolute http or https URL with a
// host, as every URL and prefix of a purge must be.
func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("empty URL")
	}
	if len(s) > maxURLLen {
		return fmt.Errorf("URL longer than %d bytes", maxURLLen)
	}
	_, err := httpurl.Parse(s)
	return err
}

// prefixPath returns the canonical prefix s with the path's leading slash
// added when s names no path at all, so that http://example.com cannot match
// http://example.com.evil.test/. It fails when a query or fragment follows
// the authority directly.
func prefixPath(s string) (string, error) {
	if err := checkHTTPURL(s); err != nil {
		return "", err
	}
	i := strings.Index(s, "://") + len("://")
	j := strings.IndexAny(s[i:], "/?#")
	switch {
	case j < 0:
		return s + "/", nil
	case s[i+j] != '/':
		return "", errors.New("prefix has a query but no path")
	}
	return s, nil
}

// canonicalHost returns the host name a host ban matches: lowercase, and an
// IPv6 address in brackets as URLs write it. It refuses a port, a scheme, a
// path, or anything else that is not part of a host name.
func canonicalHost(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty host")
	case len(s) > maxHostLen:
		return "", fmt.Errorf("host longer than %d bytes", maxHostLen)
	}
	h := strings.ToLower(s)
	bracketed := h[0] == '[' && h[len(h)-1] == ']'
	if bracketed || strings.Contains(h, ":") {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errors.New("not a host name: give the host without scheme, port or path")
		}
		if bracketed {
			return h, nil
		}
		return "[" + h + "]", nil
	}
	for i := range len(h) {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", errors.New("not a host name: give the host without scheme, port or path")
		}
	}
	return h, nil
}

// urlHost returns the host of a canonical URL as host bans name it: without
// userinfo or port, lowercase. It allocates only when the host has capitals,
// which a canonical URL's has not.
func urlHost(u string) (string, bool) {
	i := strings.Index(u, "://")
	if i < 0 {
		return "", false
	}
	a := u[i+len("://"):]
	for j := range len(a) { // strings.IndexAny costs more on this path
		if c := a[j]; c == '/' || c == '?' || c == '#' {
			a = a[:j]
			break
		}
	}
	if j := strings.LastIndexByte(a, '@'); j >= 0 {
		a = a[j+1:]
	}
	if strings.HasPrefix(a, "[") {
		if j := strings.IndexByte(a, ']'); j >= 0 {
			a = a[:j+1]
		}
	} else if j := strings.LastIndexByte(a, ':'); j >= 0 {
		a = a[:j]
	}
	if a == "" {
		return "", false
	}
	for k := range len(a) {
		if 'A' <= a[k] && a[k] <= 'Z' {
			return strings.ToLower(a), true
		}
	}
	return a, true
}

// quote quotes s for an error message, cut to a readable length.
func quote(s string) string {
	const limit = 100
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
