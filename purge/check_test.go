package purge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkTests purge with giveReq at the clock's start and check one object,
// fetched at giveFetched relative to the purge.
var checkTests = []struct {
	name        string
	giveReq     Request
	giveURL     string
	giveTags    []string
	giveFetched time.Duration
	wantBanned  bool
	wantSoft    bool
}{
	{name: "url", giveReq: Request{URLs: []string{"http://static.example.com/a.png"}}, giveURL: "http://static.example.com/a.png", giveFetched: -time.Hour, wantBanned: true},
	{name: "url canonicalized", giveReq: Request{URLs: []string{"HTTP://Static.Example.COM/a.png#top"}}, giveURL: "http://static.example.com/a.png", giveFetched: -time.Hour, wantBanned: true},
	{name: "url other", giveReq: Request{URLs: []string{"http://static.example.com/a.png"}}, giveURL: "http://static.example.com/a.png?v=2", giveFetched: -time.Hour},
	{name: "url fetched after", giveReq: Request{URLs: []string{"http://static.example.com/a.png"}}, giveURL: "http://static.example.com/a.png", giveFetched: time.Second},
	{name: "url fetched at the ban", giveReq: Request{URLs: []string{"http://static.example.com/a.png"}}, giveURL: "http://static.example.com/a.png"},
	{name: "url soft", giveReq: Request{URLs: []string{"http://static.example.com/a.png"}, Soft: true}, giveURL: "http://static.example.com/a.png", giveFetched: -time.Nanosecond, wantBanned: true, wantSoft: true},

	{name: "prefix directory", giveReq: Request{Prefixes: []string{"http://static.example.com/img/"}}, giveURL: "http://static.example.com/img/2026/a.png", giveFetched: -time.Hour, wantBanned: true},
	{name: "prefix partial segment", giveReq: Request{Prefixes: []string{"http://static.example.com/img/a"}}, giveURL: "http://static.example.com/img/ab.png", giveFetched: -time.Hour, wantBanned: true},
	{name: "prefix whole URL", giveReq: Request{Prefixes: []string{"http://static.example.com/img/a.png?x=1"}}, giveURL: "http://static.example.com/img/a.png?x=1", giveFetched: -time.Hour, wantBanned: true},
	{name: "prefix into the query", giveReq: Request{Prefixes: []string{"http://static.example.com/img/a.png?x"}}, giveURL: "http://static.example.com/img/a.png?x=1", giveFetched: -time.Hour, wantBanned: true},
	{name: "prefix sibling", giveReq: Request{Prefixes: []string{"http://static.example.com/img/a"}}, giveURL: "http://static.example.com/img/ba.png", giveFetched: -time.Hour},
	{name: "prefix longer than URL", giveReq: Request{Prefixes: []string{"http://static.example.com/img/a.png/more"}}, giveURL: "http://static.example.com/img/a.png", giveFetched: -time.Hour},
	{name: "prefix origin only", giveReq: Request{Prefixes: []string{"http://static.example.com"}}, giveURL: "http://static.example.com/x", giveFetched: -time.Hour, wantBanned: true},
	{name: "prefix origin is not a host prefix", giveReq: Request{Prefixes: []string{"http://static.example.com"}}, giveURL: "http://static.example.com.evil.test/x", giveFetched: -time.Hour},
	{name: "prefix other scheme", giveReq: Request{Prefixes: []string{"https://static.example.com/"}}, giveURL: "http://static.example.com/x", giveFetched: -time.Hour},
	{name: "prefix fetched after", giveReq: Request{Prefixes: []string{"http://static.example.com/"}}, giveURL: "http://static.example.com/x", giveFetched: time.Minute},

	{name: "tag", giveReq: Request{Tags: []string{"product-42"}}, giveURL: "http://static.example.com/a.png", giveTags: []string{"home", "product-42"}, giveFetched: -time.Hour, wantBanned: true},
	{name: "tag is case-sensitive", giveReq: Request{Tags: []string{"Product-42"}}, giveURL: "http://static.example.com/a.png", giveTags: []string{"product-42"}, giveFetched: -time.Hour},
	{name: "tag untagged object", giveReq: Request{Tags: []string{"product-42"}}, giveURL: "http://static.example.com/a.png", giveFetched: -time.Hour},

	{name: "host", giveReq: Request{Hosts: []string{"static.example.com"}}, giveURL: "https://static.example.com/a.png", giveFetched: -time.Hour, wantBanned: true},
	{name: "host any port", giveReq: Request{Hosts: []string{"Static.Example.com"}}, giveURL: "http://static.example.com:8080/a.png", giveFetched: -time.Hour, wantBanned: true},
	{name: "host other", giveReq: Request{Hosts: []string{"static.example.com"}}, giveURL: "http://img.example.com/a.png", giveFetched: -time.Hour},
	{name: "host subdomain", giveReq: Request{Hosts: []string{"example.com"}}, giveURL: "http://static.example.com/a.png", giveFetched: -time.Hour},
	{name: "host ipv6", giveReq: Request{Hosts: []string{"2001:db8::1"}}, giveURL: "http://[2001:db8::1]:8080/a.png", giveFetched: -time.Hour, wantBanned: true},

	{name: "all", giveReq: Request{All: true}, giveURL: "http://anything.test/x", giveFetched: -time.Hour, wantBanned: true},
	{name: "all soft", giveReq: Request{All: true, Soft: true}, giveURL: "http://anything.test/x", giveFetched: -time.Hour, wantBanned: true, wantSoft: true},
	{name: "all fetched after", giveReq: Request{All: true}, giveURL: "http://anything.test/x", giveFetched: time.Nanosecond},
}

