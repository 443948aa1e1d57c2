package purge

import (
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/storage"
)

// entry holds the bans on one target (a URL, prefix, tag, host, or
// everything). Only the newest hard and the newest soft ban matter: an
// object older than an older ban is older than the newer one too, so a newer
// ban subsumes the older ones of its side. Lookups read entries without
// locks; Index.mu serializes changes.
type entry struct {
	ban        Ban // immutable
	hard, soft side
}

// side is the newest ban of one hardness on an entry's target.
type side struct {
	// at is the ban's time in Unix nanoseconds; zero means none.
	at atomic.Int64
	// rec is the purge that issued it, credited with what the sweeper
	// removes on its behalf.
	rec atomic.Pointer[recState]
	// left is the number of the last walk that left an object this side
	// matches in storage; a side no walk left anything for may retire.
	// Only the sweeper touches it (Index.sweepMu).
	left uint64
}

func (e *entry) side(soft bool) *side {
	if soft {
		return &e.soft
	}
	return &e.hard
}

// match accumulates the bans that match one object.
type match struct {
	rt     int64 // the object's ResponseTime in Unix nanoseconds
	newest int64 // time of the newest ban that matched; zero if none
	hard   bool  // whether a hard ban matched
	// collect makes add record matching entries in entries (the sweeper);
	// Check leaves it off and allocates nothing.
	collect bool
	entries []*entry
}

// reset prepares mt for the object m, keeping the entries' storage.
func (mt *match) reset(m *storage.Meta) {
	*mt = match{rt: unixNano(m.ResponseTime), collect: mt.collect, entries: mt.entries[:0]}
}

// add accounts for e's bans that are newer than the object.
func (mt *match) add(e *entry) {
	if e == nil {
		return
	}
	hit := false
	if at := e.hard.at.Load(); at > mt.rt {
		mt.newest, mt.hard, hit = max(mt.newest, at), true, true
	}
	if at := e.soft.at.Load(); at > mt.rt {
		mt.newest, hit = max(mt.newest, at), true
	}
	if hit && mt.collect {
		mt.entries = append(mt.entries, e)
	}
}

// Check reports whether the object m describes is banned: banned is true
// when at least one ban matches m and was issued after m.ResponseTime (an
// object fetched or revalidated at or after a ban's time is not matched).
// Then at is the time of the newest matching ban, and soft is true only when
// every matching ban is soft: a hard ban is never weakened by a later soft
// one. A hard ban means the object must be treated as absent; a soft one
// that it is stale (it may be served under stale-while-revalidate or
// stale-if-error while it is refetched). A zero ResponseTime is older than
// every ban.
//
// Check is safe for concurrent use, takes no locks and allocates nothing
// (unless m.URL's host has capitals, which a canonical URL's has not). Its
// cost is a few map loads — m.URL, its host, each of m.Tags, each
// slash-ended prefix of m.URL that a prefix ban ends in — whatever the number
// of bans; with no bans it is one atomic load.
func (ix *Index) Check(m *storage.Meta) (at time.Time, soft bool, banned bool) {
	kinds := ix.kinds.Load()
	if kinds == 0 || m == nil {
		return time.Time{}, false, false
	}
	mt := match{rt: unixNano(m.ResponseTime)}
	ix.lookup(kinds, m, &mt)
	if mt.newest == 0 {
		return time.Time{}, false, false
	}
	return time.Unix(0, mt.newest), !mt.hard, true
}

// lookup adds to mt every entry that may match m, for the kinds whose bits
// are set in kinds.
func (ix *Index) lookup(kinds uint32, m *storage.Meta, mt *match) {
	if kinds&kindBit(KindAll) != 0 {
		mt.add(ix.load(KindAll, ""))
	}
	if m.URL == "" {
		if kinds&kindBit(KindTag) != 0 {
			ix.lookupTags(m.Tags, mt)
		}
		return
	}
	if kinds&kindBit(KindURL) != 0 {
		mt.add(ix.load(KindURL, m.URL))
	}
	if kinds&kindBit(KindTag) != 0 {
		ix.lookupTags(m.Tags, mt)
	}
	if kinds&kindBit(KindHost) != 0 {
		if h, ok := urlHost(m.URL); ok {
			mt.add(ix.load(KindHost, h))
		}
	}
	if kinds&kindBit(KindPrefix) != 0 {
		ix.lookupPrefixes(m.URL, mt)
	}
}

func (ix *Index) lookupTags(tags []string, mt *match) {
	for _, t := range tags {
		mt.add(ix.load(KindTag, t))
	}
}

// lookupPrefixes adds the prefix bans that u starts with. A prefix ban is
// filed under its floor: the prefix up to and including its last slash
// (every prefix has one after the authority, see prefixPath). A URL that
// starts with the prefix also starts with its floor, so the candidates are
// found from the URL's own slash-ended prefixes; under each floor held, only
// the prefix lengths that floor has are looked up. The cost depends on the
// URL's length, never on the number of bans.
func (ix *Index) lookupPrefixes(u string, mt *match) {
	i := strings.Index(u, "://")
	if i < 0 {
		return
	}
	for j := i + len("://"); ; j++ {
		k := strings.IndexByte(u[j:], '/')
		if k < 0 {
			return
		}
		j += k
		v, ok := ix.floors.Load(u[:j+1])
		if !ok {
			continue
		}
		for _, n := range v.(*floorSet).lens {
			end := j + 1 + n
			if end > len(u) {
				break
			}
			mt.add(ix.load(KindPrefix, u[:end]))
		}
	}
}

// load returns the entry for the ban of kind k on value v, or nil.
func (ix *Index) load(k Kind, v string) *entry {
	if e, ok := ix.entries[k].Load(v); ok {
		return e.(*entry)
	}
	return nil
}

// floorSet lists the lengths, past their floor, of the prefix bans filed
// under one floor: ascending, each with the number of prefixes of that
// length. It is immutable; changes store a new one.
type floorSet struct {
	lens   []int
	counts []int
}

// floor returns the part of a prefix ban's value a floorSet is filed under,
// and the prefix's length past it.
func floor(prefix string) (string, int) {
	i := strings.LastIndexByte(prefix, '/')
	return prefix[:i+1], len(prefix) - i - 1
}

// with returns a copy of fs (which may be nil) counting delta more
// prefixes of length n past the floor; nil when it counts none.
func (fs *floorSet) with(n, delta int) *floorSet {
	out := &floorSet{}
	if fs != nil {
		out.lens, out.counts = slices.Clone(fs.lens), slices.Clone(fs.counts)
	}
	i, found := slices.BinarySearch(out.lens, n)
	if !found {
		out.lens = slices.Insert(out.lens, i, n)
		out.counts = slices.Insert(out.counts, i, 0)
	}
	out.counts[i] += delta
	if out.counts[i] <= 0 {
		out.lens = slices.Delete(out.lens, i, i+1)
		out.counts = slices.Delete(out.counts, i, i+1)
	}
	if len(out.lens) == 0 {
		return nil
	}
	return out
}

// kindBit is k's bit in Index.kinds.
func kindBit(k Kind) uint32 { return 1 << k }

// unixNano returns t in Unix nanoseconds; the zero Time is older than every
// ban.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}
