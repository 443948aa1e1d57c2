package edge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/purge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// applyLate applies, as the fleet's bus does, a purge issued at at on
// another node that reaches this one only now.
func applyLate(t *testing.T, ix *purge.Index, at time.Time, soft bool, bans ...purge.Ban) {
	t.Helper()
	added, err := ix.Apply(context.Background(), purge.Record{ID: fmt.Sprint("late-", at.UnixNano()), Time: at, Soft: soft, Bans: bans})
	require.NoError(t, err)
	require.True(t, added)
}

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// TestCopyFromALaggingParentIsCaughtByThePurge is the bug of issue 10: an
// edge that fetched, after a purge, the old copy of a parent that had not
// applied the purge yet stored it with its own fetch time, later than the
// purge, and served it as a fresh hit once the purge arrived. The copy
// keeps the time the parent obtained it, for every kind of ban, hard or
// soft.
func TestCopyFromALaggingParentIsCaughtByThePurge(t *testing.T) {
	kinds := []struct {
		name string
		ban  func(e *env) purge.Ban
	}{
		{"url", func(e *env) purge.Ban { return purge.Ban{Kind: purge.KindURL, Value: e.edge.URL + "/a.css"} }},
		{"prefix", func(e *env) purge.Ban { return purge.Ban{Kind: purge.KindPrefix, Value: e.edge.URL + "/"} }},
		{"tag", func(e *env) purge.Ban { return purge.Ban{Kind: purge.KindTag, Value: "css"} }},
		{"host", func(e *env) purge.Ban { return purge.Ban{Kind: purge.KindHost, Value: "127.0.0.1"} }},
		{"all", func(e *env) purge.Ban { return purge.Ban{Kind: purge.KindAll} }},
	}
	for _, k := range kinds {
		for _, soft := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/soft=%v", k.name, soft), func(t *testing.T) {
				var ix *purge.Index
				var purgedAt atomic.Int64 // what the parent was asked for
				var version atomic.Int64
				version.Store(1)
				var oldCopy time.Time // when the parent's old copy was obtained
				e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
					// A parent tier: its old copy until a child asks for
					// one no older than the purge.
					w.Header().Set("Cache-Control", "max-age=3600")
					w.Header().Set("Content-Type", "text/css")
					w.Header().Set("Surrogate-Key", "css")
					if v := r.Header.Get("Outpost-Purged-At"); v != "" {
						n, _ := strconv.ParseInt(v, 10, 64)
						purgedAt.Store(n)
						w.Header().Set("Outpost-Origin-Time", nanos(time.Unix(0, n).Add(time.Millisecond)))
						fmt.Fprintf(w, "v%d", version.Load())
						return
					}
					w.Header().Set("Outpost-Origin-Time", nanos(oldCopy))
					io.WriteString(w, "v1")
				}, withBans(t, &ix), func(c *edge.Config) { c.Tags = purge.ParseTags })
				oldCopy = e.clock.Now().Add(-time.Hour)
				purgeTime := e.clock.Now()
				version.Store(2) // the deploy: the origin changes, then the purge
				e.clock.Advance(time.Second)

				// The purge has reached neither the parent nor this edge:
				// the edge gets the parent's old copy, as it must.
				resp, body := e.get(t, "/a.css")
				require.Equal(t, "v1", body)
				require.Contains(t, resp.Header.Get("Cache-Status"), "stored")

				// The purge arrives here: the copy is as old as the
				// parent's, older than the purge.
				applyLate(t, ix, purgeTime, soft, k.ban(e))
				e.clock.Advance(time.Second)
				resp, body = e.get(t, "/a.css")
				assert.Equal(t, "v2", body)
				assert.NotContains(t, resp.Header.Get("Cache-Status"), "; hit")
				assert.Equal(t, purgeTime.UnixNano(), purgedAt.Load(), "the refetch asked for a copy no older than the purge")
				assert.Equal(t, int64(2), e.origin.hits.Load())
				resp, body = e.get(t, "/a.css")
				assert.Equal(t, "v2", body)
				assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit", "the copy fetched after the purge is kept")
			})
		}
	}
}

