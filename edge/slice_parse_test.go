package edge

import (
	"math"
	"net/http"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
)

var contentRangeTests = []struct {
	give                         string
	wantStart, wantEnd, wantSize int64
	wantOK                       bool
}{
	{"bytes 0-99/1000", 0, 99, 1000, true},
	{"bytes 999-999/1000", 999, 999, 1000, true},
	{"BYTES 1-2/3", 1, 2, 3, true}, // RFC 9110 §14.1: range units are case-insensitive
	{" bytes 1-2/3 ", 1, 2, 3, true},
	{"bytes */1000", 0, 0, 0, false}, // unsatisfied-range (a 416's)
	{"bytes 0-99/*", 0, 0, 0, false}, // unknown length: cannot be sliced
	{"bytes 100-99/1000", 0, 0, 0, false},
	{"bytes 0-1000/1000", 0, 0, 0, false},
	{"bytes -1-5/10", 0, 0, 0, false},
	{"bytes 0-+5/10", 0, 0, 0, false},
	{"items 0-1/2", 0, 0, 0, false},
	{"bytes 0-1", 0, 0, 0, false},
	{"", 0, 0, 0, false},
}

func TestParseContentRange(t *testing.T) {
	for _, tt := range contentRangeTests {
		start, end, size, ok := parseContentRange(tt.give)
		assert.Equal(t, tt.wantOK, ok, "parseContentRange(%q)", tt.give)
		if ok {
			assert.Equal(t, []int64{tt.wantStart, tt.wantEnd, tt.wantSize}, []int64{start, end, size}, "parseContentRange(%q)", tt.give)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, tt := range contentRangeTests {
		f.Add(tt.give)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, size, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || start > end || end >= size {
			t.Fatalf("parseContentRange(%q) = %d-%d/%d", s, start, end, size)
		}
		again := contentRange(byteRange{start, end - start + 1}, size)
		s2, e2, z2, ok2 := parseContentRange(again)
		if !ok2 || s2 != start || e2 != end || z2 != size {
			t.Errorf("round trip of %q through %q: %d-%d/%d %v", s, again, s2, e2, z2, ok2)
		}
	})
}

var firstSliceTests = []struct {
	give   string
	wantK  int64
	wantOK bool
}{
	{"bytes=0-99", 0, true},
	{"bytes=1048576-", 1, true},
	{"bytes=3145727-3145728", 2, true},
	{"bytes=5000000-5000001, 10-20", 0, true}, // the first byte any part needs
	{"bytes=-500", 0, true},                   // suffix: the length is not known yet
	{"bytes=10-20,-5", 0, true},
	{"Bytes = 2097152-", 2, true},
	{"items=0-1", 0, false},
	{"bytes=abc-", 0, false},
	{"bytes=", 0, false},
	{"bytes=5", 0, false},
	{"bytes=9223372036854775807-", 0, false}, // no slice-aligned range past it
}

func TestFirstSlice(t *testing.T) {
	for _, tt := range firstSliceTests {
		k, ok := firstSlice(http.Header{"Range": {tt.give}}, 1<<20)
		assert.Equal(t, tt.wantOK, ok, "firstSlice(%q)", tt.give)
		assert.Equal(t, tt.wantK, k, "firstSlice(%q)", tt.give)
	}
	_, ok := firstSlice(http.Header{"Range": {"bytes=0-1", "bytes=2-3"}}, 1<<20)
	assert.False(t, ok, "two Range lines are ignored, as respond ignores them")
	_, ok = firstSlice(http.Header{}, 1<<20)
	assert.False(t, ok)
}

func FuzzFirstSlice(f *testing.F) {
	for _, tt := range firstSliceTests {
		f.Add(tt.give, int64(1<<20))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < minSliceSize || size > 1<<40 {
			return
		}
		k, ok := firstSlice(http.Header{"Range": {s}}, size)
		if ok && (k < 0 || k > (math.MaxInt64-size)/size) {
			t.Errorf("firstSlice(%q, %d) = %d: its range end overflows", s, size, k)
		}
	})
}

func TestSliceRecordRoundTrip(t *testing.T) {
	ix := &sliceIndex{size: 1 << 30, sliceSize: 1 << 20}
	size, sliceSize, ok := parseSliceRecord(string(ix.record()))
	assert.True(t, ok)
	assert.Equal(t, []int64{1 << 30, 1 << 20}, []int64{size, sliceSize})
	for _, bad := range []string{"", "outpost slice index v1 1 2", "outpost slice index v2 1 2\n", "outpost slice index v1 0 2\n", "outpost slice index v1 1 -2\n"} {
		_, _, ok := parseSliceRecord(bad)
		assert.False(t, ok, "parseSliceRecord(%q)", bad)
	}
}

func FuzzSliceRecord(f *testing.F) {
	f.Add("outpost slice index v1 67108864 1048576\n")
	f.Add("outpost slice index v1 1 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		size, sliceSize, ok := parseSliceRecord(s)
		if !ok {
			return
		}
		if size <= 0 || sliceSize <= 0 {
			t.Fatalf("parseSliceRecord(%q) = %d, %d", s, size, sliceSize)
		}
		ix := &sliceIndex{size: size, sliceSize: sliceSize}
		if s2, z2, ok := parseSliceRecord(string(ix.record())); !ok || s2 != size || z2 != sliceSize {
			t.Errorf("round trip of %q: %d %d %v", s, s2, z2, ok)
		}
	})
}

func TestSliceSpans(t *testing.T) {
	ix := &sliceIndex{size: 5<<20 + 7, sliceSize: 1 << 20}
	assert.Equal(t, int64(6), ix.count())
	assert.Equal(t, byteRange{5 << 20, 7}, ix.span(5), "the last slice is short")
	assert.Equal(t, byteRange{1 << 20, 1 << 20}, ix.span(1))
	assert.Equal(t, "http://a.test/v.mp4\x00slice=5", sliceKey("http://a.test/v.mp4", 5))
}

func TestSameRepresentation(t *testing.T) {
	strong := &sliceIndex{size: 10, meta: metaWithHeader(http.Header{"Etag": {`"a"`}, "Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}})}
	lmOnly := &sliceIndex{size: 10, meta: metaWithHeader(http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}})}
	tests := []struct {
		name string
		ix   *sliceIndex
		give http.Header
		size int64
		want bool
	}{
		{"same strong ETag", strong, http.Header{"Etag": {`"a"`}}, 10, true},
		{"same strong ETag, another Last-Modified (another server)", strong, http.Header{"Etag": {`"a"`}, "Last-Modified": {"Tue, 03 Jan 2006 15:04:05 GMT"}}, 10, true},
		{"another ETag", strong, http.Header{"Etag": {`"b"`}}, 10, false},
		{"another length", strong, http.Header{"Etag": {`"a"`}}, 11, false},
		{"same Last-Modified", lmOnly, http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}}, 10, true},
		{"another Last-Modified", lmOnly, http.Header{"Last-Modified": {"Tue, 03 Jan 2006 15:04:05 GMT"}}, 10, false},
		{"an ETag appeared", lmOnly, http.Header{"Etag": {`"x"`}, "Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}}, 10, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.ix.sameRepresentation(tt.give, tt.size), tt.name)
	}
}

func metaWithHeader(h http.Header) storage.Meta { return storage.Meta{Header: h} }