func TestCheck(t *testing.T) {
	for _, tt := range checkTests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			ix := newIndex(t, clk, Config{})
			rec := mustPurge(t, ix, tt.giveReq)
			m := &storage.Meta{URL: tt.giveURL, Tags: tt.giveTags, ResponseTime: rec.Time.Add(tt.giveFetched)}
			at, soft, banned := ix.Check(m)
			assert.Equal(t, tt.wantBanned, banned, "Check(%s fetched %v from %+v)", tt.giveURL, tt.giveFetched, tt.giveReq)
			assert.Equal(t, tt.wantSoft, soft, "soft")
			if tt.wantBanned {
				assert.True(t, at.Equal(rec.Time), "at = %v, want %v", at, rec.Time)
			} else {
				assert.True(t, at.IsZero(), "at = %v for no ban", at)
			}
		})
	}
}

func TestCheckNoBans(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	_, _, banned := ix.Check(&storage.Meta{URL: "http://a.test/"})
	assert.False(t, banned)
	_, _, banned = ix.Check(nil)
	assert.False(t, banned)
	assert.Zero(t, testing.AllocsPerRun(100, func() { ix.Check(&storage.Meta{URL: "http://a.test/"}) }))
}

func TestCheckZeroResponseTimeIsOlderThanEveryBan(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	mustPurge(t, ix, Request{Tags: []string{"t"}})
	_, _, banned := ix.Check(&storage.Meta{URL: "http://a.test/", Tags: []string{"t"}})
	assert.True(t, banned)
}

