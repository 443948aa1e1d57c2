package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withPrivacy sets the catch-all host's privacy policy.
func withPrivacy(p edge.Privacy) func(*edge.Config) {
	return func(c *edge.Config) { c.Hosts[0].Privacy = p }
}

// sessionOrigin answers max-age=60 with a cookie of its own for every
// request: sid=1, sid=2, ...
func sessionOrigin(extra ...string) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for i := 0; i+1 < len(extra); i += 2 {
			w.Header().Set(extra[i], extra[i+1])
		}
		w.Header().Set("Set-Cookie", fmt.Sprintf("sid=%d", n.Add(1)))
		io.WriteString(w, "page")
	}
}

// TestSetCookieNeverCrossesClients: whatever the host's policy, a cookie
// reaches only the client whose request fetched it. By default the
// response is not stored (each client fetches its own, Cache-Status says
// why); with SetCookieStrip it is stored without the cookie.
func TestSetCookieNeverCrossesClients(t *testing.T) {
	tests := []struct {
		name       string
		give       edge.SetCookiePolicy
		wantCS     []string // Cache-Status of the two requests
		wantCookie []string
		wantHits   int64
	}{
		{"pass (default)", edge.SetCookiePass,
			[]string{`test-edge; fwd=miss; fwd-status=200; detail="set-cookie"`, `test-edge; fwd=bypass; fwd-status=200; detail="set-cookie"`},
			[]string{"sid=1", "sid=2"}, 2},
		{"strip", edge.SetCookieStrip,
			[]string{"test-edge; fwd=miss; fwd-status=200; stored", "test-edge; hit; ttl=60"},
			[]string{"sid=1", ""}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessionOrigin(), withPrivacy(edge.Privacy{SetCookie: tt.give}))
			for i := range 2 {
				resp, body := e.get(t, "/p")
				assert.Equal(t, "page", body)
				assert.Equal(t, tt.wantCS[i], resp.Header.Get("Cache-Status"), "request %d", i+1)
				assert.Equal(t, tt.wantCookie[i], resp.Header.Get("Set-Cookie"), "request %d", i+1)
			}
			assert.Equal(t, tt.wantHits, e.origin.hits.Load(), "origin requests")
		})
	}
}

// TestSetCookieNotSharedWithWaiters: clients that join a fetch whose
// response sets a cookie never receive that cookie, under either policy,
// and not when the response is an error (which the waiters otherwise
// share, to shield a failing origin).
func TestSetCookieNotSharedWithWaiters(t *testing.T) {
	for _, tt := range []struct {
		policy edge.SetCookiePolicy
		status int
	}{{edge.SetCookiePass, 200}, {edge.SetCookieStrip, 200}, {edge.SetCookiePass, 503}, {edge.SetCookieStrip, 503}} {
		t.Run(fmt.Sprintf("%s/%d", tt.policy, tt.status), func(t *testing.T) {
			const clients = 8
			release := make(chan struct{})
			var n atomic.Int64
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				<-release
				if tt.status == 200 {
					w.Header().Set("Cache-Control", "max-age=60")
				}
				w.Header().Set("Set-Cookie", fmt.Sprintf("sid=%d", n.Add(1)))
				w.WriteHeader(tt.status)
				io.WriteString(w, "page")
			}, withPrivacy(edge.Privacy{SetCookie: tt.policy}))
			g := &gate{next: e.edge.Config.Handler}
			e.edge.Config.Handler = g
			cookies := make([]string, clients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Go(func() {
					resp, body := e.get(t, "/w")
					assert.Equal(t, tt.status, resp.StatusCode)
					assert.Equal(t, "page", body)
					cookies[i] = resp.Header.Get("Set-Cookie")
				})
			}
			waitFor(t, "all clients inside the edge", func() bool { return g.entered.Load() == clients })
			waitFor(t, "the fill to reach the origin", func() bool { return e.origin.hits.Load() >= 1 })
			close(release)
			wg.Wait()
			seen := map[string]int{}
			for _, c := range cookies {
				if c != "" {
					seen[c]++
				}
			}
			for c, n := range seen {
				assert.Equal(t, 1, n, "cookie %q reached %d clients", c, n)
			}
			assert.Len(t, seen, int(e.origin.hits.Load()), "each origin response's cookie reached its own client")
		})
	}
}

// TestHiddenSetCookieIsStored: no-cache="Set-Cookie" (RFC 9111 §5.2.2.4)
// lets the rest of the response be stored under the default policy; the
// cookie goes to the fetching client only.
func TestHiddenSetCookieIsStored(t *testing.T) {
	e := newEnv(t, sessionOrigin("Cache-Control", `max-age=60, no-cache="Set-Cookie"`))
	resp, _ := e.get(t, "/h")
	assert.Equal(t, "sid=1", resp.Header.Get("Set-Cookie"))
	resp, _ = e.get(t, "/h")
	assert.Equal(t, "test-edge; hit; ttl=60", resp.Header.Get("Cache-Status"))
	assert.Empty(t, resp.Header.Get("Set-Cookie"))
}

