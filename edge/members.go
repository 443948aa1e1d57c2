package edge

import (
	"context"
	"strconv"
)

// The entries stored for one URL. The entry under the URL key may stand
// for others stored under keys derived from its own (memberKey): the
// variants a Vary field selects among (under a variant index, vary.go), the
// slices of a large object (under a slice index, slice.go) and the encoded
// variants of a compressible response (compress.go). Every member carries
// the URL in Meta.URL, and the entry's tags, so purges by URL, prefix, host
// and tag reach it; dropEntry removes an entry with all that stands under
// it.

// Kinds of members, the part of a member's key after the entry's.
const (
	memberVary   = "vary"   // + the selecting fields' values (variantID)
	memberSlice  = "slice=" // + the slice number
	memberCoding = "ce="    // + the content coding
)

// memberKey is the storage key of member id, of a kind, of the entry under
// key.
func memberKey(key, kind, id string) string { return key + "\x00" + kind + id }

// variantKey is the storage key of the variant of a URL that a request
// selects (RFC 9111 §4.1).
func variantKey(urlKey, id string) string { return memberKey(urlKey, memberVary, id) }

// sliceKey is the storage key of slice k of the object under urlKey.
func sliceKey(urlKey string, k int64) string {
	return memberKey(urlKey, memberSlice, strconv.FormatInt(k, 10))
}

// encodedKey is the storage key of the variant of the object under key
// encoded with cd.
func encodedKey(key string, cd coding) string { return memberKey(key, memberCoding, cd.String()) }

// dropEntry deletes the entry under key and what stands under it: the
// variants of a variant index, the slices of a slice index, the encoded
// variants of a response.
func (h *Handler) dropEntry(ctx context.Context, key string) {
	if o, err := h.store.Get(ctx, key); err == nil {
		m := o.Meta()
		switch {
		case m.IsVariantIndex():
			for _, v := range m.Variants {
				h.dropEntry(ctx, v)
			}
		case isSliceIndex(m):
			if ix, err := readSliceIndex(o); err == nil {
				for k := range ix.count() {
					h.store.Delete(ctx, sliceKey(key, k))
				}
			}
		}
		o.Close()
	}
	h.store.Delete(ctx, key)
	h.dropEncoded(ctx, key)
}

// dropEncoded deletes the encoded variants of the response under key.
func (h *Handler) dropEncoded(ctx context.Context, key string) {
	for _, cd := range allCodings {
		h.store.Delete(ctx, encodedKey(key, cd))
	}
}
