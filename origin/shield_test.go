package origin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parent is a shield node that answers its name and records what it saw.
type parent struct {
	*httptest.Server
	name string
	hits atomic.Int64
	seen chan seen
}

func newParent(t *testing.T, name string) *parent {
	t.Helper()
	p := &parent{name: name, seen: make(chan seen, 100)}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		select {
		case p.seen <- seen{host: r.Host, requestURI: r.RequestURI, header: r.Header}:
		default:
		}
		w.Header().Set("Cache-Status", name+"; fwd=miss")
		io.WriteString(w, name)
	}))
	t.Cleanup(p.Close)
	return p
}

func newTestShield(t *testing.T, origin http.RoundTripper, parents ...*parent) *Shield {
	t.Helper()
	cfg := ShieldConfig{Origin: origin, Config: Config{Ejection: Ejection{Failures: 2}}}
	for _, p := range parents {
		cfg.Origins = append(cfg.Origins, Server{URL: p.URL})
	}
	sh, err := NewShield(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { sh.Close() })
	return sh
}

// originRT is a fallback origin that answers "origin" and counts requests.
func originRT(t *testing.T) (http.RoundTripper, *testOrigin) {
	o := newOrigin(t, "origin")
	p := newTestPool(t, Config{Origins: servers(o)})
	return p, o
}

func TestShieldSendsEachKeyHome(t *testing.T) {
	parents := []*parent{newParent(t, "p1"), newParent(t, "p2"), newParent(t, "p3")}
	origin, o := originRT(t)
	sh := newTestShield(t, origin, parents...)
	home := make(map[string]string)

	for round := range 2 {
		for i := range 30 {
			u := fmt.Sprintf("http://static.example.com/v/%d.mp4?q=%d", i, i)
			_, body, err := fetch(t, sh, u)
			require.NoError(t, err)
			if round == 0 {
				home[u] = body
			}
			assert.Equal(t, home[u], body, "%s went to another parent", u)
		}
	}

	for _, p := range parents {
		assert.Positive(t, p.hits.Load(), "parent %s is home to no key of 30", p.name)
	}
	assert.Zero(t, o.hits.Load(), "requests reached the origin")
}

func TestShieldKeepsHostPathAndHeaders(t *testing.T) {
	p := newParent(t, "p1")
	origin, _ := originRT(t)
	sh := newTestShield(t, origin, p)
	req, err := http.NewRequest(http.MethodGet, "http://static.example.com/img/a%2Fb.png?x=1", nil)
	require.NoError(t, err)
	req.Host = "static.example.com"
	req.Header.Set("CDN-Loop", "outpost")
	req.Header.Set("Cache-Status", "outpost-edge; fwd=miss")
	req.Header.Set("Cookie", "a=b")

	resp, err := sh.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()

	s := <-p.seen
	assert.Equal(t, "static.example.com", s.host)
	assert.Equal(t, "/img/a%2Fb.png?x=1", s.requestURI)
	assert.Equal(t, "outpost", s.header.Get("CDN-Loop"))
	assert.Equal(t, "outpost-edge; fwd=miss", s.header.Get("Cache-Status"))
	assert.Equal(t, "a=b", s.header.Get("Cookie"))
	assert.Equal(t, "p1; fwd=miss", resp.Header.Get("Cache-Status"), "the parent's Cache-Status is kept")
}

func TestShieldSkipsDownParent(t *testing.T) {
	parents := []*parent{newParent(t, "p1"), newParent(t, "p2"), newParent(t, "p3")}
	origin, o := originRT(t)
	sh := newTestShield(t, origin, parents...)
	homes := make(map[string]string)
	var keys []string
	for i := range 30 {
		u := fmt.Sprintf("http://static.example.com/v/%d.mp4", i)
		_, body, err := fetch(t, sh, u)
		require.NoError(t, err)
		homes[u] = body
		keys = append(keys, u)
	}
	parents[0].Close()

	for range 2 {
		for _, u := range keys {
			_, body, err := fetch(t, sh, u)
			require.NoError(t, err, "%s after p1 went down", u)
			if homes[u] != "p1" {
				assert.Equal(t, homes[u], body, "%s moved though its home is up", u)
			} else {
				assert.NotEqual(t, "p1", body)
			}
		}
	}
	assert.False(t, sh.Servers()[0].Up, "p1 ejected")
	assert.Zero(t, o.hits.Load(), "requests reached the origin")
}