// TestOriginTimeGoesToInnerTiersOnly: a node tells a child tier (a request
// with CDN-Loop) when its copy was obtained from the origin, exactly, on
// hits, misses and 304s; a client never sees the field.
func TestOriginTimeGoesToInnerTiersOnly(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", "max-age=600", "Etag", `"e"`))
	fetched := e.clock.Now()
	resp, _ := e.get(t, "/o", "Cdn-Loop", "edge-b; node=1")
	assert.Equal(t, nanos(fetched), resp.Header.Get("Outpost-Origin-Time"), "miss")
	e.clock.Advance(30 * time.Second)
	resp, _ = e.get(t, "/o", "Cdn-Loop", "edge-b; node=1")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, nanos(fetched), resp.Header.Get("Outpost-Origin-Time"), "hit: the copy's time, not now")
	resp, _ = e.get(t, "/o", "Cdn-Loop", "edge-b; node=1", "If-None-Match", `"e"`)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Equal(t, nanos(fetched), resp.Header.Get("Outpost-Origin-Time"), "304")
	resp, _ = e.get(t, "/o")
	assert.NotContains(t, resp.Header, "Outpost-Origin-Time", "a client")
}

// TestOriginTimeOfAForeignCache: a response from a cache that is not
// Outpost is dated from its Age, a second earlier for its rounding; one
// from the origin, by the request; a parent's field is honoured over Age,
// and never dated after the request.
func TestOriginTimeOfAForeignCache(t *testing.T) {
	tests := []struct {
		name       string
		giveHeader []string
		giveBan    time.Duration // the purge, from the edge's request
		wantHits   int64         // at the origin: 1 while the copy stands
	}{
		{name: "origin: request after the purge", giveBan: -time.Millisecond, wantHits: 1},
		{name: "origin: request at the purge", giveBan: 0, wantHits: 1},
		{name: "origin: request before the purge", giveBan: time.Millisecond, wantHits: 2},
		// The refetch is as old (same Age): fetched twice more, with the
		// purge's time, coalesced then alone, then used but not stored.
		{name: "Age 30, purge 20s before", giveHeader: []string{"Age", "30"}, giveBan: -20 * time.Second, wantHits: 4},
		{name: "Age 30, purge 32s before", giveHeader: []string{"Age", "30"}, giveBan: -32 * time.Second, wantHits: 1},
		{name: "Age 0, purge half a second before", giveHeader: []string{"Age", "0"}, giveBan: -time.Second / 2, wantHits: 2},
		{name: "a parent's time wins over Age", giveHeader: []string{"Age", "30", "Outpost-Origin-Time", "-5s"}, giveBan: -10 * time.Second, wantHits: 1},
		{name: "a parent's time in the future is the request's", giveHeader: []string{"Outpost-Origin-Time", "+1h"}, giveBan: time.Millisecond, wantHits: 2},
		{name: "a malformed time is ignored", giveHeader: []string{"Age", "30", "Outpost-Origin-Time", "soon"}, giveBan: -20 * time.Second, wantHits: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ix *purge.Index
			var reqTime time.Time
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				for i := 0; i+1 < len(tt.giveHeader); i += 2 {
					v := tt.giveHeader[i+1]
					if d, err := time.ParseDuration(v); err == nil && tt.giveHeader[i] == "Outpost-Origin-Time" {
						v = nanos(reqTime.Add(d))
					}
					w.Header().Set(tt.giveHeader[i], v)
				}
				io.WriteString(w, "x")
			}, withBans(t, &ix))
			reqTime = e.clock.Now()
			e.get(t, "/f")
			e.clock.Advance(time.Second)
			applyLate(t, ix, reqTime.Add(tt.giveBan), false, purge.Ban{Kind: purge.KindURL, Value: e.edge.URL + "/f"})
			resp, body := e.get(t, "/f")
			assert.Equal(t, "x", body)
			assert.Equal(t, tt.wantHits, e.origin.hits.Load())
			if tt.wantHits == 1 {
				assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
			} else {
				assert.NotContains(t, resp.Header.Get("Cache-Status"), "; hit")
			}
		})
	}
}

