package access

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vector the README shows: an application that signs URLs in any
// language checks itself against these.
const (
	vectorKey    = "outpost-example-key-2026"
	vectorExp    = 1798761600 // 2027-01-01T00:00:00Z
	vectorURL    = "https://media.example.com/videos/intro.mp4?exp=1798761600&sig=t_gOkhApcflK8Cxwupl4WXD3kDHB06kemsuecHZlCZ8"
	vectorPrefix = "https://media.example.com/videos/intro.mp4?exp=1798761600&prefix=/videos/&ip=203.0.113.7&sig=fKwlPvQdLLMDb0etNzu7rVAClKQgob_63YTAc9KeGPQ"
)

func TestSignMatchesTheVector(t *testing.T) {
	exp := time.Unix(vectorExp, 0)
	got, err := Sign("https://media.example.com/videos/intro.mp4", []byte(vectorKey), Token{Expires: exp})
	require.NoError(t, err)
	assert.Equal(t, vectorURL, got)
	got, err = Sign("https://media.example.com/videos/intro.mp4", []byte(vectorKey), Token{Expires: exp, Prefix: "/videos/", IP: "203.0.113.7"})
	require.NoError(t, err)
	assert.Equal(t, vectorPrefix, got)
}

func TestSignRefuses(t *testing.T) {
	key := []byte(vectorKey)
	exp := time.Unix(vectorExp, 0)
	for _, tt := range []struct {
		name, giveURL string
		giveKey       []byte
		giveToken     Token
	}{
		{"short key", "/a", []byte("short"), Token{Expires: exp}},
		{"relative path", "a/b", key, Token{Expires: exp}},
		{"dot segment", "/a/../b", key, Token{Expires: exp}},
		{"prefix not of the path", "/a/b", key, Token{Expires: exp, Prefix: "/c/"}},
		{"prefix not absolute", "/a/b", key, Token{Expires: exp, Prefix: "a/"}},
		{"bad ip", "/a", key, Token{Expires: exp, IP: "example.com"}},
		{"already signed", "/a?sig=x", key, Token{Expires: exp}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Sign(tt.giveURL, tt.giveKey, tt.giveToken)
			assert.Error(t, err)
		})
	}
}

