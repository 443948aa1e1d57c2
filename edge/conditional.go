package edge

import (
	"net/http"
	"strings"
	"time"
)

// precondition is the outcome of evaluating a request's preconditions.
type precondition int

const (
	proceed     precondition = iota
	notModified              // 304
	failed                   // 412
)

// evalPreconditions evaluates the request's conditional fields against a
// 2xx response the cache would send, in the order of RFC 9110 §13.2.2.
// For If-Modified-Since a cache compares with the stored Last-Modified, or
// failing that the Date, or the time it was received (RFC 9111 §4.3.2).
func evalPreconditions(r *http.Request, hdr http.Header, received time.Time) precondition {
	etag := firstLine(hdr["Etag"])
	getOrHead := r.Method == http.MethodGet || r.Method == http.MethodHead
	// Step 1: If-Match, strong comparison (§13.1.1).
	if im, ok := r.Header["If-Match"]; ok {
		if !matchETag(im, etag, false) {
			return failed
		}
	} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" {
		// Step 2: If-Unmodified-Since, ignored without a date to compare
		// or when invalid (§13.1.4).
		if t, ok := parseHTTPDate(ius); ok {
			if lm, ok := parseHTTPDate(hdr.Get("Last-Modified")); ok && lm.After(t) {
				return failed
			}
		}
	}
	// Step 3: If-None-Match, weak comparison (§13.1.2).
	if inm, ok := r.Header["If-None-Match"]; ok {
		if matchETag(inm, etag, true) {
			if getOrHead {
				return notModified
			}
			return failed
		}
		return proceed
	}
	// Step 4: If-Modified-Since, GET and HEAD only, one valid date (§13.1.3).
	if ims, ok := r.Header["If-Modified-Since"]; ok && getOrHead && len(ims) == 1 {
		t, ok := parseHTTPDate(ims[0])
		if !ok {
			return proceed
		}
		mod, ok := parseHTTPDate(hdr.Get("Last-Modified"))
		if !ok {
			if mod, ok = parseHTTPDate(hdr.Get("Date")); !ok {
				mod = received
			}
		}
		if !mod.After(t) {
			return notModified
		}
	}
	return proceed
}

// matchETag reports whether any entity-tag in the field lines matches etag,
// or the field is "*" and a representation exists. Weak comparison ignores
// the W/ prefix; strong comparison needs both tags strong (RFC 9110 §8.8.3.2).
func matchETag(lines []string, etag string, weak bool) bool {
	for _, line := range lines {
		for rest := line; ; {
			rest = trimOWS(rest)
			if rest == "" {
				break
			}
			if rest[0] == ',' {
				rest = rest[1:]
				continue
			}
			if rest[0] == '*' {
				if etag != "" {
					return true
				}
				rest = rest[1:]
				continue
			}
			tag, tail, ok := scanETag(rest)
			if !ok {
				// Malformed: skip to the next element.
				i := strings.IndexByte(rest, ',')
				if i < 0 {
					break
				}
				rest = rest[i+1:]
				continue
			}
			rest = tail
			if etag != "" && etagsEqual(tag, etag, weak) {
				return true
			}
		}
	}
	return false
}

// scanETag reads one entity-tag (W/"..." or "...") at the start of s.
func scanETag(s string) (tag, rest string, ok bool) {
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s) <= start || s[start] != '"' {
		return "", s, false
	}
	end := strings.IndexByte(s[start+1:], '"')
	if end < 0 {
		return "", s, false
	}
	end += start + 2
	return s[:end], s[end:], true
}

func isWeak(etag string) bool { return strings.HasPrefix(etag, "W/") }

func etagsEqual(a, b string, weak bool) bool {
	if !weak && (isWeak(a) || isWeak(b)) {
		return false
	}
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// ifRangeAllows reports whether a Range request applies to the
// representation given its If-Range field (RFC 9110 §13.1.5): an entity-tag
// must match strongly; a date must equal a strong Last-Modified exactly.
func ifRangeAllows(r *http.Request, hdr http.Header) bool {
	ir := r.Header.Get("If-Range")
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		etag := hdr.Get("Etag")
		return etag != "" && etagsEqual(ir, etag, false)
	}
	t, ok := parseHTTPDate(ir)
	if !ok {
		return false
	}
	lm, ok := parseHTTPDate(hdr.Get("Last-Modified"))
	if !ok || !lm.Equal(t) {
		return false
	}
	// A Last-Modified is strong only if at least a second before Date
	// (RFC 9110 §8.8.2.2).
	date, ok := parseHTTPDate(hdr.Get("Date"))
	return ok && date.Sub(lm) >= time.Second
}
