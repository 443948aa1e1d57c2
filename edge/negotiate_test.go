package edge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var negotiateTests = []struct {
	give string
	want coding
}{
	{"", identity},
	{"gzip", codingGzip},
	{"GZIP", codingGzip},
	{"x-gzip", codingGzip},
	{"gzip, deflate, br", codingBr},
	{"gzip, deflate, br, zstd", codingZstd},
	{"br;q=0.9, gzip", codingGzip},
	{"zstd;q=0.5, br;q=0.5, gzip;q=0.5", codingZstd},
	{"zstd;q=0, br", codingBr},
	{"br;q=0, gzip;q=0, zstd;q=0", identity},
	{"*", codingZstd},
	{"*;q=0.5, zstd;q=0", codingBr},
	{"*;q=0", identity},
	{"identity", identity},
	{"identity;q=1, gzip;q=1", codingGzip},
	{"gzip;q=0.5, identity", identity},
	{"gzip;q=0.5, identity;q=0.4", codingGzip},
	{"gzip;q=0.001", codingGzip},
	{"gzip;q=1.000", codingGzip},
	{"gzip;Q=1", codingGzip},
	{"gzip ; q=0.8 , br ; q=0.7", codingGzip},
	{"deflate, compress", identity},
	{",, gzip ,", codingGzip},
	{"gzip, gzip;q=0", identity}, // a coding named twice takes its lower q-value
	{"gzip;q=0, gzip", identity},
	{"x-gzip, gzip;q=0.5, br;q=0.6", codingBr},
	// Malformed fields are identity, never an error.
	{"gzip;q=2", identity},
	{"gzip;q=0.5555", identity},
	{"gzip;q=abc", identity},
	{"gzip;level=9", identity},
	{"gz ip", identity},
	{"br;q=", identity},
	{"\x00gzip", identity},
}

func TestNegotiate(t *testing.T) {
	offered := []coding{codingZstd, codingBr, codingGzip}
	for _, tt := range negotiateTests {
		got := negotiate([]string{tt.give}, offered)
		assert.Equal(t, tt.want, got, "negotiate(%q)", tt.give)
	}
	// The lines of a repeated field are one list.
	assert.Equal(t, codingBr, negotiate([]string{"gzip;q=0.5", "br"}, offered))
	// Only what is offered is chosen.
	assert.Equal(t, codingGzip, negotiate([]string{"zstd, br, gzip;q=0.1"}, []coding{codingGzip}))
	assert.Equal(t, identity, negotiate([]string{"zstd, br"}, nil))
}

func FuzzNegotiate(f *testing.F) {
	for _, tt := range negotiateTests {
		f.Add(tt.give)
	}
	offered := []coding{codingZstd, codingBr, codingGzip}
	f.Fuzz(func(t *testing.T, s string) {
		c := negotiate([]string{s}, offered)
		if c >= numCodings {
			t.Fatalf("negotiate(%q) = %d, not a coding", s, c)
		}
		// Whatever is chosen was named, or came in through "*".
		if c != identity && !strings.Contains(strings.ToLower(s), c.String()) && !strings.Contains(s, "*") {
			t.Errorf("negotiate(%q) = %v, which the field does not name", s, c)
		}
	})
}
