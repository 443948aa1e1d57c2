package edge

// Slicing of large objects.
//
// An object longer than Config.SliceThreshold is fetched from upstream and
// stored in fixed-size slices (Config.SliceSize), each fetched with a Range
// request, so a cold request for bytes near the end of a 1 GiB video costs
// the origin one slice, not the file, and a client that leaves costs at most
// the slice being fetched. The design is the one of nginx's slice module and
// of CDNs' "segmented caching":
//
//   - Under the URL's key the store holds a slice index instead of a whole
//     response: the whole response's metadata (status 200, its header with
//     the full Content-Length, its freshness), marked flagSliceIndex, whose
//     body is a one-line record of the representation's length and the
//     slice size (sliceIndex.record). Freshness, revalidation, purges and
//     Cache-Status are those of the index; slices share them.
//   - Slice k is a storage object under sliceKey(urlKey, k): status 206,
//     Content-Range, the validators (ETag, Last-Modified) of the response it
//     came in, Meta.URL the URL key and Meta.Tags the index's, so purges by
//     URL, prefix, host and tag reach every slice (DESIGN: an exact URL
//     purge removes every variant of a URL).
//   - A slice is used only when it belongs to the index's representation:
//     the same length, and the same strong ETag (or, without one, the same
//     ETag and Last-Modified). Any other stored slice is a miss.
//
// How a URL becomes sliced (the policy). A cold GET with a Range header (no
// stored response for the URL) does not fetch the whole object: its flight
// (coalesced on the URL key like any miss) asks upstream for the one
// slice-aligned range holding the first byte the client wants (slice 0 for
// a suffix range, whose position depends on the length not yet known). A
// 206 whose Content-Range shows a length above the threshold, for a
// response the cache may store and share, with no Vary and with a
// validator, becomes a slice index plus that slice. Any other answer goes
// to the whole-object fill of fill.go: a 206 covering the whole
// representation as the 200 it equals; a 200 (the origin ignores Range,
// RFC 9110 §14.2) or an error status as it is, without a second request; a
// 206 of a smaller or unstorable object is dropped and the object fetched
// whole (the probe cost at most one slice). Such URLs are then fetched
// whole, without a probe, for sliceMarkTTL. A GET without Range on a cold
// URL is an ordinary whole-object fill, stored whole when the tier accepts
// it: splitting a 200 into slices as it streams is not built, so a big
// object first requested without Range is stored whole, on disk.
//
// Serving. A request whose lookup finds a slice index is answered by
// walking the slices it needs (sliceBody, a bodySource), so serve.go's
// respond does preconditions, Range (single and multipart), HEAD, Age and
// Cache-Status as for a whole object. A missing slice is fetched through
// the flight table under its own key, so concurrent requests for one slice
// cost one Range request, and followers stream it as it arrives. Cache-Status
// says hit when every slice needed was stored, fwd=partial when some were
// (RFC 9211 §2.2), else fwd=miss.
//
// Change. Every slice response is checked against the index. When a slice
// shows another representation (or the origin now ignores Range, or the
// resource is gone) the index and the old slices are deleted. A request that
// learns it before sending its header starts again and is answered from
// the new representation; one that has sent bytes of the old one is aborted
// (panic(http.ErrAbortHandler)), never finished with bytes of another.
//
// Revalidation. A stale index is revalidated with a conditional Range
// request for the slice the request needs: a 304 refreshes the index, a 206
// of the same representation refreshes it too, a 206 of another one
// replaces index and slices, and anything else drops them and is handled by
// the whole-object fill. stale-if-error and disconnected operation apply to
// the index as to a whole response.

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// Slicing defaults and limits (Config.SliceSize, Config.SliceThreshold).
const (
	// defaultSliceSize: a cold seek costs at most 1 MiB of origin bytes
	// (about 8 ms at 1 Gbit/s), while the cost per slice (a request, a
	// stored object with about half a KiB of metadata) stays below 0.1%; a
	// 1 GiB file is 1024 objects. A slice fits one memory-tier chunk.
	defaultSliceSize = 1 << 20
	// defaultSliceThreshold: objects up to 8 MiB are fetched and stored
	// whole.
	defaultSliceThreshold = 8 << 20
	// minSliceSize: smaller slices would multiply requests and objects
	// for no gain in seek cost.
	minSliceSize = 64 << 10
	// sliceMarkTTL is how long a URL found not worth slicing (small,
	// unstorable, or served by an origin that ignores Range) is fetched
	// whole without a probe.
	sliceMarkTTL = 10 * time.Minute
)

