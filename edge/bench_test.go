package edge_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// discard is a minimal http.ResponseWriter, so the benchmark measures the
// handler and not a recorder.
type discard struct {
	h      http.Header
	status int
	n      int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// BenchmarkHit serves a stored object through the full handler: routing,
// key, lookup, freshness, headers, Cache-Status and the body copy.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			body := payload(size)
			e := newEnv(b, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=3600")
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("ETag", `"bench"`)
				w.Header().Set("Last-Modified", "Sun, 01 Nov 2026 12:00:00 GMT")
				w.Write(body)
			})
			e.get(b, "/obj/bench")
			req := httptest.NewRequest(http.MethodGet, e.edge.URL+"/obj/bench", nil)
			req.Header.Set("User-Agent", "wrk")
			req.Header.Set("Accept", "*/*")
			w := &discard{h: make(http.Header, 16)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.n = 0
				e.h.ServeHTTP(w, req)
			}
			require.Equal(b, http.StatusOK, w.status)
			require.Equal(b, int64(size), w.n)
			require.Equal(b, int64(1), e.origin.hits.Load())
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// BenchmarkHitEncoded serves a stored br variant of a stylesheet, and for
// comparison an identity object of the same length: a hit on a compressed
// variant should cost no more than a hit of its size.
func BenchmarkHitEncoded(b *testing.B) {
	for _, size := range []int{16 << 10, 256 << 10} {
		asset := textAsset(size)
		var variant string
		b.Run("br-of-"+sizeName(size), func(b *testing.B) {
			e := newEnv(b, static(string(asset), "Cache-Control", "public, max-age=3600", "Content-Type", "text/css", "ETag", `"css"`))
			// Past RecompressAfter: the variant is recompressed at the
			// best level in the background; measure the steady state.
			for range 10 {
				e.get(b, "/site.css", "Accept-Encoding", "br")
			}
			e.quiesce(b)
			_, variant = e.get(b, "/site.css", "Accept-Encoding", "br")
			benchHit(b, e, "/site.css", "gzip, deflate, br", len(variant))
		})
		b.Run("identity-same-size-as-br-of-"+sizeName(size), func(b *testing.B) {
			e := newEnv(b, static(string(payload(len(variant))), "Cache-Control", "public, max-age=3600", "Content-Type", "application/octet-stream", "ETag", `"bin"`))
			e.get(b, "/same-size")
			benchHit(b, e, "/same-size", "", len(variant))
		})
	}
}

// benchHit measures hits on path through the handler of e.
func benchHit(b *testing.B, e *env, path, acceptEncoding string, size int) {
	req := httptest.NewRequest(http.MethodGet, e.edge.URL+path, nil)
	req.Header.Set("User-Agent", "wrk")
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	w := &discard{h: make(http.Header, 16)}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		e.h.ServeHTTP(w, req)
	}
	require.Equal(b, http.StatusOK, w.status)
	require.Equal(b, int64(size), w.n)
}
