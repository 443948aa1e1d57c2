package purge

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// invalidRequests are refused as a whole, with a reason containing wantErr.
var invalidRequests = []struct {
	name    string
	give    Request
	wantErr string
}{
	{"empty", Request{}, "nothing to purge"},
	{"soft alone", Request{Soft: true}, "nothing to purge"},
	{"empty lists", Request{URLs: []string{}, Tags: []string{}}, "nothing to purge"},
	{"relative url", Request{URLs: []string{"/img/a.png"}}, `urls[0] "/img/a.png": not an absolute http(s) URL`},
	{"ftp url", Request{URLs: []string{"ftp://files.example.com/a"}}, `urls[0] "ftp://files.example.com/a": not an absolute http(s) URL`},
	{"url without host", Request{URLs: []string{"http:///a"}}, "not an absolute http(s) URL"},
	{"url with empty host and port", Request{URLs: []string{"http://:80/a"}}, "not an absolute http(s) URL"},
	{"empty url", Request{URLs: []string{""}}, `urls[0] "": empty URL`},
	{"unparsable url", Request{URLs: []string{"http://a b/"}}, `urls[0] "http://a b/": not a URL: invalid character " " in host name`},
	{"second url bad", Request{URLs: []string{"http://a.test/", "mailto:x@y"}}, `urls[1] "mailto:x@y"`},
	{"huge url", Request{URLs: []string{"http://a.test/" + strings.Repeat("x", maxURLLen)}}, "longer than 8192 bytes"},
	{"relative prefix", Request{Prefixes: []string{"img/"}}, `prefixes[0] "img/": not an absolute http(s) URL`},
	{"prefix query without path", Request{Prefixes: []string{"http://a.test?x=1"}}, "prefix has a query but no path"},
	{"empty tag", Request{Tags: []string{""}}, `tags[0] "": empty tag`},
	{"tag with space", Request{Tags: []string{"a b"}}, `tags[0] "a b": tag holds a space`},
	{"tag with comma", Request{Tags: []string{"a,b"}}, "tag holds a space, comma"},
	{"long tag", Request{Tags: []string{strings.Repeat("t", MaxTagLen+1)}}, "tag longer than 1024 bytes"},
	{"empty host", Request{Hosts: []string{""}}, `hosts[0] "": empty host`},
	{"host with scheme", Request{Hosts: []string{"http://a.test"}}, "not a host name"},
	{"host with port", Request{Hosts: []string{"a.test:8080"}}, "not a host name"},
	{"host with path", Request{Hosts: []string{"a.test/x"}}, "not a host name"},
	{"bad ipv6", Request{Hosts: []string{"[::g]"}}, "not a host name"},
	{"valid then invalid", Request{URLs: []string{"http://a.test/"}, Tags: []string{"ok"}, Hosts: []string{"bad host"}}, `hosts[0] "bad host"`},
}

func TestPurgeRefusesInvalidRequests(t *testing.T) {
	for _, tt := range invalidRequests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newIndex(t, newClock(), Config{Dir: t.TempDir()})
			_, err := ix.Purge(context.Background(), tt.give)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve, "Purge(%+v)", tt.give)
			assert.Contains(t, ve.Reason, tt.wantErr, "Purge(%+v)", tt.give)
			assert.Zero(t, ix.Len(), "bans recorded")
			assert.Empty(t, ix.Recent(10), "purges recorded")
			assert.Zero(t, ix.log.size-int64(len(logMagic)), "bytes logged")
		})
	}
}

func TestPurgeCanonicalBans(t *testing.T) {
	tests := []struct {
		name string
		give Request
		want []Ban
	}{
		{
			name: "every kind in order",
			give: Request{URLs: []string{"HTTP://A.test/x#frag"}, Prefixes: []string{"https://A.test/img/"}, Tags: []string{"T"}, Hosts: []string{"A.Test"}, All: true},
			want: []Ban{{KindURL, "http://a.test/x"}, {KindPrefix, "https://a.test/img/"}, {KindTag, "T"}, {KindHost, "a.test"}, {Kind: KindAll}},
		},
		{
			name: "repeats dropped after canonicalization",
			give: Request{URLs: []string{"http://a.test/x", "http://A.TEST/x"}, Tags: []string{"t", "t"}, Hosts: []string{"a.test", "A.TEST"}},
			want: []Ban{{KindURL, "http://a.test/x"}, {KindTag, "t"}, {KindHost, "a.test"}},
		},
		{
			name: "prefix without path covers the origin",
			give: Request{Prefixes: []string{"http://a.test", "http://a.test:8080"}},
			want: []Ban{{KindPrefix, "http://a.test/"}, {KindPrefix, "http://a.test:8080/"}},
		},
		{
			name: "ipv6 hosts",
			give: Request{Hosts: []string{"2001:DB8::1", "[::1]"}},
			want: []Ban{{KindHost, "[2001:db8::1]"}, {KindHost, "[::1]"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newIndex(t, newClock(), Config{})
			rec := mustPurge(t, ix, tt.give)
			assert.Equal(t, tt.want, rec.Bans, "Purge(%+v)", tt.give)
			assert.Len(t, rec.ID, 26)
		})
	}
}

func TestPurgeReportsCanonicalizeErrors(t *testing.T) {
	ix := newIndex(t, newClock(), Config{Canonicalize: func(string) (string, error) {
		return "", errors.New("host not served here")
	}})
	_, err := ix.Purge(context.Background(), Request{URLs: []string{"http://elsewhere.test/"}})
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, `urls[0] "http://elsewhere.test/": host not served here`, ve.Reason)
}

func TestKindText(t *testing.T) {
	for k := KindURL; k < kindCount; k++ {
		b, err := k.MarshalText()
		require.NoError(t, err)
		var got Kind
		require.NoError(t, got.UnmarshalText(b))
		assert.Equal(t, k, got, "round trip of %s", b)
	}
	_, err := Kind(0).MarshalText()
	assert.Error(t, err)
	assert.Error(t, new(Kind).UnmarshalText([]byte("URL")))
}
