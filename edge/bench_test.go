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
