package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const body26 = "abcdefghijklmnopqrstuvwxyz"

// TestConditionalFromCache: clients' conditional requests are answered
// from the stored response (RFC 9110 §13.2.2; RFC 9111 §4.3.2).
func TestConditionalFromCache(t *testing.T) {
	lm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, static(body26, "Cache-Control", "max-age=600", "ETag", `"v1"`,
		"Last-Modified", lm.Format(http.TimeFormat), "Content-Type", "text/plain"))
	e.get(t, "/c")
	tests := []struct {
		name       string
		giveHeader []string
		wantStatus int
	}{
		{"§13.1.2 If-None-Match matches", []string{"If-None-Match", `"v1"`}, 304},
		{"§13.1.2 weak comparison", []string{"If-None-Match", `W/"v1"`}, 304},
		{"§13.1.2 list", []string{"If-None-Match", `"x", "v1"`}, 304},
		{"§13.1.2 star", []string{"If-None-Match", `*`}, 304},
		{"§13.1.2 no match", []string{"If-None-Match", `"v2"`}, 200},
		{"§13.1.3 not modified since", []string{"If-Modified-Since", lm.Format(http.TimeFormat)}, 304},
		{"§13.1.3 modified since", []string{"If-Modified-Since", lm.Add(-time.Hour).Format(http.TimeFormat)}, 200},
		{"§13.1.3 ignored with If-None-Match", []string{"If-None-Match", `"v2"`, "If-Modified-Since", lm.Format(http.TimeFormat)}, 200},
		{"§13.1.3 invalid date ignored", []string{"If-Modified-Since", "yesterday"}, 200},
		{"§13.1.1 If-Match matches", []string{"If-Match", `"v1"`}, 200},
		{"§13.1.1 If-Match fails", []string{"If-Match", `"v2"`}, 412},
		{"§13.1.1 If-Match is strong", []string{"If-Match", `W/"v1"`}, 412},
		{"§13.1.4 unmodified since", []string{"If-Unmodified-Since", lm.Format(http.TimeFormat)}, 200},
		{"§13.1.4 modified since", []string{"If-Unmodified-Since", lm.Add(-time.Hour).Format(http.TimeFormat)}, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get(t, "/c", tt.giveHeader...)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			switch tt.wantStatus {
			case 304:
				assert.Empty(t, body)
				assert.Equal(t, `"v1"`, resp.Header.Get("ETag"), "a 304 carries the validator")
				assert.Equal(t, "max-age=600", resp.Header.Get("Cache-Control"))
				assert.Empty(t, resp.Header.Get("Content-Type"))
			case 200:
				assert.Equal(t, body26, body)
			}
			assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		})
	}
	assert.Equal(t, int64(1), e.origin.hits.Load(), "all answered from the cache")
	r, _ := e.origin.lastRequest(t)
	assert.Empty(t, r.Header.Get("If-None-Match"), "the fill was unconditional")
}