func TestCheckNewestBanWins(t *testing.T) {
	const u = "http://static.example.com/img/a.png"
	tests := []struct {
		name       string
		give       []Request // issued a minute apart
		giveAge    time.Duration
		wantBanned bool
		wantSoft   bool
		wantAt     int // index into give
	}{
		{name: "two hard", give: []Request{{URLs: []string{u}}, {Tags: []string{"t"}}}, giveAge: time.Hour, wantBanned: true, wantAt: 1},
		{name: "soft after hard stays hard", give: []Request{{URLs: []string{u}}, {Prefixes: []string{"http://static.example.com/"}, Soft: true}}, giveAge: time.Hour, wantBanned: true, wantAt: 1},
		{name: "hard after soft", give: []Request{{URLs: []string{u}, Soft: true}, {Tags: []string{"t"}}}, giveAge: time.Hour, wantBanned: true, wantAt: 1},
		{name: "two soft", give: []Request{{URLs: []string{u}, Soft: true}, {Hosts: []string{"static.example.com"}, Soft: true}}, giveAge: time.Hour, wantBanned: true, wantSoft: true, wantAt: 1},
		{name: "fetched between: only the later soft one", give: []Request{{URLs: []string{u}}, {All: true, Soft: true}}, giveAge: 30 * time.Second, wantBanned: true, wantSoft: true, wantAt: 1},
		{name: "same target again", give: []Request{{URLs: []string{u}}, {URLs: []string{u}}}, giveAge: time.Hour, wantBanned: true, wantAt: 1},
		{name: "same target, hard then soft, fetched between", give: []Request{{URLs: []string{u}}, {URLs: []string{u}, Soft: true}}, giveAge: 30 * time.Second, wantBanned: true, wantSoft: true, wantAt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			ix := newIndex(t, clk, Config{})
			var recs []Record
			for i, req := range tt.give {
				if i > 0 {
					clk.Advance(time.Minute)
				}
				recs = append(recs, mustPurge(t, ix, req))
			}
			m := &storage.Meta{URL: u, Tags: []string{"t"}, ResponseTime: clk.Now().Add(-tt.giveAge)}
			at, soft, banned := ix.Check(m)
			assert.Equal(t, tt.wantBanned, banned, "banned")
			assert.Equal(t, tt.wantSoft, soft, "soft")
			assert.True(t, at.Equal(recs[tt.wantAt].Time), "at = %v, want %v", at, recs[tt.wantAt].Time)
		})
	}
}

func TestCheckAllocatesNothing(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	mustPurge(t, ix, Request{
		URLs:     []string{"http://static.example.com/a.png"},
		Prefixes: []string{"http://static.example.com/img/", "http://static.example.com/img/a"},
		Tags:     []string{"t1"},
		Hosts:    []string{"static.example.com"},
		All:      true,
	})
	m := &storage.Meta{URL: "http://static.example.com/img/a.png?x=1", Tags: []string{"t1", "t2"}}
	_, _, banned := ix.Check(m)
	require.True(t, banned)
	assert.Zero(t, testing.AllocsPerRun(100, func() { ix.Check(m) }))
}

func TestApply(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{})
	ctx := context.Background()
	rec := Record{ID: "fra-1/42", Time: clk.Now().Add(-time.Minute), Bans: []Ban{{Kind: KindTag, Value: "t"}, {Kind: KindURL, Value: "http://a.test/x"}}}

	added, err := ix.Apply(ctx, rec)
	require.NoError(t, err)
	assert.True(t, added)
	added, err = ix.Apply(ctx, rec)
	require.NoError(t, err)
	assert.False(t, added, "the same ID applied twice")
	assert.Equal(t, 2, ix.Len())
	require.Len(t, ix.Recent(10), 1)

	at, _, banned := ix.Check(&storage.Meta{URL: "http://a.test/x", ResponseTime: rec.Time.Add(-time.Second)})
	assert.True(t, banned)
	assert.True(t, at.Equal(rec.Time), "the original time is kept: %v, want %v", at, rec.Time)
	_, _, banned = ix.Check(&storage.Meta{URL: "http://a.test/x", ResponseTime: rec.Time.Add(time.Second)})
	assert.False(t, banned, "fetched after the original time")
}

func TestApplyTakesFutureTimeAsNow(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{})
	_, err := ix.Apply(context.Background(), Record{ID: "skewed", Time: clk.Now().Add(time.Hour), Bans: []Ban{{Kind: KindAll}}})
	require.NoError(t, err)
	_, _, banned := ix.Check(&storage.Meta{URL: "http://a.test/", ResponseTime: clk.Now().Add(time.Second)})
	assert.False(t, banned, "an object fetched after the purge arrived")
	assert.True(t, ix.Recent(1)[0].Time.Equal(clk.Now()))
}