func TestShieldFallsBackToOrigin(t *testing.T) {
	parents := []*parent{newParent(t, "p1"), newParent(t, "p2")}
	origin, o := originRT(t)
	var logs logBuffer
	sh, err := NewShield(ShieldConfig{
		Config: Config{
			Origins:  []Server{{URL: parents[0].URL}, {URL: parents[1].URL}},
			Ejection: Ejection{Failures: 2},
			Logger:   logs.logger(),
		},
		Origin: origin,
	})
	require.NoError(t, err)
	defer sh.Close()
	for _, p := range parents {
		p.Close()
	}

	for i := range 10 {
		status, body, err := fetch(t, sh, fmt.Sprintf("http://static.example.com/%d.png", i))
		require.NoError(t, err, "request %d with every parent down", i)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "origin", body)
	}

	assert.Equal(t, int64(10), o.hits.Load())
	for i, st := range sh.Servers() {
		assert.False(t, st.Up, "parent %d", i)
		assert.Equal(t, uint64(2), st.Requests, "parent %d is tried until ejected", i)
	}
	assert.Equal(t, uint64(10), sh.g.fallbacks.Load())
	assert.Equal(t, 1, logs.count("no server up: sending requests to the origin"))
}

func TestShieldDoesNotCountParent5xxAsFailure(t *testing.T) {
	p := newParent(t, "p1")
	p.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway) // the parent's origin is down
	})
	origin, o := originRT(t)
	sh := newTestShield(t, origin, p)

	for range 5 {
		status, _, err := fetch(t, sh, "http://static.example.com/a.png")
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadGateway, status)
	}

	assert.True(t, sh.Servers()[0].Up)
	assert.Zero(t, o.hits.Load())
}

func TestNewShieldRejectsBadConfig(t *testing.T) {
	origin := roundTripFunc(nil)
	tests := []struct {
		name    string
		give    ShieldConfig
		wantErr string
	}{
		{"no parents", ShieldConfig{Origin: origin}, "origin: no servers"},
		{"no origin", ShieldConfig{Config: Config{Origins: []Server{{URL: "http://shield-1.test"}}}}, "origin: shield: origin: required"},
		{"path", ShieldConfig{Origin: origin, Config: Config{Origins: []Server{{URL: "http://shield-1.test/x"}}}}, `parents[0]: url "http://shield-1.test/x": must not have a path`},
		{"scheme", ShieldConfig{Origin: origin, Config: Config{Origins: []Server{{URL: "shield-1.test:8080"}}}}, "parents[0]"},
		{"pool options", ShieldConfig{Origin: origin, Config: Config{Origins: []Server{{URL: "http://shield-1.test"}}, PathPrefix: "/x"}}, "are a pool's, not a shield's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewShield(tt.give)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestShieldHomeIsFirstRendezvousChoice(t *testing.T) {
	parents := []*parent{newParent(t, "p1"), newParent(t, "p2"), newParent(t, "p3"), newParent(t, "p4")}
	origin, _ := originRT(t)
	sh := newTestShield(t, origin, parents...)
	byURL := map[string]string{}
	for _, p := range parents {
		byURL[p.URL] = p.name
	}
	for i := range 20 {
		u, err := url.Parse(fmt.Sprintf("http://static.example.com/%d.jpg", i))
		require.NoError(t, err)
		want := byURL[sh.g.pickRendezvous(keyHash(u), nil, &clock{epoch: sh.g.epoch}).name]
		_, got, err := fetch(t, sh, u.String())
		require.NoError(t, err)
		assert.Equal(t, want, got, "home of %s", u)
	}
}
