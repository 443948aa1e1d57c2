package storage

import (
	"net/http"
	"slices"
	"time"
)

// Meta is the metadata a tier stores with an object's body. Tiers persist every
// field verbatim; the edge decides what the fields mean.
type Meta struct {
	// Key is the key the object is stored under.
	Key string
	// URL is the canonical URL of the resource. Variants of one URL (Vary,
	// encodings, slices) share it, so purges by URL, prefix and host match it.
	URL string
	// Status is the HTTP status code of the stored response. Zero marks a
	// variant index: an entry with no body that records which request fields
	// select among the URL's variants (Vary and Variants).
	Status int
	// Header is the stored response header, hop-by-hop fields removed.
	Header http.Header
	// RequestTime and ResponseTime are the local times the request that
	// produced the response was sent and its response received (RFC 9111 §4.2.3).
	RequestTime  time.Time
	ResponseTime time.Time
	// OriginTime is when the representation was obtained from the origin
	// (or last validated by it), which may be long before this tier
	// received it: a copy fetched from a parent cache inherits the time
	// the parent's copy was obtained. Purges compare with it (ObtainedAt).
	// The zero value means it was not recorded (metadata written before
	// the field existed): FetchedAt stands for it.
	OriginTime time.Time
	// InitialAge is the corrected initial age of the response (RFC 9111 §4.2.3).
	InitialAge time.Duration
	// Lifetime is the freshness lifetime of the response (RFC 9111 §4.2.1).
	Lifetime time.Duration
	// StaleWhileRevalidate and StaleIfError are how long past Lifetime the
	// response may still be served (RFC 5861).
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// Flags holds edge-defined bits (must-revalidate, no-cache, ...).
	Flags uint32
	// Size is the body length in bytes; -1 at Put means not known yet, and
	// Commit then records the length written.
	Size int64
	// Tags are the surrogate keys the object is purgeable by.
	Tags []string
	// Vary lists the request field names that select a variant (for a variant
	// index, and for each variant).
	Vary []string
	// Variants lists the keys of the known variants (variant index only).
	Variants []string
}

// IsVariantIndex reports whether m is a variant index rather than a response.
func (m *Meta) IsVariantIndex() bool { return m.Status == 0 }

// Clone returns a deep copy of m, so the copy's slices and header may be
// modified without affecting m.
func (m *Meta) Clone() Meta {
	c := *m
	c.Header = m.Header.Clone()
	c.Tags = slices.Clone(m.Tags)
	c.Vary = slices.Clone(m.Vary)
	c.Variants = slices.Clone(m.Variants)
	return c
}

// HeaderSize returns an estimate in bytes of the memory the metadata takes:
// the key, URL, header names and values and the lists, plus a fixed overhead
// per entry. Tiers charge it together with the body against their budget.
func (m *Meta) HeaderSize() int64 {
	const perEntry = 16
	n := int64(len(m.Key)+len(m.URL)) + 160
	for k, vs := range m.Header {
		n += int64(len(k)) + perEntry
		for _, v := range vs {
			n += int64(len(v)) + perEntry
		}
	}
	for _, list := range [...][]string{m.Tags, m.Vary, m.Variants} {
		for _, s := range list {
			n += int64(len(s)) + perEntry
		}
	}
	return n
}

// ObtainedAt is when the representation was obtained from the origin, as
// purges compare it: OriginTime, or FetchedAt when OriginTime is zero or
// later than FetchedAt (a parent's clock ahead of ours cannot make a copy
// younger than the request that fetched it).
func (m *Meta) ObtainedAt() time.Time {
	f := m.FetchedAt()
	if o := m.OriginTime; !o.IsZero() && o.Before(f) {
		return o
	}
	return f
}

// FetchedAt is when the response's request left: the earlier of
// RequestTime and ResponseTime, or ResponseTime when RequestTime is zero
// (metadata written before RequestTime was recorded). A response whose
// request left before an event (a purge) may predate it, however late it
// arrived.
func (m *Meta) FetchedAt() time.Time {
	if rq := m.RequestTime; !rq.IsZero() && rq.Before(m.ResponseTime) {
		return rq
	}
	return m.ResponseTime
}
