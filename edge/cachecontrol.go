package edge

import (
	"strconv"
	"strings"
)

// deltaMax is the largest delta-seconds value kept: RFC 9111 §1.2.2 lets a
// cache cap larger values at 2^31.
const deltaMax = 1 << 31

// unset marks an absent delta-seconds directive.
const unset = -1

// directives holds the Cache-Control directives Outpost acts on, for a
// request (RFC 9111 §5.2.1) or a response (§5.2.2). Delta-seconds fields are
// unset (-1) when absent. Unknown directives are ignored (§5.2.3), so a
// directive we do not implement never changes behaviour.
type directives struct {
	maxAge   int64
	sMaxAge  int64
	maxStale int64 // request; deltaMax when given without a value
	minFresh int64 // request
	swr      int64 // stale-while-revalidate, RFC 5861 §3
	sie      int64 // stale-if-error, RFC 5861 §4

	noStore         bool
	noCache         bool // without field names
	private         bool // without field names
	public          bool
	mustRevalidate  bool
	proxyRevalidate bool
	mustUnderstand  bool
	noTransform     bool
	onlyIfCached    bool // request
	immutable       bool

	// noCacheFields and privateFields are the field names of the qualified
	// forms (§5.2.2.4, §5.2.2.7), lowercased.
	noCacheFields []string
	privateFields []string

	// invalid records a malformed freshness directive (max-age, s-maxage):
	// the response is then treated as stale (§4.2.1 allows it).
	invalid bool
}

func newDirectives() directives {
	return directives{maxAge: unset, sMaxAge: unset, maxStale: unset, minFresh: unset, swr: unset, sie: unset}
}

// parseCacheControl parses every field line of a Cache-Control-like header
// (RFC 9110 §5.6.1 lists; §5.6.2 tokens; §5.6.4 quoted strings). Directive
// names are case-insensitive. When a directive repeats, the first occurrence
// wins (RFC 9111 §4.2.1).
func parseCacheControl(lines []string) directives {
	d := newDirectives()
	seen := uint32(0)
	for _, line := range lines {
		for len(line) > 0 {
			var name, value string
			var hasValue bool
			name, value, hasValue, line = nextDirective(line)
			if name == "" {
				continue
			}
			d.apply(name, value, hasValue, &seen)
		}
	}
	return d
}

// nextDirective splits the first directive off s. It tolerates whitespace
// around '=' and ',' and skips empty list elements.
func nextDirective(s string) (name, value string, hasValue bool, rest string) {
	s = trimOWS(s)
	i := 0
	for i < len(s) && s[i] != ',' && s[i] != '=' {
		i++
	}
	// No whitespace may surround "=" (RFC 9111 §5.2): "max-age =60" names
	// no directive we know, and "max-age= 60" has no valid value.
	name = s[:i]
	if j := strings.IndexAny(name, " \t"); j >= 0 && i < len(s) && s[i] == '=' {
		name = name[:j] + " "
	} else {
		name = trimOWS(name)
	}
	s = s[i:]
	if len(s) > 0 && s[0] == '=' {
		hasValue = true
		s = s[1:]
		if len(s) > 0 && s[0] == '"' {
			value, s = unquote(s)
		} else {
			j := strings.IndexByte(s, ',')
			if j < 0 {
				j = len(s)
			}
			value, s = strings.TrimRight(s[:j], " \t"), s[j:]
		}
	}
	// Skip to the next list element; junk after a quoted string is dropped.
	if j := strings.IndexByte(s, ','); j >= 0 {
		s = s[j+1:]
	} else {
		s = ""
	}
	return name, value, hasValue, s
}

// unquote reads a quoted-string at the start of s (RFC 9110 §5.6.4),
// handling quoted-pairs, and returns its content and the rest of s. An
// unterminated string runs to the end.
func unquote(s string) (string, string) {
	var b strings.Builder
	plain := true
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			if plain {
				return s[1:i], s[i+1:]
			}
			return b.String(), s[i+1:]
		case '\\':
			if plain {
				b.WriteString(s[1:i])
				plain = false
			}
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			if !plain {
				b.WriteByte(s[i])
			}
		}
	}
	if plain {
		return s[1:], ""
	}
	return b.String(), ""
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// directiveSpec says how a directive's value is read. directiveTable is the
// one list of the Cache-Control directives Outpost acts on, read by
// parseCacheControl and parseCDNCacheControl; where each is kept in
// directives is the accessors' (delta, flag, names), by table index.
type directiveSpec struct {
	name string
	kind directiveKind
	// bare is the value of a delta directive given without one (max-stale);
	// zero means such a directive is invalid.
	bare int64
	// invalid: a malformed value makes the response stale (RFC 9111
	// §4.2.1), for the freshness directives.
	invalid bool
	request bool // a request directive only, never in CDN-Cache-Control
}

type directiveKind uint8

const (
	kindDelta  directiveKind = iota // delta-seconds (RFC 9111 §1.2.2)
	kindFlag                        // no value
	kindFields                      // a quoted list of field names, or no value
)

var directiveTable = [...]directiveSpec{
	dMaxAge:          {name: "max-age", kind: kindDelta, invalid: true},
	dSMaxAge:         {name: "s-maxage", kind: kindDelta, invalid: true},
	dMaxStale:        {name: "max-stale", kind: kindDelta, bare: deltaMax, request: true},
	dMinFresh:        {name: "min-fresh", kind: kindDelta, request: true},
	dSWR:             {name: "stale-while-revalidate", kind: kindDelta},
	dSIE:             {name: "stale-if-error", kind: kindDelta},
	dNoCache:         {name: "no-cache", kind: kindFields},
	dPrivate:         {name: "private", kind: kindFields},
	dNoStore:         {name: "no-store", kind: kindFlag},
	dPublic:          {name: "public", kind: kindFlag},
	dMustRevalidate:  {name: "must-revalidate", kind: kindFlag},
	dProxyRevalidate: {name: "proxy-revalidate", kind: kindFlag},
	dMustUnderstand:  {name: "must-understand", kind: kindFlag},
	dNoTransform:     {name: "no-transform", kind: kindFlag},
	dOnlyIfCached:    {name: "only-if-cached", kind: kindFlag, request: true},
	dImmutable:       {name: "immutable", kind: kindFlag},
}

