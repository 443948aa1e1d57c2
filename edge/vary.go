package edge

import (
	"context"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/outpost-cdn/outpost/storage"
)

// parseVary returns the request field names a response varies on
// (RFC 9110 §12.5.5), canonicalised, deduplicated and sorted, and whether it
// has "*" (which no later request can match, RFC 9111 §4.1). A member that
// is not a field name counts as "*": what the origin meant by it is
// unknown, so no stored response may be selected by it.
func parseVary(h http.Header) (names []string, star bool) {
	for _, line := range h["Vary"] {
		for f := range strings.SplitSeq(line, ",") {
			f = textproto.TrimString(f)
			switch {
			case f == "":
			case f == "*" || !isToken(f):
				star = true
			default:
				names = append(names, http.CanonicalHeaderKey(f))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), star
}

// caseInsensitiveFields are request fields whose values compare without
// regard to case, so their variants are normalised to lower case.
var caseInsensitiveFields = map[string]bool{
	"Accept":          true,
	"Accept-Encoding": true,
	"Accept-Language": true,
	"Accept-Charset":  true,
}

// variantID is the part of a cache key that selects a variant: the values
// of the nominated request fields, normalised (RFC 9111 §4.1: a cache MAY
// normalise whitespace and case where the field's semantics allow). Fields
// absent from the request are distinct from empty ones.
func variantID(names []string, reqHeader http.Header) string {
	var b strings.Builder
	for _, name := range names {
		b.WriteByte(0)
		b.WriteString(name)
		lines, ok := reqHeader[name]
		if !ok && name != "Accept-Encoding" { // no field is identity: one variant
			b.WriteString("\x01") // absent
			continue
		}
		b.WriteByte('=')
		b.WriteString(normalizeFieldValue(name, lines))
	}
	return b.String()
}

// normalizeFieldValue joins the lines of a list field and collapses the
// whitespace around its elements; for case-insensitive fields it lowercases.
func normalizeFieldValue(name string, lines []string) string {
	if name == "Accept-Encoding" {
		// The one coding the client would be given, as sent upstream
		// (upstreamRequest): at most one variant per coding.
		return negotiate(lines, allCodings).String()
	}
	var b strings.Builder
	first := true
	for _, line := range lines {
		for elem := range strings.SplitSeq(line, ",") {
			elem = textproto.TrimString(elem)
			if elem == "" {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(elem)
		}
	}
	s := b.String()
	if caseInsensitiveFields[name] {
		s = strings.ToLower(s)
	}
	return s
}

// indexVariant records a variant in the URL's variant index, so lookups
// know which request fields select it (RFC 9111 §4.1). The index keeps the
// newest MaxVariants; older variants are deleted.
func (h *Handler) indexVariant(ctx context.Context, urlKey string, vary []string, key string) {
	h.indexMu.Lock()
	defer h.indexMu.Unlock()
	var variants []string
	if o, err := h.store.Get(ctx, urlKey); err == nil {
		if m := o.Meta(); m.IsVariantIndex() && equalStrings(m.Vary, vary) {
			variants = append(variants, m.Variants...)
		}
		o.Close()
	}
	out := variants[:0]
	for _, v := range variants {
		if v != key {
			out = append(out, v)
		}
	}
	out = append(out, key)
	for len(out) > h.cfg.MaxVariants {
		h.dropEntry(ctx, out[0])
		out = out[1:]
	}
	w, err := h.store.Put(ctx, storage.Meta{Key: urlKey, URL: urlKey, Vary: vary, Variants: out, Size: 0, ResponseTime: h.now()})
	if err != nil {
		return
	}
	defer w.Close()
	if err := w.Commit(); err != nil {
		h.log.Warn("variant index", "url", urlKey, "err", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
