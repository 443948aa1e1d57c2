package purge

import (
	"fmt"
	"time"
)

// Kind is what a ban matches stored objects by.
type Kind uint8

// The kinds of ban. The zero Kind is not valid.
const (
	// KindURL matches objects whose Meta.URL equals the ban's value: every
	// variant (Vary, encodings, slices) of one resource.
	KindURL Kind = iota + 1
	// KindPrefix matches objects whose Meta.URL starts with the ban's value.
	KindPrefix
	// KindTag matches objects that carry the ban's value among Meta.Tags.
	KindTag
	// KindHost matches objects whose Meta.URL names the ban's host, on any
	// port and either scheme.
	KindHost
	// KindAll matches every object.
	KindAll

	kindCount = iota + 1 // one past the last kind
)

// String returns the kind's name as the admin API and metrics spell it:
// url, prefix, tag, host or all.
func (k Kind) String() string {
	switch k {
	case KindURL:
		return "url"
	case KindPrefix:
		return "prefix"
	case KindTag:
		return "tag"
	case KindHost:
		return "host"
	case KindAll:
		return "all"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarshalText encodes k as its name. It fails for an invalid Kind.
func (k Kind) MarshalText() ([]byte, error) {
	if k == 0 || k >= kindCount {
		return nil, fmt.Errorf("purge: invalid kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText decodes a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	for c := KindURL; c < kindCount; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("purge: unknown kind %q", b)
}

// Ban is one target of a purge: the objects that Kind and Value match.
type Ban struct {
	Kind Kind `json:"kind"`
	// Value is, by Kind: the canonical URL (KindURL); a canonical absolute
	// http(s) URL prefix with at least the path's leading slash (KindPrefix);
	// the surrogate key, compared byte for byte (KindTag); the host name,
	// lowercase, without port, an IPv6 address in brackets (KindHost); empty
	// for KindAll.
	Value string `json:"value,omitempty"`
}

// check reports whether b is well formed, in the words of a 400 answer.
func (b Ban) check() error {
	switch b.Kind {
	case KindURL:
		return checkHTTPURL(b.Value)
	case KindPrefix:
		if p, err := prefixPath(b.Value); err != nil || p != b.Value {
			return fmt.Errorf("%q is not a canonical URL prefix", b.Value)
		}
		return nil
	case KindTag:
		return checkTag(b.Value)
	case KindHost:
		if h, err := canonicalHost(b.Value); err != nil || h != b.Value {
			return fmt.Errorf("%q is not a canonical host name", b.Value)
		}
		return nil
	case KindAll:
		if b.Value != "" {
			return fmt.Errorf("a ban on everything has value %q", b.Value)
		}
		return nil
	}
	return fmt.Errorf("invalid kind %d", uint8(b.Kind))
}

// Record is one purge: the bans issued together under one ID at one time.
// It is the unit the log persists, the fleet propagates and Index.Apply
// takes. A Record returned by the package must not be modified: its Bans are
// shared.
type Record struct {
	// ID identifies the purge across the fleet: applying a Record whose ID
	// is already held changes nothing. At most 128 bytes.
	ID string `json:"id"`
	// Time is when the purge was issued: it bans objects obtained from the
	// origin before it (storage.Meta.ObtainedAt).
	Time time.Time `json:"time"`
	// Soft marks every ban of the record as soft: matching objects become
	// stale rather than absent.
	Soft bool `json:"soft,omitempty"`
	// Bans are the purge's targets, at least one, without repeats.
	Bans []Ban `json:"bans"`
	// Purged counts the objects the sweeper has removed from storage on this
	// purge's behalf so far (each removal is credited to the newest of the
	// bans that removed it). It is local bookkeeping: neither persisted nor propagated,
	// and ignored by Apply.
	Purged int64 `json:"-"`
}

// maxIDLen bounds Record.ID.
const maxIDLen = 128

// check reports whether r is well formed.
func (r *Record) check() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("record has no id")
	case len(r.ID) > maxIDLen:
		return fmt.Errorf("record id is longer than %d bytes", maxIDLen)
	case r.Time.IsZero() || r.Time.UnixNano() <= 0:
		return fmt.Errorf("record %s has no time", r.ID)
	case len(r.Bans) == 0:
		return fmt.Errorf("record %s has no bans", r.ID)
	}
	seen := make(map[Ban]struct{}, len(r.Bans))
	for i, b := range r.Bans {
		if err := b.check(); err != nil {
			return fmt.Errorf("record %s: bans[%d]: %w", r.ID, i, err)
		}
		if _, dup := seen[b]; dup {
			return fmt.Errorf("record %s: bans[%d] repeats %s %q", r.ID, i, b.Kind, b.Value)
		}
		seen[b] = struct{}{}
	}
	return nil
}