// flagSliceIndex marks a stored response as a slice index (storage.Meta.Flags;
// the bit is kept clear of the freshness bits of freshness.go).
const flagSliceIndex uint32 = 1 << 16

// fwdPartial is RFC 9211 §2.2's forward reason for a response the cache
// held part of and completed upstream.
const fwdPartial = "partial"

// Reasons a slice fetch fails that make the request start again.
var (
	errSliceChanged = errors.New("edge: the object changed between slices")
	errNoRanges     = errors.New("edge: upstream ignored a Range request")
	errBadIndex     = errors.New("edge: not a slice index")
)

// isSliceChange reports whether err says the slices of an index are no
// longer current.
func isSliceChange(err error) bool {
	return errors.Is(err, errSliceChanged) || errors.Is(err, errNoRanges)
}

// sliceIndex is what a slice index records: the whole response's metadata
// and the layout of its slices. It implements storage.Object (its body is
// the record) so a flight can announce it; it holds nothing to close.
type sliceIndex struct {
	meta      storage.Meta // Meta.Size is the record's length
	size      int64        // the representation's length
	sliceSize int64
}

var _ storage.Object = (*sliceIndex)(nil)

// sliceRecordPrefix starts the body of a slice index; the version lets a
// later format be told apart.
const sliceRecordPrefix = "outpost slice index v1 "

// record is the body stored for the index: "<prefix><size> <slice size>\n".
func (ix *sliceIndex) record() []byte {
	b := make([]byte, 0, len(sliceRecordPrefix)+42)
	b = append(b, sliceRecordPrefix...)
	b = strconv.AppendInt(b, ix.size, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ix.sliceSize, 10)
	return append(b, '\n')
}

// parseSliceRecord parses the body of a slice index.
func parseSliceRecord(s string) (size, sliceSize int64, ok bool) {
	s, ok1 := strings.CutPrefix(s, sliceRecordPrefix)
	s, ok2 := strings.CutSuffix(s, "\n")
	a, b, ok3 := strings.Cut(s, " ")
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, false
	}
	size, err1 := parseDigits(a)
	sliceSize, err2 := parseDigits(b)
	if err1 != nil || err2 != nil || size <= 0 || sliceSize <= 0 {
		return 0, 0, false
	}
	return size, sliceSize, true
}

func (ix *sliceIndex) Meta() *storage.Meta { return &ix.meta }
func (ix *sliceIndex) Close() error        { return nil }