// TestCookieRequestsNeedExplicitFreshness: a response to a request that
// carried Cookie is stored only under the origin's explicit freshness,
// never by heuristic freshness or the negative-caching floor, unless the
// host strips Cookie before the origin sees it or opts in.
func TestCookieRequestsNeedExplicitFreshness(t *testing.T) {
	lastMod := time.Now().Add(-100 * time.Hour).UTC().Format(http.TimeFormat)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	cookie := []string{"Cookie", "session=alice"}
	tests := []struct {
		name       string
		giveStatus int
		giveHeader []string
		givePolicy edge.Privacy
		giveReq    []string
		wantStored bool
		wantDetail string // of the first response when not stored
	}{
		{"heuristic without Cookie", 200, []string{"Last-Modified", lastMod}, edge.Privacy{}, nil, true, ""},
		{"heuristic", 200, []string{"Last-Modified", lastMod}, edge.Privacy{}, cookie, false, "cookie"},
		{"public and a heuristic", 200, []string{"Cache-Control", "public", "Last-Modified", lastMod}, edge.Privacy{}, cookie, false, "cookie"},
		{"negative-caching floor", 404, nil, edge.Privacy{}, cookie, false, "cookie"},
		{"max-age", 200, []string{"Cache-Control", "max-age=60"}, edge.Privacy{}, cookie, true, ""},
		{"s-maxage", 200, []string{"Cache-Control", "s-maxage=60"}, edge.Privacy{}, cookie, true, ""},
		{"Expires", 200, []string{"Expires", future}, edge.Privacy{}, cookie, true, ""},
		{"CDN-Cache-Control", 200, []string{"CDN-Cache-Control", "max-age=60", "Last-Modified", lastMod}, edge.Privacy{}, cookie, true, ""},
		{"Surrogate-Control", 200, []string{"Surrogate-Control", "max-age=60"}, edge.Privacy{}, cookie, true, ""},
		{"heuristic, host strips Cookie", 200, []string{"Last-Modified", lastMod}, edge.Privacy{StripCookie: true}, cookie, true, ""},
		{"heuristic, host opts in", 200, []string{"Last-Modified", lastMod}, edge.Privacy{HeuristicWithCookie: true}, cookie, true, ""},
		{"Authorization keeps RFC 9111 §3.5", 200, []string{"Cache-Control", "max-age=60"}, edge.Privacy{}, []string{"Authorization", "Bearer x"}, false, "authorization"},
		{"Authorization with public and a heuristic", 200, []string{"Cache-Control", "public", "Last-Modified", lastMod}, edge.Privacy{}, []string{"Authorization", "Bearer x"}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.giveHeader); i += 2 {
					w.Header().Add(tt.giveHeader[i], tt.giveHeader[i+1])
				}
				w.WriteHeader(tt.giveStatus)
				io.WriteString(w, "body")
			}, withPrivacy(tt.givePolicy), func(c *edge.Config) { c.NegativeTTL = time.Minute })
			resp, body := e.get(t, "/r", tt.giveReq...)
			require.Equal(t, tt.giveStatus, resp.StatusCode)
			require.Equal(t, "body", body)
			if tt.wantDetail != "" {
				assert.Contains(t, resp.Header.Get("Cache-Status"), `detail="`+tt.wantDetail+`"`)
			}
			r, _ := e.origin.lastRequest(t)
			if tt.givePolicy.StripCookie {
				assert.Empty(t, r.Header.Get("Cookie"), "the host strips Cookie")
			}
			e.get(t, "/r", tt.giveReq...)
			want := int64(2)
			if tt.wantStored {
				want = 1
			}
			assert.Equal(t, want, e.origin.hits.Load(), "origin requests")
		})
	}
}

// TestDeceptionArmour: a page served where the path names a static file
// is not stored (detail="type-mismatch", counted by reason), unless the
// host turns the armour off; the real file is stored.
func TestDeceptionArmour(t *testing.T) {
	for _, tt := range []struct {
		name       string
		givePath   string
		giveType   string
		givePolicy edge.Privacy
		wantCS     string
		wantHits   int64
	}{
		{"a page for a stylesheet", "/account/x.css", "text/html; charset=utf-8", edge.Privacy{}, `test-edge; fwd=bypass; fwd-status=200; detail="type-mismatch"`, 2},
		{"the stylesheet itself", "/static/x.css", "text/css", edge.Privacy{}, "test-edge; hit; ttl=60", 1},
		{"armour off", "/account/x.css", "text/html", edge.Privacy{StoreTypeMismatch: true}, "test-edge; hit; ttl=60", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			e := newEnv(t, static("x", "Cache-Control", "max-age=60", "Content-Type", tt.giveType),
				withPrivacy(tt.givePolicy), func(c *edge.Config) { c.Registerer = reg })
			e.get(t, tt.givePath)
			resp, _ := e.get(t, tt.givePath)
			assert.Equal(t, tt.wantCS, resp.Header.Get("Cache-Status"))
			assert.Equal(t, tt.wantHits, e.origin.hits.Load())
			wantCount := 0.0
			if tt.wantHits == 2 {
				wantCount = 2 // each client's own fetch, not stored
			}
			assert.Equal(t, wantCount, notStored(t, reg, "type-mismatch"), "outpost_not_stored_total{reason=type-mismatch}")
		})
	}
}

