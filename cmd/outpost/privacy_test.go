package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPrivacyConfigRejectsBadInput: each bad privacy or trusted_proxies
// value exits 2 naming the field and line.
func TestPrivacyConfigRejectsBadInput(t *testing.T) {
	host := "hosts:\n  - origins: [\"http://o\"]\n"
	tests := []struct {
		name     string
		giveYAML string
		want     []string
	}{
		{"bad trusted proxy", "trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.300\"]\n" + host, []string{"line 1", "trusted_proxies[1]", "10.0.0.300"}},
		{"bad set_cookie", host + "    privacy: { set_cookie: keep }\n", []string{"line 3", "hosts[0].privacy.set_cookie", "keep"}},
		{"bad node set_cookie", "cache: { set_cookie: always }\n" + host, []string{"line 1", "cache.set_cookie", "always"}},
		{"old and new key", "cache: { set_cookie: strip, pass_set_cookie: true }\n" + host, []string{"line 1", "cache.pass_set_cookie", "set_cookie"}},
		{"keeping a header that is not an override", host + "    privacy:\n      keep_headers: [X-Real-IP, Cookie]\n", []string{"line 4", "hosts[0].privacy.keep_headers[1]", "Cookie"}},
		{"unknown privacy field", host + "    privacy: { armour: false }\n", []string{"line 3", "armour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, "")
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"serve", "--config", writeFile(t, "outpost.yaml", tt.giveYAML)}, io.Discard, &stderr)
			assert.Equal(t, 2, code, stderr.String())
			for _, w := range tt.want {
				assert.Contains(t, stderr.String(), w)
			}
		})
	}
}

// TestPrivacyConfig: the privacy block, the node-wide default, the old
// cache.pass_set_cookie key and request_headers.remove map to each host's
// edge.Privacy; trusted_proxies to prefixes.
func TestPrivacyConfig(t *testing.T) {
	tests := []struct {
		name        string
		giveYAML    string
		wantHosts   []edge.Privacy // per host entry, catch-all last
		wantTrusted []netip.Prefix
	}{
		{"defaults", "hosts:\n  - origins: [\"http://o\"]\n",
			[]edge.Privacy{{}}, nil},
		{"old key true is the default", "cache: { pass_set_cookie: true }\nhosts:\n  - origins: [\"http://o\"]\n",
			[]edge.Privacy{{}}, nil},
		{"old key false stores without the cookie", "cache: { pass_set_cookie: false }\nhosts:\n  - origins: [\"http://o\"]\n",
			[]edge.Privacy{{SetCookie: edge.SetCookieStrip}}, nil},
		{"node default and a host's own",
			"cache: { set_cookie: strip }\nhosts:\n  - names: [a.example]\n    origins: [\"http://o\"]\n    privacy: { set_cookie: pass }\n  - origins: [\"http://o\"]\n",
			[]edge.Privacy{{}, {SetCookie: edge.SetCookieStrip}}, nil},
		{"every switch",
			"hosts:\n  - origins: [\"http://o\"]\n    request_headers: { remove: [cookie] }\n    privacy:\n      cookie_heuristic: true\n      deception_armor: false\n      keep_headers: [x-real-ip]\n",
			[]edge.Privacy{{StripCookie: true, HeuristicWithCookie: true, StoreTypeMismatch: true, KeepHeaders: []string{"X-Real-Ip"}}}, nil},
		{"deception_armor: true is the default", "hosts:\n  - origins: [\"http://o\"]\n    privacy: { deception_armor: true }\n",
			[]edge.Privacy{{}}, nil},
		{"trusted proxies", "trusted_proxies: [\"10.1.2.3/8\", \"192.0.2.7\", \"2001:db8::/32\"]\nhosts:\n  - origins: [\"http://o\"]\n",
			[]edge.Privacy{{}}, []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newServeFlags("outpost serve", io.Discard)
			require.NoError(t, f.fs.Parse([]string{"--config", writeFile(t, "outpost.yaml", tt.giveYAML)}))
			s, err := f.resolve()
			require.NoError(t, err)
			var got []edge.Privacy
			for i := range s.hosts {
				got = append(got, s.hostPrivacy(&s.hosts[i]))
			}
			assert.Equal(t, tt.wantHosts, got)
			assert.Equal(t, tt.wantTrusted, s.trustedProxies)
		})
	}
}

// TestShieldSeesTheClientThroughTrustedEdges: an edge writes the client's
// forwarding fields; its shield keeps them and appends the edge only when
// the edge is in the shield's trusted_proxies, else it writes its own.
// Either way the shield serves the edge.
func TestShieldSeesTheClientThroughTrustedEdges(t *testing.T) {
	for _, tt := range []struct {
		name      string
		trusted   string
		wantXFF   string
		wantFwd   string
		wantXFHst string
	}{
		{"edges trusted", "trusted_proxies: [127.0.0.0/8]\n", "127.0.0.1, 127.0.0.1",
			"for=127.0.0.1;host=static.example.com;proto=http, for=127.0.0.1;host=static.example.com;proto=http", "static.example.com"},
		{"edges not trusted", "", "127.0.0.1",
			"for=127.0.0.1;host=static.example.com;proto=http", "static.example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen http.Header
			o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = r.Header.Clone()
				mu.Unlock()
				w.Header().Set("Cache-Control", "max-age=60")
				io.WriteString(w, "x")
			})
			cfg := writeFile(t, "shield.yaml", tt.trusted+"hosts:\n  - origins: [\""+o.URL+"\"]\n")
			shield := startNode(t, "--config", cfg, "--name", "shield")
			edgeNode := startNode(t, "--origin", o.URL, "--parent", shield.url, "--name", "edge1")
			resp, body := fetch(t, edgeNode.url+"/f", "Host", "static.example.com", "X-Forwarded-For", "198.51.100.1", "X-Real-IP", "198.51.100.1")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "x", body)
			assert.Contains(t, resp.Header.Get("Cache-Status"), "shield; fwd=miss")
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tt.wantXFF, seen.Get("X-Forwarded-For"), "the client's own X-Forwarded-For never travels")
			assert.Equal(t, tt.wantFwd, seen.Get("Forwarded"))
			assert.Equal(t, tt.wantXFHst, seen.Get("X-Forwarded-Host"))
			assert.Empty(t, seen.Get("X-Real-Ip"))
		})
	}
}
