package edge

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var httpDateTests = []struct {
	give string
	want time.Time // zero: invalid
}{
	{"Sun, 06 Nov 1994 08:49:37 GMT", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},  // IMF-fixdate
	{"Sunday, 06-Nov-94 08:49:37 GMT", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)}, // RFC 850
	{"Sun Nov  6 08:49:37 1994", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},       // asctime
	{"Sun Nov 16 08:49:37 1994", time.Date(1994, 11, 16, 8, 49, 37, 0, time.UTC)},
	{"Thu, 18 Aug 2050 02:01:18 GMT", time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)},
	{"Thu, 18 Aug 2050 2:01:18 GMT", time.Time{}},    // one-digit hour
	{"Thu, 18  Aug  2050 02:01:18 GMT", time.Time{}}, // doubled spaces
	{"Thu, 18 Aug 2050 02:01:18 UTC", time.Time{}},   // zone must be GMT
	{"Thu, 18 Aug 50 02:01:18 GMT", time.Time{}},     // two-digit year in IMF-fixdate
	{"Thu 18 Aug 2050 02:01:18 GMT", time.Time{}},    // no comma
	{"Thu, 18-Aug-2050 02:01:18 GMT", time.Time{}},   // dashes
	{"Thu, 18 Aug 2050 02.01.18 GMT", time.Time{}},   // periods
	{"0", time.Time{}},
	{"", time.Time{}},
}

func TestParseHTTPDate(t *testing.T) {
	for _, tt := range httpDateTests {
		got, ok := parseHTTPDate(tt.give)
		if tt.want.IsZero() {
			assert.False(t, ok, "parseHTTPDate(%q) = %v, want invalid", tt.give, got)
			continue
		}
		assert.True(t, ok, "parseHTTPDate(%q) invalid", tt.give)
		assert.Equal(t, tt.want, got, "parseHTTPDate(%q)", tt.give)
	}
}

func FuzzParseHTTPDate(f *testing.F) {
	for _, tt := range httpDateTests {
		f.Add(tt.give)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseHTTPDate(s)
		if !ok {
			return
		}
		// Whatever parses formats back to an IMF-fixdate that parses to
		// the same instant.
		again, ok := parseHTTPDate(d.Format(http.TimeFormat))
		if !ok || !again.Equal(d) {
			t.Errorf("%q → %v → %q → %v, %v", s, d, d.Format(http.TimeFormat), again, ok)
		}
	})
}