// TestRevalidationDatesTheCopy: a 304 says the stored body is current as
// of the time the 304's copy was obtained: the origin's, when the request
// was sent; an Outpost parent's, its copy's time — which, from a parent that
// had not applied a purge, is still before it.
func TestRevalidationDatesTheCopy(t *testing.T) {
	tests := []struct {
		name       string
		give304    func(purgeTime time.Time) string // Outpost-Origin-Time of the 304; "" for none
		wantBanned bool
	}{
		{name: "from the origin", give304: func(time.Time) string { return "" }},
		{name: "from a parent with a copy obtained after the purge", give304: func(p time.Time) string { return nanos(p.Add(time.Millisecond)) }},
		{name: "from a parent with its pre-purge copy", give304: func(p time.Time) string { return nanos(p.Add(-time.Minute)) }, wantBanned: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ix *purge.Index
			var purgeTime time.Time
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set("Etag", `"e"`)
				if r.Header.Get("If-None-Match") == `"e"` {
					if v := tt.give304(purgeTime); v != "" {
						w.Header().Set("Outpost-Origin-Time", v)
					}
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "x")
			}, withBans(t, &ix))
			e.get(t, "/r")
			e.clock.Advance(time.Minute) // stale: the next request revalidates
			purgeTime = e.clock.Now()
			e.clock.Advance(time.Second)
			resp, _ := e.get(t, "/r")
			require.Contains(t, resp.Header.Get("Cache-Status"), "fwd-status=304")
			applyLate(t, ix, purgeTime, false, purge.Ban{Kind: purge.KindURL, Value: e.edge.URL + "/r"})
			resp, body := e.get(t, "/r")
			assert.Equal(t, "x", body)
			if tt.wantBanned {
				assert.NotContains(t, resp.Header.Get("Cache-Status"), "; hit")
			} else {
				assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
			}
		})
	}
}