// Indexes of directiveTable.
const (
	dMaxAge = iota
	dSMaxAge
	dMaxStale
	dMinFresh
	dSWR
	dSIE
	dNoCache
	dPrivate
	dNoStore
	dPublic
	dMustRevalidate
	dProxyRevalidate
	dMustUnderstand
	dNoTransform
	dOnlyIfCached
	dImmutable
)

// directive returns the index in directiveTable of a directive name
// (case-insensitive), or -1.
func directive(name string) int {
	for i := range directiveTable {
		if strings.EqualFold(name, directiveTable[i].name) {
			return i
		}
	}
	return -1
}

// delta, flag and names return where directive i is kept.
func (d *directives) delta(i int) *int64 {
	switch i {
	case dMaxAge:
		return &d.maxAge
	case dSMaxAge:
		return &d.sMaxAge
	case dMaxStale:
		return &d.maxStale
	case dMinFresh:
		return &d.minFresh
	case dSWR:
		return &d.swr
	}
	return &d.sie
}

func (d *directives) flag(i int) *bool {
	switch i {
	case dNoCache:
		return &d.noCache
	case dPrivate:
		return &d.private
	case dNoStore:
		return &d.noStore
	case dPublic:
		return &d.public
	case dMustRevalidate:
		return &d.mustRevalidate
	case dProxyRevalidate:
		return &d.proxyRevalidate
	case dMustUnderstand:
		return &d.mustUnderstand
	case dNoTransform:
		return &d.noTransform
	case dOnlyIfCached:
		return &d.onlyIfCached
	}
	return &d.immutable
}

func (d *directives) names(i int) *[]string {
	if i == dNoCache {
		return &d.noCacheFields
	}
	return &d.privateFields
}

// apply sets a directive of a Cache-Control field. seen has a bit per
// directiveTable entry: of a repeated delta directive the first wins.
func (d *directives) apply(name, value string, hasValue bool, seen *uint32) {
	i := directive(name)
	if i < 0 {
		return // unknown directives are ignored (RFC 9111 §5.2.3)
	}
	switch sp := &directiveTable[i]; {
	case sp.kind == kindDelta:
		if *seen&(1<<i) != 0 {
			return
		}
		*seen |= 1 << i
		if !hasValue && sp.bare != 0 {
			*d.delta(i) = sp.bare
			return
		}
		if v, ok := parseDelta(value); ok && hasValue {
			*d.delta(i) = v
		} else if sp.invalid {
			d.invalid = true
		}
	case sp.kind == kindFields && hasValue:
		*d.names(i) = appendFieldNames(*d.names(i), value)
	default:
		*d.flag(i) = true
	}
}

// parseDelta parses delta-seconds (RFC 9111 §1.2.2): digits only, values
// past 2^31 capped. A quoted value ("max-age=\"60\"") reaches here unquoted
// and is accepted, as recipients in the field commonly do.
func parseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < deltaMax {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, deltaMax), true
}

// appendFieldNames adds the lowercased names of a quoted field-name list;
// elements that are not tokens (RFC 9110 §5.6.2) are not field names and
// are skipped.
func appendFieldNames(dst []string, list string) []string {
	for f := range strings.SplitSeq(list, ",") {
		if f = trimOWS(f); isToken(f) {
			dst = append(dst, strings.ToLower(f))
		}
	}
	return dst
}

// isToken reports whether s is a token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// String formats d as a Cache-Control value; parsing the result yields d
// again (used by the fuzz test's round trip).
func (d directives) String() string {
	var parts []string
	add := func(on bool, s string) {
		if on {
			parts = append(parts, s)
		}
	}
	num := func(v int64, name string) {
		if v != unset {
			parts = append(parts, name+"="+strconv.FormatInt(v, 10))
		}
	}
	if d.invalid {
		// The malformed directive is the one left unset (the first wins).
		if d.maxAge == unset {
			parts = append(parts, "max-age=invalid")
		} else {
			parts = append(parts, "s-maxage=invalid")
		}
	}
	num(d.maxAge, "max-age")
	num(d.sMaxAge, "s-maxage")
	if d.maxStale == deltaMax {
		parts = append(parts, "max-stale")
	} else {
		num(d.maxStale, "max-stale")
	}
	num(d.minFresh, "min-fresh")
	num(d.swr, "stale-while-revalidate")
	num(d.sie, "stale-if-error")
	add(d.noStore, "no-store")
	add(d.noCache, "no-cache")
	add(d.private, "private")
	add(d.public, "public")
	add(d.mustRevalidate, "must-revalidate")
	add(d.proxyRevalidate, "proxy-revalidate")
	add(d.mustUnderstand, "must-understand")
	add(d.noTransform, "no-transform")
	add(d.onlyIfCached, "only-if-cached")
	add(d.immutable, "immutable")
	if len(d.noCacheFields) > 0 {
		parts = append(parts, `no-cache="`+strings.Join(d.noCacheFields, ", ")+`"`)
	}
	if len(d.privateFields) > 0 {
		parts = append(parts, `private="`+strings.Join(d.privateFields, ", ")+`"`)
	}
	return strings.Join(parts, ", ")
}