// signedRequest is a request for rawURL from client.
func signedRequest(rawURL, client string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, rawURL, nil)
	r.RemoteAddr = client + ":40000"
	if strings.Contains(client, ":") {
		r.RemoteAddr = "[" + client + "]:40000"
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func TestSignedURLs(t *testing.T) {
	oldKey := []byte("the-key-being-retired-0001")
	newKey := []byte("the-key-taking-over-00002")
	now := time.Unix(vectorExp-3600, 0)
	later := now.Add(time.Hour)
	sign := func(raw string, key []byte, tok Token) string {
		if tok.Expires.IsZero() {
			tok.Expires = later
		}
		s, err := Sign(raw, key, tok)
		require.NoError(t, err)
		return s
	}
	base := "http://media.example.com"
	tests := []struct {
		name       string
		giveURL    string
		giveClient string
		wantStatus int
		wantReason string // the denied series counted, "" for allowed
	}{
		{"exact path", sign(base+"/v/a.mp4", newKey, Token{}), "192.0.2.1", 200, ""},
		{"old key still verifies", sign(base+"/v/a.mp4", oldKey, Token{}), "192.0.2.1", 200, ""},
		{"with the app's own query", sign(base+"/v/a.mp4?w=200", newKey, Token{}), "192.0.2.1", 200, ""},
		{"unprotected path", base + "/public/logo.png", "192.0.2.1", 200, ""},
		{"no token", base + "/v/a.mp4", "192.0.2.1", 403, reasonMissing},
		{"expires now", sign(base+"/v/a.mp4", newKey, Token{Expires: now}), "192.0.2.1", 200, ""},
		{"expired", sign(base+"/v/a.mp4", newKey, Token{Expires: now.Add(-time.Second)}), "192.0.2.1", 403, reasonExpired},
		{"unknown key", sign(base+"/v/a.mp4", []byte("somebody-else's-key-0003"), Token{}), "192.0.2.1", 403, reasonInvalid},
		{"other path", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{}), "a.mp4", "b.mp4", 1), "192.0.2.1", 403, reasonInvalid},
		{"later expiry", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{}), "exp=", "exp=1", 1), "192.0.2.1", 403, reasonInvalid},
		{"exact token given a prefix", sign(base+"/v/a", newKey, Token{}) + "&prefix=%2Fv%2Fa", "192.0.2.1", 403, reasonInvalid},
		{"prefix", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{Prefix: "/v/"}), "a.mp4", "b/c.mp4", 1), "192.0.2.1", 200, ""},
		{"outside the prefix", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{Prefix: "/v/"}), "/v/a.mp4", "/w/a.mp4", 1), "192.0.2.1", 403, reasonScope},
		{"dot segments out of the prefix", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{Prefix: "/v/"}), "/v/a.mp4", "/v/../w/a.mp4", 1), "192.0.2.1", 403, reasonScope},
		{"encoded dot segments", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{Prefix: "/v/"}), "/v/a.mp4", "/v/%2e%2e/w/a.mp4", 1), "192.0.2.1", 403, reasonScope},
		{"encoded slash and dots", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{Prefix: "/v/"}), "/v/a.mp4", "/v/x%2F..%2F..%2Fw", 1), "192.0.2.1", 403, reasonScope},
		{"bound client", sign(base+"/v/a.mp4", newKey, Token{IP: "192.0.2.1"}), "192.0.2.1", 200, ""},
		{"other client", sign(base+"/v/a.mp4", newKey, Token{IP: "192.0.2.1"}), "192.0.2.2", 403, reasonIP},
		{"bound network", sign(base+"/v/a.mp4", newKey, Token{IP: "2001:db8:1::/48"}), "2001:db8:1::77", 200, ""},
		{"outside the network", sign(base+"/v/a.mp4", newKey, Token{IP: "2001:db8:1::/48"}), "2001:db8:2::77", 403, reasonIP},
		{"ip swapped", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{IP: "192.0.2.1"}), "ip=192.0.2.1", "ip=192.0.2.2", 1), "192.0.2.2", 403, reasonInvalid},
		{"ip removed", strings.Replace(sign(base+"/v/a.mp4", newKey, Token{IP: "192.0.2.1"}), "&ip=192.0.2.1", "", 1), "192.0.2.2", 403, reasonInvalid},
		{"signature twice", sign(base+"/v/a.mp4", newKey, Token{}) + "&sig=x", "192.0.2.1", 403, reasonInvalid},
		{"encoded parameter name", sign(base+"/v/a.mp4", newKey, Token{}) + "&%73ig=x", "192.0.2.1", 403, reasonInvalid},
		{"bad expiry", base + "/v/a.mp4?exp=soon&sig=" + strings.Repeat("A", 43), "192.0.2.1", 403, reasonInvalid},
		{"short signature", base + "/v/a.mp4?exp=1798761600&sig=AAAA", "192.0.2.1", 403, reasonInvalid},
	}
	m, err := NewMetrics(nil)
	require.NoError(t, err)
	p, err := New(Config{
		Host:       "media.example.com",
		SignedURLs: SignedURLs{Keys: [][]byte{newKey, oldKey}, Paths: []string{"/v/", "/w/"}},
		Metrics:    m,
		Now:        func() time.Time { return now },
	})
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counted(t, m, "media.example.com", ruleSigned, tt.wantReason)
			rec := httptest.NewRecorder()
			_, ok := p.Admit(rec, signedRequest(tt.giveURL, tt.giveClient))
			assert.Equal(t, tt.wantStatus == 200, ok, "Admit(%s)", tt.giveURL)
			if !ok {
				assert.Equal(t, tt.wantStatus, rec.Code, "Admit(%s)", tt.giveURL)
				assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			}
			want := before + 1
			if tt.name == "unprotected path" {
				want = before // no token asked for, none counted
			}
			assert.Equal(t, want, counted(t, m, "media.example.com", ruleSigned, tt.wantReason), "the series counted")
		})
	}
}

