package purge

import (
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
	rt     int64 // the object's time (objectTime) in Unix nanoseconds
	newest int64 // time of the newest ban that matched; zero if none
	tagged int64 // time of the newest tag ban that matched; zero if none
	hard   bool  // whether a hard ban matched
	// collect makes add record matching entries in entries (the sweeper);
	// Check leaves it off and allocates nothing.
	collect bool
	entries []*entry
}

// reset prepares mt for the object m, keeping the entries' storage.
func (mt *match) reset(m *storage.Meta) {
	*mt = match{rt: objectTime(m), collect: mt.collect, entries: mt.entries[:0]}
}

// add accounts for e's bans that are newer than the object. rt is never
// negative, so a side without a ban (time zero) never counts.
func (mt *match) add(e *entry) {
	if e == nil {
		return
	}
	hit := int64(0)
	if at := e.hard.at.Load(); at > mt.rt {
		mt.hard, hit = true, at
	}
	if at := e.soft.at.Load(); at > mt.rt {
		hit = max(hit, at)
	}
	if hit == 0 {
		return
	}
	mt.newest = max(mt.newest, hit)
	if e.ban.Kind == KindTag {
		mt.tagged = max(mt.tagged, hit)
	}
	if mt.collect {
		mt.entries = append(mt.entries, e)
	}
}

// Check reports whether the object m describes is banned: banned is true
// when at least one ban matches m and was issued after the object's time,
// when its representation was obtained from the origin (objectTime:
// m.ObtainedAt, the earlier of its OriginTime and the time its request
// left), so an object obtained at or after a ban's time is not matched,
// and one obtained before it is, even if it reached this node after the
// ban (through a parent tier that had not applied it yet, or on a response
// that was on its way). Then at is the time of the newest matching ban, and
// soft is true only when every matching ban is soft: a hard ban is never
// weakened by a later soft one. A hard ban means the object must be treated
// as absent; a soft one that it is stale (it may be served under
// stale-while-revalidate or stale-if-error while it is refetched). An
// object with a zero ResponseTime is older than every ban.
//
// When a tag ban matches, Check remembers it for m.URL (up to
// Config.TaggedURLs URLs), so that Newest reports it once the object is
// gone and its tags with it.
//
// Ban times and object times are wall-clock times from different calls to
// the clock, possibly on different nodes and before a restart; see
// Config.Now for what that assumes.
//
// Check is safe for concurrent use and takes no locks. It allocates
// nothing (unless m.URL's host has capitals, which a canonical URL's has
// not), but the first time a tag ban matches an object of a URL. Its cost
// is a few map loads — m.URL, its host, each of m.Tags, each slash-ended
// prefix of m.URL that a prefix ban ends in — whatever the number of bans;
// with no bans it is one atomic load.
func (ix *Index) Check(m *storage.Meta) (at time.Time, soft bool, banned bool) {
	kinds := ix.kinds.Load()
	if kinds == 0 || m == nil {
		return time.Time{}, false, false
	}
	mt := match{rt: objectTime(m)}
	ix.lookup(kinds, m.URL, m.Tags, &mt)
	if mt.newest == 0 {
		return time.Time{}, false, false
	}
	if mt.tagged != 0 {
		ix.tagged.note(m.URL, mt.tagged)
	}
	return time.Unix(0, mt.newest), !mt.hard, true
}

// Newest returns the time of the newest active ban, hard or soft, that
// matches every object whose Meta.URL is url — a ban on url itself, on a
// prefix of it, on its host, or on everything — or that matched a stored
// object of url by one of its tags (remembered by Check and the sweeper,
// see Config.TaggedURLs). ok is false when there is none. A tag ban that
// never met an object of url here is not known: an object's tags come from
// its response.
//
// The edge asks it before a refetch, so that a purge reaches through a tier
// above that has not applied it yet: the refetch asks that tier for a copy
// no older than the purge (Cache-Control: max-age=<seconds since at>, and
// Outpost-Purged-At between Outpost tiers; DESIGN "Purges across a
// fleet"). A ban that has retired is not reported, nor, once every tag ban
// has retired, a remembered one.
//
// Newest is safe for concurrent use and costs what Check does: it takes no
// locks and allocates nothing (unless url's host has capitals).
func (ix *Index) Newest(url string) (at time.Time, ok bool) {
	newest := ix.tagged.newest(url)
	if kinds := ix.kinds.Load() &^ kindBit(KindTag); kinds != 0 {
		mt := match{} // an object time of zero: older than every ban
		ix.lookup(kinds, url, nil, &mt)
		newest = max(newest, mt.newest)
	}
	if newest == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, newest), true
}

// lookup adds to mt every entry that may match an object with URL u and
// tags, for the kinds whose bits are set in kinds.
func (ix *Index) lookup(kinds uint32, u string, tags []string, mt *match) {
	if kinds&kindBit(KindAll) != 0 {
		mt.add(ix.load(KindAll, ""))
	}
	if kinds&kindBit(KindTag) != 0 {
		ix.lookupTags(tags, mt)
	}
	if u == "" {
		return
	}
	if kinds&kindBit(KindURL) != 0 {
		mt.add(ix.load(KindURL, u))
	}
	if kinds&kindBit(KindHost) != 0 {
		if h, ok := urlHost(u); ok {
			mt.add(ix.load(KindHost, h))
		}
	}
	if kinds&kindBit(KindPrefix) != 0 {
		ix.lookupPrefixes(u, mt)
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

// objectTime returns the time bans are compared with for the object m
// describes, in Unix nanoseconds: its ObtainedAt, when its representation
// was obtained from the origin. For a response fetched from the origin
// that is when its request left (the earlier of RequestTime and
// ResponseTime, RFC 9111 §4.2.3): a response whose request left before a
// purge may have been generated before it, however late it arrived, so it
// must be banned; one whose request left after the purge was generated
// after it (by an origin that had the purged content replaced first, as a
// purge presumes). For a copy fetched from a parent tier it is the time
// the parent's copy was obtained (Meta.OriginTime, which the edge inherits
// from an Outpost parent exactly, and from another cache through its Age),
// so a pre-purge copy handed on by a parent that had not applied the purge
// yet is as old here as it is there, and the purge catches it whenever it
// arrives — the order in which tiers apply a purge does not matter.
//
// The origin's Date is never used: an origin whose clock is behind would
// date every refetch before the purge, and ban it again (a refetch loop).
//
// A zero time, or one before 1970, counts as 0: older than every ban (a
// ban's time is positive), yet not older than an entry's empty side.
func objectTime(m *storage.Meta) int64 {
	t := m.ObtainedAt()
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return t.UnixNano()
}