func TestApplyRefusesMalformedRecords(t *testing.T) {
	now := newClock().Now()
	tests := []struct {
		name string
		give Record
		want string
	}{
		{"no id", Record{Time: now, Bans: []Ban{{Kind: KindAll}}}, "no id"},
		{"no time", Record{ID: "x", Bans: []Ban{{Kind: KindAll}}}, "no time"},
		{"no bans", Record{ID: "x", Time: now}, "no bans"},
		{"bad kind", Record{ID: "x", Time: now, Bans: []Ban{{Kind: 9, Value: "v"}}}, "invalid kind"},
		{"relative url", Record{ID: "x", Time: now, Bans: []Ban{{Kind: KindURL, Value: "/a"}}}, "not an absolute"},
		{"prefix without path", Record{ID: "x", Time: now, Bans: []Ban{{Kind: KindPrefix, Value: "http://a.test"}}}, "not a canonical URL prefix"},
		{"host with capitals", Record{ID: "x", Time: now, Bans: []Ban{{Kind: KindHost, Value: "A.test"}}}, "not a canonical host"},
		{"tag with space", Record{ID: "x", Time: now, Bans: []Ban{{Kind: KindTag, Value: "a b"}}}, "space"},
		{"all with value", Record{ID: "x", Time: now, Bans: []Ban{{Kind: KindAll, Value: "v"}}}, "has value"},
		{"repeated ban", Record{ID: "x", Time: now, Bans: []Ban{{Kind: KindAll}, {Kind: KindAll}}}, "repeats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newIndex(t, newClock(), Config{})
			_, err := ix.Apply(context.Background(), tt.give)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Contains(t, ve.Reason, tt.want)
			assert.Zero(t, ix.Len())
		})
	}
}

func TestRecent(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{RecentSize: 3})
	var ids []string
	for i := range 5 {
		clk.Advance(time.Second)
		ids = append(ids, mustPurge(t, ix, Request{Tags: []string{string(rune('a' + i))}}).ID)
	}
	var got []string
	for _, r := range ix.Recent(10) {
		got = append(got, r.ID)
	}
	assert.Equal(t, []string{ids[4], ids[3], ids[2]}, got, "newest first, RecentSize kept")
	assert.Len(t, ix.Recent(1), 1)
	assert.Empty(t, ix.Recent(0))
}

