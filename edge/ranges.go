package edge

import (
	"slices"
	"strconv"
	"strings"
)

// byteRange is a satisfiable range: start and length in bytes.
type byteRange struct{ start, length int64 }

// rangeGap is the gap below which two ranges are merged: a part's own
// headers cost about this much (RFC 9110 §14.6).
const rangeGap = 80

// rangeResult is what parseRanges made of a Range field.
type rangeResult uint8

const (
	rangeOK      rangeResult = iota // ranges holds the satisfiable ranges (none: 416)
	rangeIgnored                    // not bytes, or malformed: serve the whole
	rangeTooMany                    // more parts than allowed: serve the whole
)

// parseRange parses a Range field (RFC 9110 §14.1.2) against a
// representation of size bytes. ok is false when the field must be ignored
// (not bytes, malformed, more than maxParts parts after merging, or more
// than 4×maxParts before: RFC 9110 §14.2 lets a server ignore Range);
// otherwise ranges holds the satisfiable ranges, sorted and coalesced,
// empty when none is (416).
func parseRange(s string, size int64, maxParts int) (ranges []byteRange, ok bool) {
	ranges, res := parseRanges(s, size, maxParts)
	return ranges, res == rangeOK
}

// clientRanges is parseRange under Config.MaxRanges, counting the requests
// that asked for more parts.
func (h *Handler) clientRanges(s string, size int64) ([]byteRange, bool) {
	ranges, res := parseRanges(s, size, h.cfg.MaxRanges)
	if res == rangeTooMany {
		h.metrics.rangesOverLimit.Inc()
	}
	return ranges, res == rangeOK
}

func parseRanges(s string, size int64, maxParts int) (ranges []byteRange, res rangeResult) {
	unit, set, found := strings.Cut(s, "=")
	if !found || !strings.EqualFold(trimOWS(unit), "bytes") {
		return nil, rangeIgnored
	}
	specs := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = trimOWS(spec)
		if spec == "" {
			continue
		}
		specs++
		if specs > 4*maxParts {
			return nil, rangeTooMany
		}
		first, last, found := strings.Cut(spec, "-")
		if !found {
			return nil, rangeIgnored
		}
		first, last = trimOWS(first), trimOWS(last)
		if first == "" {
			// suffix-range: the last n bytes.
			n, err := parseDigits(last)
			if err != nil {
				return nil, rangeIgnored
			}
			if n > 0 && size > 0 {
				n = min(n, size)
				ranges = append(ranges, byteRange{size - n, n})
			}
			continue
		}
		start, err := parseDigits(first)
		if err != nil {
			return nil, rangeIgnored
		}
		end := size - 1
		if last != "" {
			e, err := parseDigits(last)
			if err != nil || e < start {
				return nil, rangeIgnored
			}
			end = min(e, size-1)
		}
		if start < size {
			ranges = append(ranges, byteRange{start, end - start + 1})
		}
	}
	if specs == 0 {
		return nil, rangeIgnored
	}
	ranges = coalesce(ranges)
	if len(ranges) > maxParts {
		return nil, rangeTooMany
	}
	return ranges, rangeOK
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