func (ix *sliceIndex) ReadAt(p []byte, off int64) (int, error) {
	rec := ix.record()
	if off < 0 || off >= int64(len(rec)) {
		return 0, io.EOF
	}
	n := copy(p, rec[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// isSliceIndex reports whether stored metadata is a slice index.
func isSliceIndex(m *storage.Meta) bool {
	return m.Status != 0 && m.Flags&flagSliceIndex != 0
}

// readSliceIndex reads a slice index from a stored object. The metadata is
// shared with o, which the caller may close: nothing modifies it.
func readSliceIndex(o storage.Object) (*sliceIndex, error) {
	if ix, ok := o.(*sliceIndex); ok {
		return ix, nil
	}
	m := o.Meta()
	if !isSliceIndex(m) || m.Size <= int64(len(sliceRecordPrefix)) || m.Size > 128 {
		return nil, errBadIndex
	}
	buf := make([]byte, m.Size)
	if n, _ := o.ReadAt(buf, 0); n != len(buf) {
		return nil, errBadIndex
	}
	size, sliceSize, ok := parseSliceRecord(string(buf))
	if !ok {
		return nil, errBadIndex
	}
	return &sliceIndex{meta: *m, size: size, sliceSize: sliceSize}, nil
}

// count is the number of slices.
func (ix *sliceIndex) count() int64 { return (ix.size + ix.sliceSize - 1) / ix.sliceSize }

// span is the byte range slice k covers; the last one may be short.
func (ix *sliceIndex) span(k int64) byteRange {
	start := k * ix.sliceSize
	return byteRange{start, min(ix.sliceSize, ix.size-start)}
}

// sameRepresentation reports whether a response header, from a response
// whose Content-Range gave size as the length, describes the index's
// representation: the same length and strong ETag, or, without a strong
// ETag, the same ETag and Last-Modified. Bytes of two representations must
// never be joined in one response.
func (ix *sliceIndex) sameRepresentation(hdr http.Header, size int64) bool {
	if size != ix.size {
		return false
	}
	etag := ix.meta.Header.Get("Etag")
	if etag != "" && !isWeak(etag) {
		return hdr.Get("Etag") == etag
	}
	return hdr.Get("Etag") == etag && hdr.Get("Last-Modified") == ix.meta.Header.Get("Last-Modified")
}

// holds reports whether m (a stored slice, or a slice flight's metadata)
// is slice k of the index's representation.
func (ix *sliceIndex) holds(m *storage.Meta, k int64) bool {
	if m.Status != http.StatusPartialContent {
		return false
	}
	start, end, size, ok := parseContentRange(firstLine(m.Header["Content-Range"]))
	sp := ix.span(k)
	return ok && start == sp.start && end-start+1 == sp.length && m.Size == sp.length &&
		ix.sameRepresentation(m.Header, size)
}

// hasSliceValidator reports whether a response can be sliced safely: it
// has a strong ETag or a Last-Modified to tell its slices from another
// representation's.
func hasSliceValidator(hdr http.Header) bool {
	etag := hdr.Get("Etag")
	return etag != "" && !isWeak(etag) || hdr.Get("Last-Modified") != ""
}

// parseContentRange parses the Content-Range of a single-part 206
// (RFC 9110 §14.4): "bytes first-last/complete-length". An unsatisfied
// range or an unknown length ("*") is not ok.
func parseContentRange(s string) (start, end, size int64, ok bool) {
	unit, rest, found := strings.Cut(trimOWS(s), " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	rng, total, found := strings.Cut(trimOWS(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	first, last, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = parseDigits(first)
	end, err2 = parseDigits(last)
	size, err3 = parseDigits(total)
	if err1 != nil || err2 != nil || err3 != nil || start > end || end >= size {
		return 0, 0, 0, false
	}
	return start, end, size, true
}

// firstSlice returns the slice holding the first byte a request's Range
// field asks for; a suffix range, whose place depends on a length not yet
// known, asks for slice 0. ok is false when there is no single bytes Range
// field the cache would answer (RFC 9110 §14.2).
func firstSlice(hdr http.Header, sliceSize int64) (k int64, ok bool) {
	rh, present := hdr["Range"]
	if !present || len(rh) != 1 {
		return 0, false
	}
	unit, set, found := strings.Cut(rh[0], "=")
	if !found || !strings.EqualFold(trimOWS(unit), "bytes") {
		return 0, false
	}
	first := int64(-1)
	for spec := range strings.SplitSeq(set, ",") {
		spec = trimOWS(spec)
		if spec == "" {
			continue
		}
		a, _, found := strings.Cut(spec, "-")
		if !found {
			return 0, false
		}
		if a = trimOWS(a); a == "" {
			return 0, true // a suffix range
		}
		start, err := parseDigits(a)
		if err != nil {
			return 0, false
		}
		if first < 0 || start < first {
			first = start
		}
	}
	if first < 0 || first > math.MaxInt64-2*sliceSize {
		return 0, false
	}
	return first / sliceSize, true
}

// rangeField formats a Range field for bytes start to end inclusive.
func rangeField(start, end int64) []string {
	b := make([]byte, 0, 48)
	b = append(b, "bytes="...)
	b = strconv.AppendInt(b, start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, end, 10)
	return []string{string(b)}
}
