package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHitAfterMiss(t *testing.T) {
	e := newEnv(t, static("hello", "Cache-Control", "max-age=60", "Content-Type", "text/plain"))
	resp, body := e.get(t, "/a.txt")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello", body)
	assert.Equal(t, "test-edge; fwd=miss; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
	assert.Empty(t, resp.Header.Get("Age"), "a response fetched for this request has no Age (RFC 9111 §5.1)")

	resp, body = e.get(t, "/a.txt")
	assert.Equal(t, "hello", body)
	assert.Equal(t, "test-edge; hit; ttl=60", resp.Header.Get("Cache-Status"))
	assert.Equal(t, "0", resp.Header.Get("Age"))
	assert.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
	assert.Equal(t, "5", resp.Header.Get("Content-Length"))
	assert.Equal(t, int64(1), e.origin.hits.Load(), "origin requests")
}

// TestStorability checks which responses a shared cache may store
// (RFC 9111 §3) and Outpost's policy on top: each row is fetched twice, and
// a stored response costs the origin one request, an unstored one two.
func TestStorability(t *testing.T) {
	lastMod := time.Now().Add(-10 * 24 * time.Hour).UTC().Format(http.TimeFormat)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		giveStatus int
		giveHeader []string
		giveReq    []string // request fields
		wantStored bool
	}{
		{"§5.2.2.1 max-age", 200, []string{"Cache-Control", "max-age=60"}, nil, true},
		{"§5.2.2.10 s-maxage", 200, []string{"Cache-Control", "s-maxage=60"}, nil, true},
		{"§5.3 Expires", 200, []string{"Expires", future}, nil, true},
		{"§5.2.2.5 no-store", 200, []string{"Cache-Control", "max-age=60, no-store"}, nil, false},
		{"§5.2.2.7 private", 200, []string{"Cache-Control", "private, max-age=60"}, nil, false},
		{"§5.2.2.7 private with field names stores the rest", 200, []string{"Cache-Control", `private="X-User", max-age=60`, "X-User", "a"}, nil, true},
		{"§3.5 Authorization without permission", 200, []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Bearer x"}, false},
		{"§3.5 Authorization with public", 200, []string{"Cache-Control", "public, max-age=60"}, []string{"Authorization", "Bearer x"}, true},
		{"§3.5 Authorization with s-maxage", 200, []string{"Cache-Control", "s-maxage=60"}, []string{"Authorization", "Bearer x"}, true},
		{"§3.5 Authorization with must-revalidate", 200, []string{"Cache-Control", "max-age=60, must-revalidate"}, []string{"Authorization", "Bearer x"}, true},
		{"policy: Set-Cookie is not stored", 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "s=1"}, nil, false},
		{"§3 unknown status with explicit freshness", 299, []string{"Cache-Control", "max-age=60"}, nil, true},
		{"§5.2.2.3 must-understand with an unknown status", 299, []string{"Cache-Control", "max-age=60, no-store, must-understand"}, nil, false},
		{"RFC 9213 invalid CDN-Cache-Control is ignored", 200, []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60, &&&"}, nil, false},
		{"RFC 9213 wrong type ignores the directive", 200, []string{"Cache-Control", "no-store", "CDN-Cache-Control", `max-age="60"`}, nil, false},
		{"policy: Set-Cookie hidden by no-cache=\"Set-Cookie\"", 200, []string{"Cache-Control", `max-age=60, no-cache="Set-Cookie"`, "Set-Cookie", "s=1"}, nil, true},
		{"§4.2.2 heuristic from Last-Modified", 200, []string{"Last-Modified", lastMod}, nil, true},
		{"§4.2.2 404 is heuristically cacheable", 404, []string{"Last-Modified", lastMod}, nil, true},
		{"§3 404 with explicit freshness", 404, []string{"Cache-Control", "max-age=60"}, nil, true},
		{"§3 302 without explicit freshness", 302, []string{"Location", "/x", "Last-Modified", lastMod}, nil, false},
		{"§3 302 with explicit freshness", 302, []string{"Location", "/x", "Cache-Control", "max-age=60"}, nil, true},
		{"§3 500 without explicit freshness", 500, nil, nil, false},
		{"no default TTL: no freshness, no validators", 200, nil, nil, false},
		{"§4.1 Vary: * never matches", 200, []string{"Cache-Control", "max-age=60", "Vary", "*"}, nil, false},
		{"RFC 9213 CDN-Cache-Control overrides no-store", 200, []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, nil, true},
		{"RFC 9213 CDN-Cache-Control no-store wins over max-age", 200, []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"}, nil, false},
		{"§5.2.2.3 must-understand with no-store and a known status", 200, []string{"Cache-Control", "max-age=60, no-store, must-understand"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.giveHeader); i += 2 {
					w.Header().Add(tt.giveHeader[i], tt.giveHeader[i+1])
				}
				w.WriteHeader(tt.giveStatus)
				io.WriteString(w, "body")
			})
			for range 2 {
				resp, body := e.get(t, "/r", tt.giveReq...)
				require.Equal(t, tt.giveStatus, resp.StatusCode)
				require.Equal(t, "body", body)
			}
			want := int64(2)
			if tt.wantStored {
				want = 1
			}
			assert.Equal(t, want, e.origin.hits.Load(), "origin requests for %v", tt.giveHeader)
		})
	}
}