// TestSlicesAndVariantsKeepTheParentsTime: slices of a large object and Vary
// variants fetched from a parent keep its copy's time too.
func TestSlicesAndVariantsKeepTheParentsTime(t *testing.T) {
	const size = 3 << 20
	big := strings.Repeat("s", size)
	var ix *purge.Index
	var oldCopy time.Time
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Outpost-Origin-Time", nanos(oldCopy))
		if r.URL.Path == "/v" {
			w.Header().Set("Vary", "Accept-Language")
			io.WriteString(w, "hello "+r.Header.Get("Accept-Language"))
			return
		}
		w.Header().Set("Etag", `"big"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(big))
	}, withBans(t, &ix), func(c *edge.Config) { c.SliceSize = 1 << 20; c.SliceThreshold = 2 << 20 })
	oldCopy = e.clock.Now().Add(-time.Hour)
	resp, body := e.get(t, "/big", "Range", "bytes=0-9")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, big[:10], body)
	resp, _ = e.get(t, "/big", "Range", "bytes=1048576-1048585")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	_, body = e.get(t, "/v", "Accept-Language", "fr")
	require.Equal(t, "hello fr", body)
	e.quiesce(t) // the slice's fetch outlives the 10 bytes asked for
	resp, _ = e.get(t, "/big", "Range", "bytes=1048576-1048585")
	require.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	hits := e.origin.hits.Load()

	applyLate(t, ix, oldCopy.Add(time.Minute), false, purge.Ban{Kind: purge.KindPrefix, Value: e.edge.URL + "/"})
	resp, _ = e.get(t, "/big", "Range", "bytes=1048576-1048585")
	assert.NotContains(t, resp.Header.Get("Cache-Status"), "; hit", "slice")
	resp, body = e.get(t, "/v", "Accept-Language", "fr")
	assert.Equal(t, "hello fr", body)
	assert.NotContains(t, resp.Header.Get("Cache-Status"), "; hit", "variant")
	assert.Greater(t, e.origin.hits.Load(), hits)
}

// TestChildPurgeTimeGoesUpTheTiers: a tier that has not applied a purge
// passes its child's purge time on to its own parent when the child's
// refetch misses, so three tiers are as safe as two.
func TestChildPurgeTimeGoesUpTheTiers(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", "max-age=600"))
	at := e.clock.Now().Add(-5 * time.Second)
	e.get(t, "/c", "Cdn-Loop", "edge-b; node=1", "Cache-Control", "max-age=5", "Outpost-Purged-At", nanos(at))
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, nanos(at), r.Header.Get("Outpost-Purged-At"))
	assert.Contains(t, r.Header.Get("Cache-Control"), "max-age=5")

	// A client's field is not passed on.
	e.get(t, "/d", "Outpost-Purged-At", nanos(at))
	r, _ = e.origin.lastRequest(t)
	assert.Empty(t, r.Header.Get("Outpost-Purged-At"))
}

// TestTagPurgeReachesTheRefetchOfAColdObject is the second bug of issue 10
// in its hardest form: after a tag purge, an edge that never held the
// object cannot know its tags before a response; the first response, the
// old copy of a lagging parent, shows them and its age, and the edge asks
// again for a copy no older than the purge instead of serving it.
func TestTagPurgeReachesTheRefetchOfAColdObject(t *testing.T) {
	var ix *purge.Index
	var asked []string
	var oldCopy time.Time
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "text/javascript")
		w.Header().Set("Cache-Tag", "release-7")
		asked = append(asked, r.Header.Get("Outpost-Purged-At"))
		if r.Header.Get("Outpost-Purged-At") == "" {
			w.Header().Set("Outpost-Origin-Time", nanos(oldCopy))
			io.WriteString(w, "old")
			return
		}
		io.WriteString(w, "new")
	}, withBans(t, &ix), func(c *edge.Config) { c.Tags = purge.ParseTags })
	oldCopy = e.clock.Now().Add(-time.Hour)
	rec, err := ix.Purge(context.Background(), purge.Request{Tags: []string{"release-7"}})
	require.NoError(t, err)
	e.clock.Advance(time.Second)

	resp, body := e.get(t, "/cold.js")
	assert.Equal(t, "new", body)
	assert.Equal(t, []string{"", nanos(rec.Time)}, asked, "asked again, no older than the purge")
	resp, body = e.get(t, "/cold.js")
	assert.Equal(t, "new", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")

	// Purged again, and removed by the sweeper: the refetch carries the
	// purge's time at once, though the URL was never purged by name and
	// its tags left with its copy.
	e.clock.Advance(time.Second)
	rec, err = ix.Purge(context.Background(), purge.Request{Tags: []string{"release-7"}})
	require.NoError(t, err)
	require.NoError(t, ix.Sweep(context.Background()))
	require.Equal(t, int64(1), ix.Recent(1)[0].Purged, "the sweeper removed the copy")
	e.clock.Advance(time.Second)
	e.get(t, "/cold.js")
	assert.Equal(t, nanos(rec.Time), asked[len(asked)-1])
	assert.Len(t, asked, 3)
}

// replayBans is a purge index whose fleet replay is still under way.
type replayBans struct {
	*purge.Index
	replaying atomic.Bool
}

func (b *replayBans) Replaying() bool { return b.replaying.Load() }

// TestNoStoredResponseWhileReplaying: a node that has not replayed the
// purges it missed serves nothing from storage: it fetches through, and
// keeps what it fetches, newer than any purge the replay brings.
func TestNoStoredResponseWhileReplaying(t *testing.T) {
	var ix *purge.Index
	rb := &replayBans{}
	var n atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "v%d", n.Add(1))
	}, withBans(t, &ix), func(c *edge.Config) { rb.Index = ix; c.Bans = rb })
	e.get(t, "/s")
	rb.replaying.Store(true)
	resp, body := e.get(t, "/s")
	assert.Equal(t, "v2", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=bypass")
	rb.replaying.Store(false)
	resp, body = e.get(t, "/s")
	assert.Equal(t, "v2", body, "what it fetched while replaying was kept")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
}

// TestSoftPurgeRevalidationAsksForACopyNoOlder: the background refresh of
// a soft-purged copy served under stale-while-revalidate asks the tier
// above for a copy no older than the purge, as a refetch does.
func TestSoftPurgeRevalidationAsksForACopyNoOlder(t *testing.T) {
	var ix *purge.Index
	e := newEnv(t, static("x", "Cache-Control", "max-age=600, stale-while-revalidate=600", "Etag", `"e"`), withBans(t, &ix))
	e.get(t, "/swr")
	e.clock.Advance(time.Second)
	rec, err := ix.Purge(context.Background(), purge.Request{URLs: []string{e.edge.URL + "/swr"}, Soft: true})
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	resp, _ := e.get(t, "/swr")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "stale-while-revalidate")
	e.quiesce(t)
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, nanos(rec.Time), r.Header.Get("Outpost-Purged-At"))
	assert.Equal(t, `"e"`, r.Header.Get("If-None-Match"))
	assert.Equal(t, int64(2), e.origin.hits.Load())
}