func TestNewNamesTheBadField(t *testing.T) {
	tier := newMemory(t)
	tests := []struct {
		name string
		give Config
		want string
	}{
		{"no canonicalize", Config{Tier: tier}, "Config.Canonicalize"},
		{"no tier", Config{Canonicalize: canonicalize}, "Config.Tier"},
		{"tier without walk", Config{Canonicalize: canonicalize, Tier: struct{ storage.Tier }{tier}}, "storage.Walker"},
		{"negative interval", Config{Canonicalize: canonicalize, Tier: tier, Interval: -1}, "Config.Interval"},
		{"negative commit delay", Config{Canonicalize: canonicalize, Tier: tier, CommitDelay: -1}, "Config.CommitDelay"},
		{"negative soft ttl", Config{Canonicalize: canonicalize, Tier: tier, SoftTTL: -1}, "Config.SoftTTL"},
		{"negative recent size", Config{Canonicalize: canonicalize, Tier: tier, RecentSize: -1}, "Config.RecentSize"},
		{"negative tagged urls", Config{Canonicalize: canonicalize, Tier: tier, TaggedURLs: -1}, "Config.TaggedURLs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestClosedIndexRefusesPurges(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	require.NoError(t, ix.Close())
	_, err := ix.Purge(context.Background(), Request{All: true})
	assert.ErrorIs(t, err, ErrClosed)
	assert.NoError(t, ix.Close(), "a second Close")
}

func TestCheckComparesTheEarlierOfRequestAndResponseTime(t *testing.T) {
	const u = "http://a.test/x"
	// Offsets from the ban's time; noTime leaves the field zero.
	const noTime = time.Duration(1<<63 - 1)
	tests := []struct {
		name         string
		giveRequest  time.Duration
		giveResponse time.Duration
		giveAge      time.Duration
		wantBanned   bool
	}{
		{name: "both before", giveRequest: -2 * time.Second, giveResponse: -time.Second, wantBanned: true},
		{name: "request before, response after", giveRequest: -time.Second, giveResponse: time.Second, wantBanned: true},
		{name: "request at the ban", giveRequest: 0, giveResponse: time.Second},
		{name: "both after", giveRequest: time.Second, giveResponse: 2 * time.Second},
		{name: "no request time, response before", giveRequest: noTime, giveResponse: -time.Second, wantBanned: true},
		{name: "no request time, response after", giveRequest: noTime, giveResponse: time.Second},
		{name: "request time after response time", giveRequest: 2 * time.Second, giveResponse: -time.Second, wantBanned: true},
		{name: "no response time", giveRequest: time.Second, giveResponse: noTime, wantBanned: true},
		// An origin behind another cache sends Age on every response: a
		// refetch dated back by it would be banned again, forever.
		{name: "age is not subtracted", giveRequest: time.Second, giveResponse: 2 * time.Second, giveAge: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			ix := newIndex(t, clk, Config{})
			rec := mustPurge(t, ix, Request{URLs: []string{u}})
			at := func(d time.Duration) time.Time {
				if d == noTime {
					return time.Time{}
				}
				return rec.Time.Add(d)
			}
			m := &storage.Meta{URL: u, RequestTime: at(tt.giveRequest), ResponseTime: at(tt.giveResponse), InitialAge: tt.giveAge}
			_, _, banned := ix.Check(m)
			assert.Equal(t, tt.wantBanned, banned, "Check(request %v, response %v after the ban)", tt.giveRequest, tt.giveResponse)
		})
	}
}

// TestCheckComparesWhenTheRepresentationWasObtained: a copy fetched from a
// parent tier carries the time the parent's copy was obtained
// (OriginTime); that, not when this node fetched it, is what a ban is
// compared with, for every kind of ban.
func TestCheckComparesWhenTheRepresentationWasObtained(t *testing.T) {
	const u = "http://a.test/img/x.png"
	tests := []struct {
		name       string
		giveOrigin time.Duration // from the ban's time; 0 leaves it unset
		wantBanned bool
	}{
		{name: "a parent's pre-purge copy, fetched after the purge", giveOrigin: -time.Minute, wantBanned: true},
		{name: "a parent's copy obtained after the purge", giveOrigin: time.Millisecond},
		{name: "no origin time: when this node fetched it", giveOrigin: 0},
		// A parent's clock ahead of ours cannot make a copy younger than
		// the request that fetched it.
		{name: "origin time after the fetch", giveOrigin: time.Hour},
	}
	reqs := []Request{
		{URLs: []string{u}}, {URLs: []string{u}, Soft: true}, {Prefixes: []string{"http://a.test/img/"}},
		{Tags: []string{"t"}}, {Hosts: []string{"a.test"}}, {All: true},
	}
	for _, tt := range tests {
		for _, req := range reqs {
			t.Run(fmt.Sprintf("%s/%+v", tt.name, req), func(t *testing.T) {
				clk := newClock()
				ix := newIndex(t, clk, Config{})
				rec := mustPurge(t, ix, req)
				m := &storage.Meta{URL: u, Tags: []string{"t"}, RequestTime: rec.Time.Add(time.Second), ResponseTime: rec.Time.Add(2 * time.Second)}
				if tt.giveOrigin != 0 {
					m.OriginTime = rec.Time.Add(tt.giveOrigin)
				}
				at, soft, banned := ix.Check(m)
				assert.Equal(t, tt.wantBanned, banned)
				if banned {
					assert.True(t, at.Equal(rec.Time), "at = %v, want %v", at, rec.Time)
					assert.Equal(t, req.Soft, soft)
				}
			})
		}
	}
}

// TestNewestRemembersTagBans: a tag purge's time reaches the refetch of a
// URL once a lookup (Check) or a walk met a stored copy the tag matched, so
// the tier above is asked for a copy no older than the purge even after
// the copy, and its tags, are gone.
func TestNewestRemembersTagBans(t *testing.T) {
	const u, v = "http://a.test/x", "http://a.test/y"
	clk := newClock()
	tier := newMemory(t)
	ix := newIndex(t, clk, Config{Tier: tier, CommitDelay: time.Minute})
	old := clk.Now().Add(-time.Hour)
	store(t, tier, storage.Meta{Key: v, URL: v, Tags: []string{"t"}, ResponseTime: old})
	rec := mustPurge(t, ix, Request{Tags: []string{"t"}})
	_, ok := ix.Newest(u)
	assert.False(t, ok, "no copy of u met yet")

	_, _, banned := ix.Check(&storage.Meta{URL: u, Tags: []string{"t"}, ResponseTime: old})
	require.True(t, banned)
	at, ok := ix.Newest(u)
	assert.True(t, ok && at.Equal(rec.Time), "Newest(u) = %v, %v after a lookup met it", at, ok)

	require.NoError(t, ix.Sweep(context.Background()))
	assert.False(t, stored(t, tier, v))
	at, ok = ix.Newest(v)
	assert.True(t, ok && at.Equal(rec.Time), "Newest(v) = %v, %v after the sweeper removed it", at, ok)
	fresh := &storage.Meta{URL: u, Tags: []string{"t"}, ResponseTime: clk.Advance(time.Second)}
	_, _, banned = ix.Check(fresh)
	assert.False(t, banned, "a copy fetched after the purge")

	clk.Advance(time.Minute)
	require.NoError(t, ix.Sweep(context.Background()))
	require.Zero(t, ix.Len())
	_, ok = ix.Newest(u)
	assert.False(t, ok, "forgotten once the tag ban retired")
}

func TestNewestRemembersABoundedNumberOfTaggedURLs(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{TaggedURLs: 2})
	mustPurge(t, ix, Request{Tags: []string{"t"}})
	for _, u := range []string{"http://a.test/1", "http://a.test/2", "http://a.test/3", "http://a.test/2"} {
		ix.Check(&storage.Meta{URL: u, Tags: []string{"t"}})
	}
	_, ok := ix.Newest("http://a.test/1")
	assert.False(t, ok, "the first URL noted is forgotten")
	for _, u := range []string{"http://a.test/2", "http://a.test/3"} {
		_, ok := ix.Newest(u)
		assert.True(t, ok, "Newest(%q)", u)
	}
}

