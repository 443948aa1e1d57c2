package edge

import (
	"slices"
	"strconv"
	"strings"
)

// byteRange is a satisfiable range: start and length in bytes.
type byteRange struct{ start, length int64 }

// Limits on what one Range request may cost.
const (
	// maxRangeParts bounds the parts of a multipart/byteranges response;
	// a request asking for more after coalescing gets the whole
	// representation (RFC 9110 §14.2 lets a server ignore Range).
	maxRangeParts = 32
	// rangeGap is the gap below which two ranges are merged: a part's
	// own headers cost about this much (RFC 9110 §14.6).
	rangeGap = 80
)

// parseRange parses a Range field (RFC 9110 §14.1.2) against a
// representation of size bytes. ok is false when the field must be ignored
// (not bytes, malformed, too many parts); otherwise ranges holds the
// satisfiable ranges, sorted and coalesced, empty when none is (416).
func parseRange(s string, size int64) (ranges []byteRange, ok bool) {
	unit, set, found := strings.Cut(s, "=")
	if !found || !strings.EqualFold(trimOWS(unit), "bytes") {
		return nil, false
	}
	specs := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = trimOWS(spec)
		if spec == "" {
			continue
		}
		specs++
		if specs > 4*maxRangeParts {
			return nil, false
		}
		first, last, found := strings.Cut(spec, "-")
		if !found {
			return nil, false
		}
		first, last = trimOWS(first), trimOWS(last)
		if first == "" {
			// suffix-range: the last n bytes.
			n, err := parseDigits(last)
			if err != nil {
				return nil, false
			}
			if n > 0 && size > 0 {
				n = min(n, size)
				ranges = append(ranges, byteRange{size - n, n})
			}
			continue
		}
		start, err := parseDigits(first)
		if err != nil {
			return nil, false
		}
		end := size - 1
		if last != "" {
			e, err := parseDigits(last)
			if err != nil || e < start {
				return nil, false
			}
			end = min(e, size-1)
		}
		if start < size {
			ranges = append(ranges, byteRange{start, end - start + 1})
		}
	}
	if specs == 0 {
		return nil, false
	}
	ranges = coalesce(ranges)
	if len(ranges) > maxRangeParts {
		return nil, false
	}
	return ranges, true
}

func parseDigits(s string) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// coalesce sorts ranges and merges those that overlap or nearly touch, so
// a request can never cost much more than the representation itself.
func coalesce(rs []byteRange) []byteRange {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b byteRange) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.start <= last.start+last.length+rangeGap {
			last.length = max(last.start+last.length, r.start+r.length) - last.start
			continue
		}
		out = append(out, r)
	}
	return out
}

// contentRange formats a Content-Range value (RFC 9110 §14.4).
func contentRange(r byteRange, size int64) string {
	b := make([]byte, 0, 48)
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.start+r.length-1, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, size, 10)
	return string(b)
}
