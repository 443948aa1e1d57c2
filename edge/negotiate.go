package edge

import "strings"

// coding is a content coding Outpost produces or decodes (RFC 9110 §8.4.1);
// identity is none.
type coding uint8

const (
	identity coding = iota
	codingGzip
	codingBr
	codingZstd
	numCodings
)

// allCodings are the codings Outpost knows, in its order of preference.
var allCodings = []coding{codingZstd, codingBr, codingGzip}

// codingNames are the tokens of the codings, as Content-Encoding and
// Accept-Encoding carry them.
var codingNames = [numCodings]string{"identity", "gzip", "br", "zstd"}

func (c coding) String() string { return codingNames[c] }

// parseCoding returns the coding a Content-Encoding or Accept-Encoding
// token names (case-insensitive; x-gzip is gzip, RFC 9110 §8.4.1.3), or
// ok false for one Outpost does not know.
func parseCoding(s string) (c coding, ok bool) {
	switch {
	case strings.EqualFold(s, "gzip"), strings.EqualFold(s, "x-gzip"):
		return codingGzip, true
	case strings.EqualFold(s, "br"):
		return codingBr, true
	case strings.EqualFold(s, "zstd"):
		return codingZstd, true
	case strings.EqualFold(s, "identity"):
		return identity, true
	}
	return 0, false
}

// negotiate chooses the content coding of a response from a request's
// Accept-Encoding (RFC 9110 §12.5.3) among offered, which lists codings in
// the server's order of preference: the acceptable coding with the highest
// q-value, the earlier in offered at equal q, provided its q is not below
// identity's. A coding with q=0 is refused; "*" stands for every coding not
// named. Without the field, or with one that does not parse, the answer is
// identity: a malformed field never becomes an error or a new cache key.
//
// Identity is acceptable unless "identity;q=0", or "*;q=0" without an
// identity entry, excludes it; even then it is what is sent when nothing
// else is acceptable, as servers commonly do rather than answer 406.
func negotiate(lines []string, offered []coding) coding {
	if len(lines) == 0 {
		return identity
	}
	q, ok := acceptQ(lines)
	if !ok {
		return identity
	}
	id := q[identity]
	if id < 0 {
		id = 1 // acceptable, and least preferred: any named coding wins
	}
	best, bestQ := identity, 0
	for _, c := range offered {
		if q[c] > bestQ {
			best, bestQ = c, q[c]
		}
	}
	if bestQ > 0 && bestQ >= id {
		return best
	}
	return identity
}

// acceptable reports whether a request accepts a coding: it sent no
// Accept-Encoding (RFC 9110 §12.5.3: any coding is then acceptable), or a
// well-formed one giving the coding a q-value above 0.
func acceptable(lines []string, c coding) bool {
	if len(lines) == 0 {
		return true
	}
	q, ok := acceptQ(lines)
	return ok && q[c] > 0
}

// acceptQ parses Accept-Encoding lines into the q-value of each coding in
// thousandths, -1 for one neither named nor covered by "*". ok is false for
// a field that does not parse.
func acceptQ(lines []string) (q [numCodings]int, ok bool) {
	const unset = -1
	for i := range q {
		q[i] = unset
	}
	star := unset
	for _, line := range lines {
		for elem := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(elem, ";")
			name = trimOWS(name)
			if name == "" && trimOWS(params) == "" {
				continue // an empty list element (RFC 9110 §5.6.1)
			}
			v, ok := qValue(params)
			if !ok || !isToken(name) {
				return q, false
			}
			// A coding named twice (or as gzip and x-gzip) takes the lower
			// of its q-values: a refusal anywhere in the field stands, and
			// the order of the elements never matters.
			if name == "*" {
				star = minQ(star, v)
			} else if c, known := parseCoding(name); known {
				q[c] = minQ(q[c], v)
			}
		}
	}
	for i := range q {
		if q[i] == unset {
			q[i] = star
		}
	}
	return q, true
}

// minQ is the lower of two q-values, unset (-1) standing for none.
func minQ(a, b int) int {
	if a < 0 {
		return b
	}
	return min(a, b)
}

// qValue parses the parameters of an Accept-Encoding element: none, or a
// weight "q=" with up to three decimals (RFC 9110 §12.4.2), in thousandths.
// Other parameters are not defined for Accept-Encoding and make the
// element malformed.
func qValue(params string) (int, bool) {
	params = trimOWS(params)
	if params == "" {
		return 1000, true
	}
	name, v, ok := strings.Cut(params, "=")
	if !ok || !strings.EqualFold(trimOWS(name), "q") {
		return 0, false
	}
	v = trimOWS(v)
	switch {
	case v == "1" || v == "1." || (strings.HasPrefix(v, "1.") && strings.Trim(v[2:], "0") == "" && len(v) <= 5):
		return 1000, true
	case v == "0" || v == "0.":
		return 0, true
	case !strings.HasPrefix(v, "0.") || len(v) > 5:
		return 0, false
	}
	n := 0
	for i, d := range v[2:] {
		if d < '0' || d > '9' {
			return 0, false
		}
		n += int(d-'0') * [3]int{100, 10, 1}[i]
	}
	return n, true
}
