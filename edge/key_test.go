package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var canonicalTests = []struct {
	giveScheme, giveHost, givePath, giveQuery string
	giveKey                                   *KeyConfig
	want                                      string
	wantErr                                   bool
}{
	{"http", "Example.COM", "/a/b", "", nil, "http://example.com/a/b", false},
	{"http", "example.com:80", "/", "", nil, "http://example.com/", false},
	{"https", "example.com:443", "/", "", nil, "https://example.com/", false},
	{"http", "example.com:8080", "/", "", nil, "http://example.com:8080/", false},
	{"http", "example.com", "", "", nil, "http://example.com/", false},
	{"http", "example.com", "/a/./b/../c", "", nil, "http://example.com/a/c", false},      // RFC 3986 §5.2.4
	{"http", "example.com", "/a/b/..", "", nil, "http://example.com/a/", false},           // trailing dot segment
	{"http", "example.com", "/../../x", "", nil, "http://example.com/x", false},           // above the root
	{"http", "example.com", "/%7Euser/%41", "", nil, "http://example.com/~user/A", false}, // §6.2.2.2 unreserved decoded
	{"http", "example.com", "/a%2fb%2F", "", nil, "http://example.com/a%2Fb%2F", false},   // §6.2.2.1 hex uppercased
	{"http", "example.com", "/a%2e%2e/b", "", nil, "http://example.com/a../b", false},     // %2E is unreserved "."
	{"http", "example.com", "/x", "b=2&a=1", nil, "http://example.com/x?b=2&a=1", false},  // query kept as sent
	{"http", "example.com", "/x", "b=2&a=1&a=0", &KeyConfig{SortQuery: true}, "http://example.com/x?a=1&a=0&b=2", false},
	{"http", "example.com", "/x", "utm_source=x&id=3&utm_medium=y", &KeyConfig{IgnoreQuery: []string{"utm_*"}}, "http://example.com/x?id=3", false},
	{"http", "example.com", "/x", "utm_source=x", &KeyConfig{IgnoreQuery: []string{"utm_*"}}, "http://example.com/x", false},
	{"http", "example.com", "/bad%zz", "", nil, "", true},
	{"http", "", "/", "", nil, "", true},
	{"http", "exa mple.com", "/", "", nil, "", true},
	{"http", "example.com", "relative", "", nil, "", true},
	// The path-confusion forms of web cache deception (issue 17): each is
	// keyed as the form the origin is sent, or refused.
	{"http", "example.com", "/account/x.css", "", nil, "http://example.com/account/x.css", false},
	{"http", "example.com", "/account.css", "", nil, "http://example.com/account.css", false},
	{"http", "example.com", "/account;x.css", "", nil, "http://example.com/account;x.css", false},
	{"http", "example.com", "/account%2fx.css", "", nil, "http://example.com/account%2Fx.css", false},
	{"http", "example.com", "/account%3bx.css", "", nil, "http://example.com/account%3Bx.css", false},
	{"http", "example.com", "/account%23x.css", "", nil, "http://example.com/account%23x.css", false},
	{"http", "example.com", "/account%3fx.css", "", nil, "http://example.com/account%3Fx.css", false},
	{"http", "example.com", "/ACCOUNT/x.css", "", nil, "http://example.com/ACCOUNT/x.css", false}, // paths are case-sensitive (RFC 3986 §6.2.2.1)
	{"http", "example.com", "/account/%2e%2e/x.css", "", nil, "http://example.com/x.css", false},  // an encoded dot segment is one
	{"http", "example.com", "/account/..%2fx.css", "", nil, "", true},                             // a dot segment only after decoding %2F
	{"http", "example.com", "/static/..%2faccount", "", nil, "", true},
	{"http", "example.com", "/static/%2e%2e%2faccount", "", nil, "", true},
	{"http", "example.com", "/static%2f..%2faccount", "", nil, "", true},
	{"http", "example.com", "/static/..%5caccount", "", nil, "", true}, // backslash, as Windows origins read it
	{"http", "example.com", `/static\..ccount`, "", nil, "", true},
	{"http", "example.com", "/static/..;/account", "", nil, "", true}, // servlet containers resolve ..;
	{"http", "example.com", "/static/..%3bx/account", "", nil, "", true},
	{"http", "example.com", "/static/.;x/account", "", nil, "", true},
	{"http", "example.com", "/x.css;..", "", nil, "http://example.com/x.css;..", false}, // a parameter, not a segment
	{"http", "example.com", "/a..b/...", "", nil, "http://example.com/a..b/...", false},
	{"http", "example.com", "/account%00.css", "", nil, "", true}, // NUL ends the path in C origins
}

func TestCanonicalize(t *testing.T) {
	for _, tt := range canonicalTests {
		c, err := canonicalize(tt.giveScheme, tt.giveHost, tt.givePath, tt.giveQuery, tt.giveKey)
		if tt.wantErr {
			assert.Error(t, err, "canonicalize(%q, %q, %q)", tt.giveScheme, tt.giveHost, tt.givePath)
			continue
		}
		if assert.NoError(t, err, "canonicalize(%q, %q, %q)", tt.giveScheme, tt.giveHost, tt.givePath) {
			assert.Equal(t, tt.want, c.String(), "canonicalize(%q, %q, %q, %q)", tt.giveScheme, tt.giveHost, tt.givePath, tt.giveQuery)
			// The upstream URL is the same form.
			assert.Equal(t, tt.want, c.URL().String())
		}
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, tt := range canonicalTests {
		f.Add(tt.giveHost, tt.givePath, tt.giveQuery)
	}
	f.Fuzz(func(t *testing.T, host, path, query string) {
		c, err := canonicalize("http", host, path, query, nil)
		if err != nil {
			return
		}
		// Normalisation is idempotent: the canonical form is its own
		// canonical form.
		again, err := canonicalize("http", c.host, c.path, c.query, nil)
		if err != nil {
			t.Fatalf("canonical form %q rejected: %v", c.String(), err)
		}
		if again.String() != c.String() {
			t.Errorf("canonicalize not idempotent: %q → %q", c.String(), again.String())
		}
		if strings.Contains(c.path, "/./") || strings.Contains(c.path, "/../") {
			t.Errorf("dot segments left in %q", c.path)
		}
		// What goes upstream is the key.
		if u := c.URL().String(); u != c.String() {
			t.Errorf("upstream URL %q differs from key %q", u, c.String())
		}
	})
}