// TestTokenCacheRemembersOnlyGoodSignatures: a URL verified once passes
// from the cache, but a forged signature for the same string to sign does
// not, nor does the remembered URL once expired.
func TestTokenCacheRemembersOnlyGoodSignatures(t *testing.T) {
	now := time.Unix(vectorExp-60, 0)
	p, err := New(Config{
		SignedURLs: SignedURLs{Keys: [][]byte{[]byte(vectorKey)}},
		Now:        func() time.Time { return now },
	})
	require.NoError(t, err)
	admit := func(u string) bool {
		_, ok := p.Admit(httptest.NewRecorder(), signedRequest(u, "203.0.113.7"))
		return ok
	}
	forged := strings.Replace(vectorURL, "sig=t_", "sig=u_", 1)
	assert.False(t, admit(forged), "forged, before the good one is seen")
	assert.True(t, admit(vectorURL))
	assert.Equal(t, 1, len(p.signed.seen.m))
	assert.True(t, admit(vectorURL), "from the cache")
	assert.False(t, admit(forged), "forged, with the good one cached")
	now = time.Unix(vectorExp+1, 0)
	assert.False(t, admit(vectorURL), "cached, but expired")
}

func TestSignedURLVectorVerifies(t *testing.T) {
	p, err := New(Config{
		SignedURLs: SignedURLs{Keys: [][]byte{[]byte(vectorKey)}},
		Now:        func() time.Time { return time.Unix(vectorExp-60, 0) },
	})
	require.NoError(t, err)
	for _, u := range []string{vectorURL, vectorPrefix} {
		_, ok := p.Admit(httptest.NewRecorder(), signedRequest(u, "203.0.113.7"))
		assert.True(t, ok, u)
	}
}

func TestSignedURLConfig(t *testing.T) {
	long := []byte("0123456789abcdef")
	for _, tt := range []struct {
		name    string
		give    SignedURLs
		wantErr string
	}{
		{"three keys", SignedURLs{Keys: [][]byte{long, long, long}}, "at most two"},
		{"short key", SignedURLs{Keys: [][]byte{long, []byte("short")}}, "keys[1]"},
		{"relative path", SignedURLs{Keys: [][]byte{long}, Paths: []string{"v/"}}, "paths[0]"},
		{"paths without keys", SignedURLs{Paths: []string{"/v/"}}, "no keys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{SignedURLs: tt.give})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestHasDotSegment(t *testing.T) {
	for _, tt := range []struct {
		give string
		want bool
	}{
		{"/videos/a.mp4", false},
		{"/videos/.hidden", false},
		{"/videos/a..b", false},
		{"/videos/./a", true},
		{"/videos/../a", true},
		{"/videos/..", true},
		{"/videos/%2E%2E/a", true},
		{"/videos/%2e./a", true},
		{`/videos/..\a`, true},
		{"/videos/a%5C..%5Cb", true},
		{"/videos/a%2F..%2Fb", true},
		{"/videos/%zz/a", false},    // nothing that could be a dot segment
		{"/videos/%zz/a.mp4", true}, // a dot and an undecodable path: refused
		{"/videos/%zz/a.mp4/..", true},
	} {
		assert.Equal(t, tt.want, hasDotSegment(tt.give), "hasDotSegment(%q)", tt.give)
	}
}

// FuzzVerify: no query or path makes verification panic, and nothing but
// a correctly signed URL passes.
func FuzzVerify(f *testing.F) {
	for _, u := range []string{vectorURL, vectorPrefix, "/a?exp=1&sig=x&sig=y", "/a?%73ig=1", "/a?prefix=%zz&exp=2&sig=" + strings.Repeat("A", 43)} {
		pu, _ := url.Parse(u)
		f.Add(pu.EscapedPath(), pu.RawQuery)
	}
	v, err := newVerifier(SignedURLs{Keys: [][]byte{[]byte(vectorKey)}})
	require.NoError(f, err)
	client := func() netip.Addr { return netip.MustParseAddr("203.0.113.7") }
	now := time.Unix(vectorExp-60, 0)
	f.Fuzz(func(t *testing.T, path, query string) {
		if v.verify(path, query, now, client) != "" {
			return
		}
		// It passed: the query must carry the signature of exactly what
		// was checked.
		tf, ok := readToken(query)
		require.True(t, ok, "a query with repeated token parameters passed: %q", query)
		assert.NotEmpty(t, tf.sig, "passed without a signature: %q", query)
	})
}
