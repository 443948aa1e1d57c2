package purge

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Bounds on the surrogate keys one response carries, in the spirit of the
// CDNs that defined the headers (Fastly's Surrogate-Key, Cloudflare's
// Cache-Tag): longer keys are dropped, keys past the count are ignored.
const (
	// MaxTags is the most surrogate keys ParseTags keeps for one response.
	MaxTags = 256
	// MaxTagLen is the longest surrogate key, in bytes.
	MaxTagLen = 1024
)

// tagSeparators split a header's surrogate keys: Surrogate-Key separates
// them with spaces, Cache-Tag with commas (and optional spaces).
const tagSeparators = " \t,"

// ParseTags returns the surrogate keys of an origin's response: the
// Surrogate-Key and Cache-Tag header fields, every line of each, split on
// spaces, tabs and commas. Keys are compared byte for byte; repeats are
// dropped (the first occurrence keeps its place), and so are keys longer
// than MaxTagLen or holding control characters; at most MaxTags are kept. It
// returns nil when there are none. The edge stores the result in Meta.Tags
// and removes both fields before a response leaves the outermost tier.
func ParseTags(h http.Header) []string {
	var tags []string
	var seen map[string]struct{} // built once tags outgrow a linear scan
	for _, name := range [...]string{"Surrogate-Key", "Cache-Tag"} {
		for _, line := range h[name] {
			for t := range strings.FieldsFuncSeq(line, isTagSeparator) {
				if len(tags) == MaxTags {
					return tags
				}
				var dup bool
				if seen != nil {
					_, dup = seen[t]
				} else {
					dup = slices.Contains(tags, t)
				}
				if dup || checkTag(t) != nil {
					continue
				}
				tags = append(tags, t)
				switch {
				case seen != nil:
					seen[t] = struct{}{}
				case len(tags) > 16:
					seen = make(map[string]struct{}, MaxTags)
					for _, k := range tags {
						seen[k] = struct{}{}
					}
				}
			}
		}
	}
	return tags
}

func isTagSeparator(r rune) bool { return strings.ContainsRune(tagSeparators, r) }

// checkTag reports whether t can be a surrogate key: what ParseTags keeps,
// and what a tag purge may name.
func checkTag(t string) error {
	switch {
	case t == "":
		return errors.New("empty tag")
	case len(t) > MaxTagLen:
		return fmt.Errorf("tag longer than %d bytes", MaxTagLen)
	}
	for i := range len(t) {
		if c := t[i]; c < 0x20 || c == 0x7f || strings.IndexByte(tagSeparators, c) >= 0 {
			return errors.New("tag holds a space, comma or control character")
		}
	}
	return nil
}