// TestNotStoredReasonsAreCounted: each response not stored is counted
// once under the reason its Cache-Status detail gives.
func TestNotStoredReasonsAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		case "/cookie":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Set-Cookie", "a=1")
		case "/heuristic":
			w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		}
		io.WriteString(w, "x")
	}, func(c *edge.Config) { c.Registerer = reg })
	e.get(t, "/private")
	e.get(t, "/private")
	e.get(t, "/cookie")
	e.get(t, "/heuristic", "Cookie", "a=1")
	e.get(t, "/none")
	assert.Equal(t, 2.0, notStored(t, reg, "private"))
	assert.Equal(t, 1.0, notStored(t, reg, "set-cookie"))
	assert.Equal(t, 1.0, notStored(t, reg, "cookie"))
	assert.Equal(t, 1.0, notStored(t, reg, "no-freshness"))
	assert.Equal(t, 0.0, notStored(t, reg, "type-mismatch"), "every reason has a series from the start")
}

// notStored reads outpost_not_stored_total{reason}; -1 when the series
// does not exist.
func notStored(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	for _, m := range metrictest.Series(t, reg, "outpost_not_stored_total") {
		if metrictest.Label(m, "reason") == reason {
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestPrivacyConfigErrors: New names a bad privacy field.
func TestPrivacyConfigErrors(t *testing.T) {
	for _, p := range []edge.Privacy{
		{KeepHeaders: []string{"Cookie"}},
		{SetCookie: 7},
	} {
		_, err := edge.New(edge.Config{Store: newMemory(t), Hosts: []edge.Host{{Transport: http.DefaultTransport, Privacy: p}}})
		if assert.Error(t, err, "%+v", p) {
			assert.True(t, strings.Contains(err.Error(), "Privacy."), err.Error())
		}
	}
}

func newMemory(t *testing.T) *storage.Memory {
	t.Helper()
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { mem.Close() })
	return mem
}

// TestSetCookieOnA304IsDropped: a Set-Cookie that comes with a 304 to the
// cache's own revalidation is not stored with the response, and reaches
// no client (under the default policy the response is dropped from the
// cache too, as any other response setting a cookie would be).
func TestSetCookieOnA304IsDropped(t *testing.T) {
	for _, tt := range []struct {
		policy   edge.SetCookiePolicy
		wantHits int64 // after the third request
	}{{edge.SetCookiePass, 3}, {edge.SetCookieStrip, 2}} {
		t.Run(tt.policy.String(), func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set("ETag", `"v1"`)
				if r.Header.Get("If-None-Match") == `"v1"` {
					w.Header().Set("Set-Cookie", "sid=from-304")
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "A")
			}, withPrivacy(edge.Privacy{SetCookie: tt.policy}))
			e.get(t, "/r")
			e.clock.Advance(20 * time.Second)
			resp, body := e.get(t, "/r")
			assert.Equal(t, "A", body)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd-status=304")
			assert.Empty(t, resp.Header.Get("Set-Cookie"))
			resp, body = e.get(t, "/r")
			assert.Equal(t, "A", body)
			assert.Empty(t, resp.Header.Get("Set-Cookie"))
			assert.Equal(t, tt.wantHits, e.origin.hits.Load())
		})
	}
}

// TestCookieRevalidationKeepsTheStoredResponse: a stored response (stored
// by heuristic freshness for a request without Cookie) that a request with
// Cookie revalidates with a 304 stays stored: its body was not made for
// that request.
func TestCookieRevalidationKeepsTheStoredResponse(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", e0LastModified)
		if r.Header.Get("If-Modified-Since") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "public")
	})
	e.get(t, "/asset")
	e.clock.Advance(48 * time.Hour) // past the heuristic lifetime (capped at 24h)
	resp, body := e.get(t, "/asset", "Cookie", "session=alice")
	assert.Equal(t, "public", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd-status=304")
	resp, _ = e.get(t, "/asset")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
	assert.Equal(t, int64(2), e.origin.hits.Load())
}

// e0LastModified is long before any test clock.
const e0LastModified = "Mon, 01 Jan 2024 00:00:00 GMT"
