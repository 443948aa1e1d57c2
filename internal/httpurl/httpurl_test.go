package httpurl_test

import (
	"testing"

	"github.com/outpost-cdn/outpost/internal/httpurl"
	"github.com/stretchr/testify/assert"
)

func TestParse(t *testing.T) {
	tests := []struct {
		give   string
		wantOK bool
	}{
		{"http://example.com/a", true},
		{"https://example.com:8443/a?b=c", true},
		{"HTTPS://example.com/", true},
		{"http://[::1]:8080/", true},
		{"ftp://example.com/", false},
		{"/relative/path", false},
		{"example.com/a", false},
		{"http:///nohost", false},
		{"http://:80/", false},
		{"http://exa mple.com/", false},
		{"", false},
		{"%zz", false},
	}
	for _, tt := range tests {
		u, err := httpurl.Parse(tt.give)
		if tt.wantOK {
			assert.NoError(t, err, "Parse(%q)", tt.give)
			assert.NotNil(t, u, "Parse(%q)", tt.give)
		} else {
			assert.Error(t, err, "Parse(%q)", tt.give)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"http://example.com/a", "HTTPS://x:1/", "ftp://a/", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := httpurl.Parse(s)
		if err != nil {
			return
		}
		// What Parse accepts it accepts again in its formatted form.
		if _, err := httpurl.Parse(u.String()); err != nil {
			t.Errorf("Parse(%q) accepted %q, whose String %q fails: %v", s, u, u.String(), err)
		}
	})
}