// TestRangesFromCache: Range requests are answered from the stored
// response (RFC 9110 §14).
func TestRangesFromCache(t *testing.T) {
	lm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, static(body26, "Cache-Control", "max-age=600", "ETag", `"v1"`,
		"Last-Modified", lm.Format(http.TimeFormat), "Content-Type", "text/plain"))
	tests := []struct {
		name        string
		giveHeader  []string
		wantStatus  int
		wantBody    string
		wantCRange  string
		wantPartsOf int // multipart parts
	}{
		{"first bytes", []string{"Range", "bytes=0-4"}, 206, "abcde", "bytes 0-4/26", 0},
		{"open range", []string{"Range", "bytes=20-"}, 206, "uvwxyz", "bytes 20-25/26", 0},
		{"suffix", []string{"Range", "bytes=-3"}, 206, "xyz", "bytes 23-25/26", 0},
		{"past the end is clipped", []string{"Range", "bytes=24-100"}, 206, "yz", "bytes 24-25/26", 0},
		{"unsatisfiable", []string{"Range", "bytes=30-40"}, 416, "", "bytes */26", 0},
		{"malformed is ignored", []string{"Range", "bytes=5-1"}, 200, body26, "", 0},
		{"other unit is ignored", []string{"Range", "items=0-1"}, 200, body26, "", 0},
		{"overlapping ranges coalesce", []string{"Range", "bytes=0-5,3-9"}, 206, "abcdefghij", "bytes 0-9/26", 0},
		{"If-Range with the ETag", []string{"Range", "bytes=0-1", "If-Range", `"v1"`}, 206, "ab", "bytes 0-1/26", 0},
		{"If-Range with another ETag", []string{"Range", "bytes=0-1", "If-Range", `"v0"`}, 200, body26, "", 0},
		{"If-Range with the date", []string{"Range", "bytes=0-1", "If-Range", lm.Format(http.TimeFormat)}, 206, "ab", "bytes 0-1/26", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get(t, "/r", tt.giveHeader...)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantStatus != 416 {
				assert.Equal(t, tt.wantBody, body)
			}
			assert.Equal(t, tt.wantCRange, resp.Header.Get("Content-Range"))
			if tt.wantStatus == 206 {
				assert.Equal(t, fmt.Sprint(len(tt.wantBody)), resp.Header.Get("Content-Length"))
			}
		})
	}
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestMultipleRanges: distant ranges become a multipart/byteranges body
// (RFC 9110 §14.6); ranges a few bytes apart are merged into one.
func TestMultipleRanges(t *testing.T) {
	long := strings.Repeat(body26, 40) // 1040 bytes
	e := newEnv(t, static(long, "Cache-Control", "max-age=600", "Content-Type", "text/plain"))
	resp, body := e.get(t, "/mr", "Range", "bytes=0-1,-2")
	require.Equal(t, 206, resp.StatusCode)
	ct := resp.Header.Get("Content-Type")
	require.True(t, strings.HasPrefix(ct, "multipart/byteranges; boundary="), ct)
	boundary := strings.TrimPrefix(ct, "multipart/byteranges; boundary=")
	assert.Equal(t, fmt.Sprint(len(body)), resp.Header.Get("Content-Length"), "exact Content-Length")
	assert.Equal(t, "\r\n--"+boundary+"\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/1040\r\n\r\nab"+
		"\r\n--"+boundary+"\r\nContent-Type: text/plain\r\nContent-Range: bytes 1038-1039/1040\r\n\r\nyz"+
		"\r\n--"+boundary+"--\r\n", body)

	resp, body = e.get(t, "/mr", "Range", "bytes=0-1,10-11")
	assert.Equal(t, "bytes 0-11/1040", resp.Header.Get("Content-Range"), "close ranges merge")
	assert.Equal(t, long[:12], body)
}

// TestHEAD: HEAD is answered from a stored GET, and a HEAD miss fills the
// cache with a GET.
func TestHEAD(t *testing.T) {
	e := newEnv(t, static(body26, "Cache-Control", "max-age=600"))
	resp, body := e.do(t, http.MethodHead, "/head")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, "26", resp.Header.Get("Content-Length"))
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, http.MethodGet, r.Method, "a HEAD miss fills with GET")
	e.quiesce(t) // the HEAD was answered before its fill committed
	resp, body = e.get(t, "/head")
	assert.Equal(t, body26, body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	resp, _ = e.do(t, http.MethodHead, "/head")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestRevalidation304UpdatesStoredHeaders: a stale response with a
// validator is revalidated; the 304 freshens it and updates its stored
// fields without refetching the body (RFC 9111 §4.3.3, §4.3.4, §3.2).
func TestRevalidation304UpdatesStoredHeaders(t *testing.T) {
	version := "1"
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("X-Version", version)
		if r.Header.Get("If-None-Match") == `"e1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body26)
	})
	e.get(t, "/v")
	e.clock.Advance(11 * time.Second)
	version = "2"
	resp, body := e.get(t, "/v")
	assert.Equal(t, body26, body)
	assert.Equal(t, "test-edge; fwd=stale; fwd-status=304; ttl=10; stored", resp.Header.Get("Cache-Status"))
	assert.Equal(t, "2", resp.Header.Get("X-Version"), "fields from the 304 replace stored ones")
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, `"e1"`, r.Header.Get("If-None-Match"))

	resp, body = e.get(t, "/v")
	assert.Equal(t, body26, body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
	assert.Equal(t, "2", resp.Header.Get("X-Version"), "the update was stored")
	assert.Equal(t, int64(2), e.origin.hits.Load())
}