// TestPrivateFieldsReachOnlyTheirClient checks that fields a response hides
// with private="..." reach the client that fetched it and no other
// (RFC 9111 §5.2.2.7).
func TestPrivateFieldsReachOnlyTheirClient(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", `private="X-User, Set-Cookie", max-age=60`, "X-User", "alice", "Set-Cookie", "s=1"))
	resp, _ := e.get(t, "/p")
	assert.Equal(t, "alice", resp.Header.Get("X-User"))
	assert.Equal(t, "s=1", resp.Header.Get("Set-Cookie"))
	resp, _ = e.get(t, "/p")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Empty(t, resp.Header.Get("X-User"))
	assert.Empty(t, resp.Header.Get("Set-Cookie"))
}

// TestUnknownRequestDirectivesDoNotBypass: a request directive or pragma the
// cache does not implement is ignored (RFC 9111 §5.2.3, §5.4).
func TestUnknownRequestDirectivesDoNotBypass(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", "max-age=60"))
	e.get(t, "/u")
	for _, hdr := range [][]string{
		{"Cache-Control", "nothing-to-see-here"},
		{"Pragma", "foo"},
		{"Cache-Control", "nothing-to-see-here=1, other"},
	} {
		resp, _ := e.get(t, "/u", hdr...)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit", "request with %v", hdr)
	}
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestAge checks Age (RFC 9111 §4.2.3, §5.1): the Age an origin sent plus
// the time the response has been stored, and freshness running out.
func TestAge(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", "max-age=100", "Age", "30"))
	resp, _ := e.get(t, "/age")
	assert.Equal(t, "30", resp.Header.Get("Age"), "a received Age is passed on")

	e.clock.Advance(20 * time.Second)
	resp, _ = e.get(t, "/age")
	assert.Equal(t, "50", resp.Header.Get("Age"))
	assert.Equal(t, "test-edge; hit; ttl=50", resp.Header.Get("Cache-Status"))

	e.clock.Advance(51 * time.Second) // age 101 > max-age 100: stale
	resp, _ = e.get(t, "/age")
	assert.Equal(t, "test-edge; fwd=stale; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(2), e.origin.hits.Load())
}

// TestHeuristicFreshness: 10% of Date minus Last-Modified, capped (RFC 9111
// §4.2.2).
func TestHeuristicFreshness(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		giveAge time.Duration // Date - Last-Modified
		wantTTL time.Duration
	}{
		{"10 hours old → 1 hour", 10 * time.Hour, time.Hour},
		{"100 days old → capped at 24h", 100 * 24 * time.Hour, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, static("x", "Last-Modified", now.Add(-tt.giveAge).UTC().Format(http.TimeFormat)))
			e.get(t, "/h")
			resp, _ := e.get(t, "/h")
			ttl := tt.wantTTL / time.Second
			status := resp.Header.Get("Cache-Status")
			assert.True(t, status == fmt.Sprintf("test-edge; hit; ttl=%d", ttl) || status == fmt.Sprintf("test-edge; hit; ttl=%d", ttl-1),
				"Cache-Status %q, want ttl about %d", status, ttl)
		})
	}
}

