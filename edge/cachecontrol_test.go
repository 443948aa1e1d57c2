package edge

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
)

var cacheControlTests = []struct {
	give string
	want func(*directives)
}{
	{"max-age=60", func(d *directives) { d.maxAge = 60 }},
	{"MAX-AGE=60", func(d *directives) { d.maxAge = 60 }},                                // §5.2: names are case-insensitive
	{`max-age="60"`, func(d *directives) { d.maxAge = 60 }},                              // quoted value tolerated
	{"max-age=60, max-age=10", func(d *directives) { d.maxAge = 60 }},                    // §4.2.1: first wins
	{"max-age=abc", func(d *directives) { d.invalid = true }},                            // malformed: stale
	{"max-age=-1", func(d *directives) { d.invalid = true }},                             // not delta-seconds
	{"max-age", func(d *directives) { d.invalid = true }},                                // missing value
	{"max-age=99999999999999999999", func(d *directives) { d.maxAge = deltaMax }},        // §1.2.2: capped at 2^31
	{" public ,  s-maxage=30 ", func(d *directives) { d.public = true; d.sMaxAge = 30 }}, // whitespace around elements
	{"max-age =60", func(d *directives) {}},                                              // §5.2: no space before "="
	{"max-age= 60", func(d *directives) { d.invalid = true }},                            // nor after it
	{"no-cache", func(d *directives) { d.noCache = true }},
	{`no-cache="Set-Cookie, X-A"`, func(d *directives) { d.noCacheFields = []string{"set-cookie", "x-a"} }},
	{`private="X-User"`, func(d *directives) { d.privateFields = []string{"x-user"} }},
	{"private, no-store", func(d *directives) { d.private = true; d.noStore = true }},
	{"must-revalidate, proxy-revalidate", func(d *directives) { d.mustRevalidate = true; d.proxyRevalidate = true }},
	{"must-understand, no-transform, immutable", func(d *directives) { d.mustUnderstand = true; d.noTransform = true; d.immutable = true }},
	{"max-stale", func(d *directives) { d.maxStale = deltaMax }},
	{"max-stale=5, min-fresh=7, only-if-cached", func(d *directives) { d.maxStale = 5; d.minFresh = 7; d.onlyIfCached = true }},
	{"stale-while-revalidate=30, stale-if-error=600", func(d *directives) { d.swr = 30; d.sie = 600 }},
	{"nothing-to-see-here, foo=bar", func(d *directives) {}}, // §5.2.3: unknown directives ignored
	{`foo="a,b", max-age=5`, func(d *directives) { d.maxAge = 5 }},
	{",,, ,", func(d *directives) {}},
	{"", func(d *directives) {}},
}

func TestParseCacheControl(t *testing.T) {
	for _, tt := range cacheControlTests {
		want := newDirectives()
		tt.want(&want)
		got := parseCacheControl([]string{tt.give})
		assert.Equal(t, want, got, "parseCacheControl(%q)", tt.give)
	}
	// Several field lines are one list (RFC 9110 §5.3).
	got := parseCacheControl([]string{"max-age=5", "no-cache, public"})
	assert.Equal(t, int64(5), got.maxAge)
	assert.True(t, got.noCache && got.public)
}

func FuzzParseCacheControl(f *testing.F) {
	for _, tt := range cacheControlTests {
		f.Add(tt.give)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := parseCacheControl([]string{s})
		if again := parseCacheControl([]string{d.String()}); !reflect.DeepEqual(again, d) {
			t.Errorf("round trip of %q: %+v became %+v via %q", s, d, again, d.String())
		}
	})
}
