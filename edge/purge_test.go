package edge_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/purge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withBans wires a real purge index into the edge under test.
func withBans(t *testing.T, ix **purge.Index) func(*edge.Config) {
	return func(c *edge.Config) {
		var err error
		*ix, err = purge.New(purge.Config{
			Canonicalize: func(s string) (string, error) { return s, nil },
			Tier:         c.Store,
			Now:          c.Now,
		})
		require.NoError(t, err)
		t.Cleanup(func() { (*ix).Close() })
		c.Bans = *ix
	}
}

// TestPurgeDuringFillIsNotStored: a hard purge issued while a fill is in
// flight keeps its response out of the cache (the response may predate the
// purge). A client whose response had not begun when the purge came gets
// one fetched after it; one already receiving the body gets it whole.
func TestPurgeDuringFillIsNotStored(t *testing.T) {
	t.Run("before the response", func(t *testing.T) {
		var ix *purge.Index
		release := make(chan struct{})
		var n atomic.Int64
		e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				<-release
			}
			w.Header().Set("Cache-Control", "max-age=600")
			io.WriteString(w, "v"+strconv.FormatInt(n.Load(), 10))
		}, withBans(t, &ix))
		done := make(chan string, 1)
		go func() { _, b := e.get(t, "/p"); done <- b }()
		require.Eventually(t, func() bool { return n.Load() == 1 }, 5*time.Second, time.Millisecond)
		e.clock.Advance(time.Second)
		_, err := ix.Purge(context.Background(), purge.Request{URLs: []string{e.edge.URL + "/p"}})
		require.NoError(t, err)
		close(release)
		assert.Equal(t, "v2", <-done, "the response fetched across the purge is not used: fetched again")
		e.quiesce(t)
		resp, body := e.get(t, "/p")
		assert.Equal(t, "v2", body)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "the refetch was stored")
		assert.Equal(t, int64(2), e.origin.hits.Load())
	})
	t.Run("during the body", func(t *testing.T) {
		var ix *purge.Index
		release := make(chan struct{})
		var n atomic.Int64
		e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
			v := "v" + strconv.FormatInt(n.Add(1), 10)
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Content-Length", "4")
			io.WriteString(w, v)
			if v == "v1" {
				w.(http.Flusher).Flush()
				<-release
			}
			io.WriteString(w, "..")
		}, withBans(t, &ix))
		req, err := http.NewRequest(http.MethodGet, e.edge.URL+"/p", nil)
		require.NoError(t, err)
		resp, err := e.client.Do(req) // the header is sent: the body is under way
		require.NoError(t, err)
		defer resp.Body.Close()
		e.clock.Advance(time.Second)
		_, err = ix.Purge(context.Background(), purge.Request{URLs: []string{e.edge.URL + "/p"}})
		require.NoError(t, err)
		close(release)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, "v1..", string(b), "the client that was receiving it gets it whole")
		e.quiesce(t)
		resp2, body := e.get(t, "/p")
		assert.Equal(t, "v2..", body, "the response fetched across the purge was not stored")
		assert.Contains(t, resp2.Header.Get("Cache-Status"), "fwd=miss")
	})
}

// TestRefetchAfterPurgeAsksForAFreshCopy: the refetch of a purged URL asks
// the tier above for a copy no older than the purge, so a shield that has
// not applied it yet cannot hand back what was purged.
func TestRefetchAfterPurgeAsksForAFreshCopy(t *testing.T) {
	var ix *purge.Index
	e := newEnv(t, static("x", "Cache-Control", "max-age=600"), withBans(t, &ix))
	e.get(t, "/q")
	e.clock.Advance(time.Second)
	_, err := ix.Purge(context.Background(), purge.Request{URLs: []string{e.edge.URL + "/q"}})
	require.NoError(t, err)
	e.clock.Advance(30 * time.Second)
	resp, _ := e.get(t, "/q")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss")
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, "max-age=30", r.Header.Get("Cache-Control"))
}

func TestNegativeTTLFloor(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	}, func(c *edge.Config) { c.NegativeTTL = 30 * time.Second })
	e.get(t, "/missing")
	resp, _ := e.get(t, "/missing")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "test-edge; hit; ttl=30", resp.Header.Get("Cache-Status"))
	e.clock.Advance(31 * time.Second)
	e.get(t, "/missing")
	assert.Equal(t, int64(2), e.origin.hits.Load())
}

// TestViaOnRequestsOnly: requests sent upstream carry this node in Via
// (RFC 9110 §7.6.3: a gateway MUST); responses pass the upstream's Via on
// unchanged (a gateway MAY add itself; Cache-Status names the node).
func TestViaOnRequestsOnly(t *testing.T) {
	var via atomic.Value
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		via.Store(r.Header.Get("Via"))
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Via", "1.1 origin-proxy")
		io.WriteString(w, "x")
	})
	for range 2 {
		resp, body := e.get(t, "/via")
		assert.Equal(t, "x", body)
		assert.Equal(t, "1.1 origin-proxy", resp.Header.Get("Via"))
	}
	assert.Equal(t, "1.1 test-edge", via.Load())
}

// TestPurgedAtFromAChildTier: a request from another tier (CDN-Loop) with
// Outpost-Purged-At is served a stored copy fetched after that time even
// though its max-age=0 would refuse it, and revalidates one fetched
// before, passing the purge time on; a client's Outpost-Purged-At never
// goes upstream.
func TestPurgedAtFromAChildTier(t *testing.T) {
	var sent atomic.Value
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		sent.Store(r.Header.Get("Outpost-Purged-At"))
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "x")
	})
	e.get(t, "/a") // stored now
	stored := e.clock.Now()
	e.clock.Advance(30 * time.Second)
	child := func(at time.Time) string {
		resp, _ := e.get(t, "/a", "Cdn-Loop", "edge-b; node=1", "Cache-Control", "max-age=0",
			"Outpost-Purged-At", strconv.FormatInt(at.UnixNano(), 10))
		return resp.Header.Get("Cache-Status")
	}
	assert.Contains(t, child(stored.Add(-time.Second)), "hit", "fetched after the purge: served")
	assert.Equal(t, int64(1), e.origin.hits.Load())
	assert.Contains(t, child(stored.Add(time.Second)), "fwd=request", "fetched before the purge: refetched")
	assert.Equal(t, int64(2), e.origin.hits.Load())
	assert.Equal(t, strconv.FormatInt(stored.Add(time.Second).UnixNano(), 10), sent.Load(),
		"the child's purge time is passed on to the tiers above, which may not have applied it either")

	// Without CDN-Loop the field means nothing: max-age=0 revalidates, and
	// the client's field is not passed on.
	e.clock.Advance(30 * time.Second)
	resp, _ := e.get(t, "/a", "Cache-Control", "max-age=0", "Outpost-Purged-At", "1")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=request")
	assert.Equal(t, "", sent.Load(), "a client's field")
}