func TestCacheStatusKeepsUpstreamEntries(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", "max-age=60", "Cache-Status", "shield; hit; ttl=30"))
	resp, _ := e.get(t, "/cs")
	assert.Equal(t, "shield; hit; ttl=30, test-edge; fwd=miss; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
	resp, _ = e.get(t, "/cs")
	assert.Equal(t, "test-edge; hit; ttl=60", resp.Header.Get("Cache-Status"), "a hit is this node's alone")
}

func TestUnknownHostIsMisdirected(t *testing.T) {
	e := newEnv(t, static("y"), func(c *edge.Config) {
		c.Hosts = []edge.Host{{Names: []string{"static.example.com", "*.cdn.example.com"}, Transport: c.Hosts[0].Transport}}
	})
	for _, tt := range []struct {
		host string
		want int
	}{
		{"static.example.com", 200},
		{"STATIC.example.com:80", 200},
		{"a.cdn.example.com", 200},
		{"cdn.example.com", 421},
		{"evil.example.org", 421},
	} {
		resp, _ := e.get(t, "/", "Host", tt.host)
		assert.Equal(t, tt.want, resp.StatusCode, "Host %q", tt.host)
	}
}

// TestNoDefaultTTL: a response without freshness or validators is passed
// on each time, however often it is requested.
func TestNoDefaultTTL(t *testing.T) {
	e := newEnv(t, static("x"))
	for range 3 {
		resp, _ := e.get(t, "/n")
		assert.True(t, strings.Contains(resp.Header.Get("Cache-Status"), "fwd="), resp.Header.Get("Cache-Status"))
	}
	assert.Equal(t, int64(3), e.origin.hits.Load())
}

// TestHitContentLength: every hit declares its length, whatever its size
// (small bodies take a path where net/http computes the field), and is
// never sent chunked; HEAD declares the GET's length.
func TestHitContentLength(t *testing.T) {
	for _, n := range []int{0, 1, 1024, 2047, 2048, 2049, 64 << 10} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			body := strings.Repeat("b", n)
			e := newEnv(t, static(body, "Cache-Control", "max-age=60", "Surrogate-Key", "k1"))
			e.get(t, "/x")
			resp, got := e.get(t, "/x")
			assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
			assert.Equal(t, body, got)
			assert.Equal(t, int64(n), resp.ContentLength)
			assert.Empty(t, resp.TransferEncoding, "not chunked")
			assert.Empty(t, resp.Header.Get("Surrogate-Key"), "CDN fields stay inside")
			resp, got = e.do(t, http.MethodHead, "/x")
			assert.Empty(t, got)
			assert.Equal(t, strconv.Itoa(n), resp.Header.Get("Content-Length"), "HEAD")
		})
	}
}

// TestHitRightAfterMiss: a client that has received a whole response and
// asks again at once gets the stored copy: the fill stores the response
// and leaves the flight table before the body's last byte goes out. The
// commit is made slow (the ban check just before it sleeps) so that a
// response completed before the commit would be seen: the second request
// would join the old flight ("collapsed") instead of hitting.
func TestHitRightAfterMiss(t *testing.T) {
	bans := &slowFirstCheck{seen: map[string]bool{}}
	e := newEnv(t, static("0123456789", "Cache-Control", "max-age=60"), func(c *edge.Config) { c.Bans = bans })
	const n = 5
	for i := range n {
		path := fmt.Sprintf("/seq/%d", i)
		e.get(t, path)
		resp, body := e.get(t, path)
		require.Equal(t, "0123456789", body)
		require.Equal(t, "test-edge; hit; ttl=60", resp.Header.Get("Cache-Status"), "request %d", i)
	}
	assert.Equal(t, int64(n), e.origin.hits.Load())
}

// slowFirstCheck is a Bans that bans nothing and takes 50 ms the first
// time it sees a key: the check a fill makes just before its commit.
type slowFirstCheck struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (b *slowFirstCheck) Check(m *storage.Meta) (time.Time, bool, bool) {
	b.mu.Lock()
	first := !b.seen[m.Key]
	b.seen[m.Key] = true
	b.mu.Unlock()
	if first {
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, false, false
}