func TestCheckSoftBanOnObjectWithoutTimesIsSoft(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	rec := mustPurge(t, ix, Request{Tags: []string{"t"}, Soft: true})
	at, soft, banned := ix.Check(&storage.Meta{URL: "http://a.test/", Tags: []string{"t"}})
	assert.True(t, banned, "banned")
	assert.True(t, soft, "an entry's empty hard side made a soft ban hard")
	assert.True(t, at.Equal(rec.Time), "at = %v, want %v", at, rec.Time)
}

func TestNewest(t *testing.T) {
	const u = "http://static.example.com/img/a.png?w=1"
	tests := []struct {
		name    string
		give    []Request // issued a minute apart
		giveURL string
		wantAt  int // index into give; -1 for none
	}{
		{name: "no bans", giveURL: u, wantAt: -1},
		{name: "url", give: []Request{{URLs: []string{u}}}, giveURL: u, wantAt: 0},
		{name: "url soft", give: []Request{{URLs: []string{u}, Soft: true}}, giveURL: u, wantAt: 0},
		{name: "other url", give: []Request{{URLs: []string{u + "0"}}}, giveURL: u, wantAt: -1},
		{name: "prefix", give: []Request{{Prefixes: []string{"http://static.example.com/img/a"}}}, giveURL: u, wantAt: 0},
		{name: "prefix of another", give: []Request{{Prefixes: []string{"http://static.example.com/img/b"}}}, giveURL: u, wantAt: -1},
		{name: "host", give: []Request{{Hosts: []string{"static.example.com"}}}, giveURL: u, wantAt: 0},
		{name: "host any port", give: []Request{{Hosts: []string{"static.example.com"}}}, giveURL: "https://static.example.com:8443/", wantAt: 0},
		{name: "all", give: []Request{{All: true}}, giveURL: u, wantAt: 0},
		{name: "tag is not known before a copy was met", give: []Request{{Tags: []string{"t"}}}, giveURL: u, wantAt: -1},
		{name: "newest of several", give: []Request{{URLs: []string{u}}, {Hosts: []string{"static.example.com"}, Soft: true}, {Tags: []string{"t"}}}, giveURL: u, wantAt: 1},
		{name: "empty url: only bans on everything", give: []Request{{All: true}, {Hosts: []string{"static.example.com"}}}, giveURL: "", wantAt: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			ix := newIndex(t, clk, Config{})
			var recs []Record
			for _, req := range tt.give {
				recs = append(recs, mustPurge(t, ix, req))
				clk.Advance(time.Minute)
			}
			at, ok := ix.Newest(tt.giveURL)
			if tt.wantAt < 0 {
				assert.False(t, ok, "Newest(%q) after %+v", tt.giveURL, tt.give)
				assert.True(t, at.IsZero(), "at = %v for no ban", at)
				return
			}
			assert.True(t, ok, "Newest(%q) after %+v", tt.giveURL, tt.give)
			assert.True(t, at.Equal(recs[tt.wantAt].Time), "Newest(%q) = %v, want %v", tt.giveURL, at, recs[tt.wantAt].Time)
		})
	}
}

