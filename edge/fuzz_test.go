package edge

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets for the parsers that had none: Range, Vary, the
// Accept-Encoding normalisation of variant keys, and the query rules of
// cache keys. Seeds are in testdata/fuzz/<target>.

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-99", int64(1000))
	f.Add("bytes=-5,10-,0-0", int64(20))
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < 0 {
			return
		}
		const maxParts = 8
		ranges, ok := parseRange(s, size, maxParts)
		if !ok {
			if len(ranges) != 0 {
				t.Fatalf("parseRange(%q, %d) ignored but returned %v", s, size, ranges)
			}
			return
		}
		if len(ranges) > maxParts {
			t.Fatalf("parseRange(%q, %d) = %d parts, over %d", s, size, len(ranges), maxParts)
		}
		var total int64
		for i, r := range ranges {
			if r.start < 0 || r.length <= 0 || r.start+r.length > size {
				t.Fatalf("parseRange(%q, %d): range %+v outside the representation", s, size, r)
			}
			if i > 0 && r.start <= ranges[i-1].start+ranges[i-1].length+rangeGap {
				t.Fatalf("parseRange(%q, %d): %+v not merged with %+v", s, size, r, ranges[i-1])
			}
			total += r.length
		}
		if total > size {
			t.Fatalf("parseRange(%q, %d) asks for %d bytes, more than the whole", s, size, total)
		}
		// What it answers is a Range it answers the same way.
		var b strings.Builder
		b.WriteString("bytes=")
		for i, r := range ranges {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.TrimPrefix(strings.SplitN(contentRange(r, size), "/", 2)[0], "bytes "))
		}
		if len(ranges) > 0 {
			again, ok := parseRange(b.String(), size, maxParts)
			if !ok || !slices.Equal(again, ranges) {
				t.Fatalf("parseRange(%q) = %v; its own form %q gives %v", s, ranges, b.String(), again)
			}
		}
	})
}

func FuzzParseVary(f *testing.F) {
	f.Add("Accept-Encoding")
	f.Add("accept-encoding, Accept-Language ,*")
	f.Fuzz(func(t *testing.T, s string) {
		names, star := parseVary(http.Header{"Vary": {s}})
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("parseVary(%q) = %q: not sorted and unique", s, names)
		}
		for _, n := range names {
			if n == "" || n == "*" || strings.ContainsAny(n, ", \t") {
				t.Fatalf("parseVary(%q) has name %q", s, n)
			}
			if http.CanonicalHeaderKey(n) != n {
				t.Fatalf("parseVary(%q) has non-canonical name %q", s, n)
			}
		}
		again, star2 := parseVary(http.Header{"Vary": {strings.Join(names, ", ")}})
		if !slices.Equal(again, names) || star2 && !star {
			t.Fatalf("parseVary not idempotent: %q → %q → %q", s, names, again)
		}
	})
}

func FuzzNormalizeAcceptEncoding(f *testing.F) {
	f.Add("gzip, br")
	f.Add("br;q=1.0, GZIP;q=0.5, identity;q=0")
	f.Fuzz(func(t *testing.T, s string) {
		n := normalizeFieldValue("Accept-Encoding", []string{s})
		if again := normalizeFieldValue("Accept-Encoding", []string{n}); again != n {
			t.Fatalf("not idempotent: %q → %q → %q", s, n, again)
		}
		// The order of the codings and the split into field lines do not
		// matter: they select the same variant (a coding named twice takes
		// the lower of its q-values, whatever the order).
		parts := strings.Split(s, ",")
		slices.Reverse(parts)
		if r := normalizeFieldValue("Accept-Encoding", parts); r != n {
			t.Fatalf("%q and the lines %q select different variants: %q, %q", s, parts, n, r)
		}
		h1 := http.Header{"Accept-Encoding": {s}}
		h2 := http.Header{"Accept-Encoding": parts}
		names := []string{"Accept-Encoding"}
		if variantID(names, h1) != variantID(names, h2) {
			t.Fatalf("variant of %q differs from that of %q", s, parts)
		}
	})
}

func FuzzKeyQueryRules(f *testing.F) {
	f.Add("a=1&utm_source=x&b=2", true)
	f.Add("fbclid=1&&b=%20&a", false)
	f.Fuzz(func(t *testing.T, query string, sort bool) {
		kc := &KeyConfig{SortQuery: sort, IgnoreQuery: []string{"utm_*", "fbclid"}}
		c, err := canonicalize("https", "a.example", "/p", query, kc)
		if err != nil {
			return
		}
		if again := rewriteQuery(c.query, kc); again != c.query {
			t.Fatalf("query rules not idempotent: %q → %q → %q", query, c.query, again)
		}
		for p := range strings.SplitSeq(c.query, "&") {
			name, _, _ := strings.Cut(p, "=")
			if strings.HasPrefix(name, "utm_") || name == "fbclid" || p == "" && c.query != "" {
				t.Fatalf("rules kept %q of %q in %q", p, query, c.query)
			}
		}
		if u := c.URL().String(); u != c.String() {
			t.Fatalf("upstream URL %q differs from key %q", u, c.String())
		}
	})
}
