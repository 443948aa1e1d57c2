package access

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var hotlinkTests = []struct {
	name        string
	giveReferer []string // nil: no field
	want        string   // "" allowed, else the reason
}{
	{"exact host", []string{"https://example.com/page.html"}, ""},
	{"exact host, http and port", []string{"http://EXAMPLE.com:8080/"}, ""},
	{"no path", []string{"https://example.com"}, ""},
	{"query right after the host", []string{"https://example.com?x=1"}, ""},
	{"subdomain of an exact name", []string{"https://www.example.com/"}, reasonReferer},
	{"wildcard", []string{"https://img.cdn.example.net/x"}, ""},
	{"deep wildcard", []string{"https://a.b.cdn.example.net/x"}, ""},
	{"wildcard does not match its apex", []string{"https://cdn.example.net/x"}, reasonReferer},
	{"suffix is not a label", []string{"https://evilcdn.example.net/x"}, reasonReferer},
	{"path prefix", []string{"https://blog.example.org/gallery/1"}, ""},
	{"outside the path prefix", []string{"https://blog.example.org/other"}, reasonReferer},
	{"path prefix is case-sensitive", []string{"https://blog.example.org/Gallery/1"}, reasonReferer},
	{"user info is not the host", []string{"https://example.com@evil.example/"}, reasonReferer},
	{"host in the path", []string{"https://evil.example/example.com"}, reasonReferer},
	{"IPv6 literal", []string{"http://[2001:db8::1]:8080/x"}, ""},
	{"other scheme", []string{"ftp://example.com/"}, reasonReferer},
	{"not a URL", []string{"example.com"}, reasonReferer},
	{"two fields", []string{"https://example.com/", "https://example.com/"}, reasonReferer},
	{"none", nil, ""},
	{"empty", []string{""}, ""},
}

func TestHotlink(t *testing.T) {
	hl, err := newHotlink(Hotlink{Referers: []string{"example.com", "*.cdn.example.net", "blog.example.org/gallery/", "[2001:db8::1]"}})
	require.NoError(t, err)
	for _, tt := range hotlinkTests {
		assert.Equal(t, tt.want, hl.check(tt.giveReferer), "%s: Referer %q", tt.name, tt.giveReferer)
	}
	strict, err := newHotlink(Hotlink{Referers: []string{"example.com"}, DenyEmpty: true})
	require.NoError(t, err)
	assert.Equal(t, reasonEmpty, strict.check(nil))
	assert.Equal(t, reasonEmpty, strict.check([]string{""}))
}

func TestHotlinkAnswers403(t *testing.T) {
	p, err := New(Config{Hotlink: Hotlink{Referers: []string{"example.com"}}})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	_, ok := p.Admit(rec, signedRequest("http://h/a.jpg", "192.0.2.1", "Referer", "https://evil.example/"))
	assert.False(t, ok)
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Equal(t, "403 Forbidden\n", rec.Body.String())
}

func TestHotlinkConfig(t *testing.T) {
	for _, tt := range []struct {
		give    Hotlink
		wantErr string
	}{
		{Hotlink{Referers: []string{"https://example.com"}}, "without scheme"},
		{Hotlink{Referers: []string{"*example.com"}}, "wildcard"},
		{Hotlink{Referers: []string{"*"}}, "wildcard"},
		{Hotlink{Referers: []string{"ex ample.com"}}, "not a host name"},
		{Hotlink{Referers: []string{"a..b"}}, "not a host name"},
		{Hotlink{DenyEmpty: true}, "no referers"},
	} {
		_, err := New(Config{Hotlink: tt.give})
		require.Error(t, err, "%+v", tt.give)
		assert.Contains(t, err.Error(), tt.wantErr, "%+v", tt.give)
	}
}

// FuzzSplitReferer: any Referer splits without panicking into a host with
// no port, path or user info, and a path that starts with "/".
func FuzzSplitReferer(f *testing.F) {
	for _, tt := range hotlinkTests {
		for _, r := range tt.giveReferer {
			f.Add(r)
		}
	}
	f.Fuzz(func(t *testing.T, v string) {
		host, path, ok := splitReferer(v)
		if !ok {
			return
		}
		assert.NotEmpty(t, host)
		assert.NotContains(t, host, "/")
		assert.NotContains(t, host, "@")
		assert.True(t, len(path) > 0 && path[0] == '/', "path %q of %q", path, v)
	})
}