func TestNewestForgetsRetiredBans(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{CommitDelay: time.Minute})
	mustPurge(t, ix, Request{Prefixes: []string{"http://a.test/"}})
	_, ok := ix.Newest("http://a.test/x")
	require.True(t, ok)
	clk.Advance(time.Minute)
	require.NoError(t, ix.Sweep(context.Background()))
	require.Zero(t, ix.Len())
	_, ok = ix.Newest("http://a.test/x")
	assert.False(t, ok, "a retired ban")
}

func TestNewestAllocatesNothing(t *testing.T) {
	ix := newIndex(t, newClock(), Config{})
	const u = "http://static.example.com/img/a.png?x=1"
	assert.Zero(t, testing.AllocsPerRun(100, func() { ix.Newest(u) }), "no bans")
	mustPurge(t, ix, Request{
		URLs:     []string{u},
		Prefixes: []string{"http://static.example.com/img/", "http://static.example.com/img/a"},
		Tags:     []string{"t1"},
		Hosts:    []string{"static.example.com"},
		All:      true,
	})
	_, ok := ix.Newest(u)
	require.True(t, ok)
	assert.Zero(t, testing.AllocsPerRun(100, func() { ix.Newest(u) }))
}

func TestPurgeTimeNeverGoesBackwards(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{Dir: t.TempDir()})
	// Fetched, then purged by tag; then the clock steps back a minute.
	fetched := &storage.Meta{URL: "http://a.test/x", ResponseTime: clk.Now().Add(-30 * time.Second)}
	first := mustPurge(t, ix, Request{Tags: []string{"first"}})
	clk.Advance(-time.Minute)

	second := mustPurge(t, ix, Request{URLs: []string{fetched.URL}})
	assert.True(t, second.Time.Equal(first.Time), "second purge at %v, first at %v", second.Time, first.Time)
	_, _, banned := ix.Check(fetched)
	assert.True(t, banned, "an object fetched before the second purge, stamped before the step")

	// A purge taken from the fleet counts, across a restart too.
	applied := Record{ID: "remote", Time: clk.Advance(time.Hour), Bans: []Ban{{Kind: KindTag, Value: "remote"}}}
	_, err := ix.Apply(context.Background(), applied)
	require.NoError(t, err)
	clk.Advance(-time.Hour)
	ix = reopen(t, ix)
	third := mustPurge(t, ix, Request{Tags: []string{"third"}})
	assert.True(t, third.Time.Equal(applied.Time), "third purge at %v, after one applied at %v", third.Time, applied.Time)

	// Once the clock is past them, purges take its time again.
	clk.Advance(2 * time.Hour)
	fourth := mustPurge(t, ix, Request{Tags: []string{"fourth"}})
	assert.True(t, fourth.Time.Equal(clk.Now()), "fourth purge at %v, now %v", fourth.Time, clk.Now())
}
