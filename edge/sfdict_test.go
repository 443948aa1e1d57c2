package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var sfDictTests = []struct {
	give   string
	wantOK bool
}{
	{"max-age=60", true},
	{"max-age=60, no-store", true},
	{"no-store, max-age=60;a=1", true},
	{`private="x-user"`, true},
	{"a=(1 2 3), b=?0, c=:aGVsbG8=:, d=tok/en, e=1.5, f=-3", true},
	{"max-age=10000, &&&&&", false},     // not a key
	{"Max-Age=60", false},               // keys are lowercase
	{"max-age=60,", false},              // trailing comma
	{"max-age=1.2345", false},           // too many fraction digits
	{"max-age=1234567890123456", false}, // integer too long
	{`private="unterminated`, false},    // string not closed
	{"a=?2", false},                     // not a boolean
	{"a=1 b=2", false},                  // missing comma
	{"", true},                          // empty dictionary
}

func TestParseSFDictionary(t *testing.T) {
	for _, tt := range sfDictTests {
		_, ok := parseSFDictionary([]string{tt.give})
		assert.Equal(t, tt.wantOK, ok, "parseSFDictionary(%q)", tt.give)
	}
}

func TestParseCDNCacheControl(t *testing.T) {
	d, ok := parseCDNCacheControl([]string{`max-age=60, no-cache, private="X-A", s-maxage="5", public=?0`})
	assert.True(t, ok)
	assert.Equal(t, int64(60), d.maxAge)
	assert.True(t, d.noCache)
	assert.Equal(t, []string{"x-a"}, d.privateFields)
	assert.Equal(t, int64(unset), d.sMaxAge, "a directive of the wrong type is ignored")
	assert.False(t, d.public, "?0 is false")
}

func FuzzParseSFDictionary(f *testing.F) {
	for _, tt := range sfDictTests {
		f.Add(tt.give)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Never panics; a valid dictionary stays valid with a member added.
		if _, ok := parseSFDictionary([]string{s}); ok && strings.Trim(s, " \t") != "" {
			if _, ok := parseSFDictionary([]string{s, "zz=1"}); !ok {
				t.Errorf("%q is valid but %q is not", s, s+",zz=1")
			}
		}
	})
}
