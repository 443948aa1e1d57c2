package storage

import (
	"encoding/binary"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var metaTests = []struct {
	name string
	give Meta
}{
	{"empty", Meta{}},
	{"variant index", Meta{Key: "http://example.com/v", URL: "http://example.com/v", Vary: []string{"Accept-Encoding"}, Variants: []string{"k1", "k2"}}},
	{"every field", Meta{
		Key:                  "GET http://example.com/a.png",
		URL:                  "http://example.com/a.png",
		Status:               http.StatusPartialContent,
		Header:               http.Header{"Content-Type": {"image/png"}, "X-Multi": {"a", "b, c"}, "X-Empty": {""}},
		RequestTime:          time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC),
		ResponseTime:         time.Date(2026, 11, 25, 12, 0, 1, 0, time.UTC),
		OriginTime:           time.Date(2026, 11, 25, 11, 0, 0, 987654321, time.UTC),
		InitialAge:           3 * time.Second,
		Lifetime:             -time.Minute,
		StaleWhileRevalidate: time.Hour,
		StaleIfError:         1<<63 - 1,
		Flags:                0xffffffff,
		Size:                 12345,
		Tags:                 []string{"t1", "ünïcode"},
	}},
	{"times before 1970", Meta{RequestTime: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
	{"long key", Meta{Key: string(make([]byte, 70_000))}},
}

// encodeHeader returns a sealed header area for m with body size and sum.
func encodeHeader(m *Meta, size int64, sum uint64) []byte {
	head := appendMeta(make([]byte, fixedHeaderLen), m)
	metaLen := len(head) - fixedHeaderLen
	area := headerArea(metaLen)
	head = padTo(head, area)
	putHeader(head, fileHeader{area: area, metaLen: metaLen, size: size, bodySum: sum})
	return head
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, tt := range metaTests {
		t.Run(tt.name, func(t *testing.T) {
			buf := encodeHeader(&tt.give, tt.give.Size, 42)
			assert.Zero(t, len(buf)%headerAlign, "header area of %d bytes", len(buf))
			h, got, err := parseHeader(buf)
			require.NoError(t, err)
			assert.Equal(t, uint64(42), h.bodySum)
			assert.Equal(t, int64(len(buf)), h.area)
			want := tt.give.Clone()
			assert.True(t, got.RequestTime.Equal(want.RequestTime), "RequestTime %v, want %v", got.RequestTime, want.RequestTime)
			assert.True(t, got.ResponseTime.Equal(want.ResponseTime), "ResponseTime")
			assert.True(t, got.OriginTime.Equal(want.OriginTime), "OriginTime %v, want %v", got.OriginTime, want.OriginTime)
			got.RequestTime, got.ResponseTime, got.OriginTime = want.RequestTime, want.ResponseTime, want.OriginTime
			assert.Equal(t, want, got)
		})
	}
}

// TestVersion1FilesStayReadable: a file written before Meta.OriginTime
// existed (version 1: the meta ends before it) is read with a zero
// OriginTime, and purges then compare with FetchedAt.
func TestVersion1FilesStayReadable(t *testing.T) {
	for _, tt := range metaTests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.give.Clone()
			m.OriginTime = time.Time{}
			v2 := appendMeta(make([]byte, fixedHeaderLen), &m)
			v1 := v2[:len(v2)-len(appendTime(nil, time.Time{}))] // the same fields, without OriginTime
			metaLen := len(v1) - fixedHeaderLen
			area := headerArea(metaLen)
			head := padTo(v1, area)
			putHeader(head, fileHeader{area: area, metaLen: metaLen, size: m.Size, bodySum: 9})
			binary.LittleEndian.PutUint16(head[4:], diskVersionNoOrigin)
			binary.LittleEndian.PutUint64(head[40:], headerSum(head, metaLen)) // resealed for version 1

			h, got, err := parseHeader(head)
			require.NoError(t, err)
			assert.Equal(t, uint16(diskVersionNoOrigin), h.version)
			assert.True(t, got.OriginTime.IsZero(), "OriginTime %v", got.OriginTime)
			assert.True(t, got.RequestTime.Equal(m.RequestTime) && got.ResponseTime.Equal(m.ResponseTime))
			assert.Equal(t, m.Key, got.Key)
			assert.Equal(t, m.Variants, got.Variants)
			assert.True(t, got.ObtainedAt().Equal(got.FetchedAt()), "a version 1 object is dated by FetchedAt")
		})
	}
	buf := encodeHeader(&metaTests[2].give, 10, 1)
	binary.LittleEndian.PutUint16(buf[4:], 3)
	binary.LittleEndian.PutUint64(buf[40:], headerSum(buf, int(binary.LittleEndian.Uint32(buf[12:]))))
	_, _, err := parseHeader(buf)
	assert.ErrorIs(t, err, errCorrupt, "a version this build does not know")
}

func TestHeaderDetectsDamage(t *testing.T) {
	m := metaTests[2].give
	good := encodeHeader(&m, 100, 7)
	for i := range fixedHeaderLen + 40 {
		for _, bit := range []byte{0x01, 0x80} {
			buf := append([]byte(nil), good...)
			buf[i] ^= bit
			if _, _, err := parseHeader(buf); err == nil {
				t.Errorf("flipping bit %#x of byte %d went unnoticed", bit, i)
			} else {
				assert.ErrorIs(t, err, errCorrupt)
			}
		}
	}
	for n := range fixedHeaderLen + 10 {
		_, _, err := parseHeader(good[:n])
		assert.ErrorIs(t, err, errCorrupt, "header cut at %d bytes", n)
	}
}

func TestParseFileID(t *testing.T) {
	id := keyID("k")
	tests := []struct {
		give string
		want bool
	}{
		{id.String(), true},
		{"0123456789abcdef0123456789abcdef", true},
		{"0123456789ABCDEF0123456789ABCDEF", false},
		{"0123456789abcdef0123456789abcde", false},
		{"0123456789abcdef0123456789abcdeg", false},
		{"", false},
	}
	for _, tt := range tests {
		_, ok := parseFileID(tt.give)
		assert.Equal(t, tt.want, ok, "parseFileID(%q)", tt.give)
	}
}

// FuzzParseHeader feeds damaged and arbitrary headers to the parser: it
// must not panic, and what it accepts must encode back to a header that
// parses to the same metadata.
func FuzzParseHeader(f *testing.F) {
	for _, tt := range metaTests {
		if len(tt.give.Key) < 1000 {
			f.Add(encodeHeader(&tt.give, 10, 1))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, m, err := parseHeader(b)
		if err != nil {
			return
		}
		again := encodeHeader(&m, h.size, h.bodySum)
		_, m2, err := parseHeader(again)
		if err != nil {
			t.Fatalf("re-encoded header does not parse: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("round trip changed %+v into %+v", m, m2)
		}
	})
}

// FuzzDecodeMeta reaches the meta decoder without the checksum in the way.
func FuzzDecodeMeta(f *testing.F) {
	for _, tt := range metaTests {
		if len(tt.give.Key) < 1000 {
			f.Add(appendMeta(nil, &tt.give))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b, diskVersion)
		if err != nil {
			if m, err = decodeMeta(b, diskVersionNoOrigin); err != nil {
				return
			}
		}
		m2, err := decodeMeta(appendMeta(nil, &m), diskVersion)
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("round trip changed %+v into %+v", m, m2)
		}
	})
}
