package edge_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// textAsset returns n bytes of CSS-like text that compresses well.
func textAsset(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, ".rule-%d { color: #%06x; margin: %dpx %dpx; }\n", i, i*2654435761%0xffffff, i%17, i%5)
	}
	return b.Bytes()[:n]
}

// decode returns body decoded from the content coding ce.
func decode(t testing.TB, ce string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch ce {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		defer zr.Close()
		r = zr
	case "":
		return body
	default:
		t.Fatalf("unknown coding %q", ce)
	}
	out, err := io.ReadAll(r)
	require.NoError(t, err, "decoding %s", ce)
	return out
}

// compressEnv is an edge with metrics in front of an origin serving asset
// with the given header fields.
func compressEnv(t testing.TB, asset []byte, mod func(*edge.Config), hdr ...string) (*env, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Write(asset)
	}, func(c *edge.Config) {
		c.Registerer = reg
		if mod != nil {
			mod(c)
		}
	})
	return e, reg
}

// TestCompressionRoundTrips: a client that accepts a coding gets the asset
// encoded with it, with Vary, a distinct strong ETag and, once stored, an
// exact Content-Length; the origin is asked once, for identity.
func TestCompressionRoundTrips(t *testing.T) {
	asset := textAsset(100 << 10)
	e, _ := compressEnv(t, asset, nil, "Content-Type", "text/css", "Cache-Control", "max-age=600", "ETag", `"v1"`)
	for _, ce := range []string{"zstd", "br", "gzip"} {
		for i := range 2 {
			resp, body := e.get(t, "/site.css", "Accept-Encoding", ce)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, ce, resp.Header.Get("Content-Encoding"), "request %d for %s", i, ce)
			assert.Equal(t, `"v1-`+ce+`"`, resp.Header.Get("ETag"))
			assert.Contains(t, resp.Header.Values("Vary"), "Accept-Encoding")
			assert.True(t, bytes.Equal(asset, decode(t, ce, []byte(body))), "%s body decodes to the asset", ce)
			assert.Less(t, len(body), len(asset)/3, "%s shrinks CSS", ce)
			if i == 1 {
				assert.Equal(t, "test-edge; hit; ttl=600", resp.Header.Get("Cache-Status"))
				assert.Equal(t, strconv.Itoa(len(body)), resp.Header.Get("Content-Length"), "a stored variant has an exact length")
			}
		}
	}
	resp, body := e.get(t, "/site.css")
	assert.Empty(t, resp.Header.Get("Content-Encoding"), "no Accept-Encoding: identity")
	assert.Equal(t, `"v1"`, resp.Header.Get("ETag"))
	assert.Contains(t, resp.Header.Values("Vary"), "Accept-Encoding")
	assert.True(t, bytes.Equal(asset, []byte(body)))
	assert.Equal(t, int64(1), e.origin.hits.Load(), "origin requests")
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, "identity", r.Header.Get("Accept-Encoding"), "what the origin is asked for")
}

// TestCompressionNegotiation: q-values and server preference pick the
// coding; q=0 refuses; malformed fields get identity.
func TestCompressionNegotiation(t *testing.T) {
	asset := textAsset(8 << 10)
	e, _ := compressEnv(t, asset, nil, "Content-Type", "application/javascript", "Cache-Control", "max-age=600")
	for _, tt := range []struct{ give, want string }{
		{"gzip, deflate, br, zstd", "zstd"},
		{"gzip, br", "br"},
		{"br;q=0.5, gzip", "gzip"},
		{"zstd;q=0, br;q=0, gzip", "gzip"},
		{"identity", ""},
		{"*;q=0, identity", ""},
		{"gzip;q=0.5, identity", ""},
		{"gzip;q=bad", ""},
		{"deflate", ""},
	} {
		resp, body := e.get(t, "/app.js", "Accept-Encoding", tt.give)
		assert.Equal(t, tt.want, resp.Header.Get("Content-Encoding"), "Accept-Encoding %q", tt.give)
		assert.True(t, bytes.Equal(asset, decode(t, tt.want, []byte(body))), "Accept-Encoding %q", tt.give)
	}
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestCompressionLeavesAlone: no-transform, small bodies, types not on the
// list and responses the origin encoded are never compressed (again).
func TestCompressionLeavesAlone(t *testing.T) {
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	for _, tt := range []struct {
		name   string
		body   []byte
		hdr    []string
		wantCE string
	}{
		{"no-transform", textAsset(8 << 10), []string{"Content-Type", "text/css", "Cache-Control", "max-age=60, no-transform"}, ""},
		{"small", textAsset(900), []string{"Content-Type", "text/css", "Cache-Control", "max-age=60"}, ""},
		{"binary", textAsset(8 << 10), []string{"Content-Type", "image/png", "Cache-Control", "max-age=60"}, ""},
		{"woff2", textAsset(8 << 10), []string{"Content-Type", "font/woff2", "Cache-Control", "max-age=60"}, ""},
		{"already gzip", gz(textAsset(8 << 10)), []string{"Content-Type", "text/css", "Content-Encoding", "gzip", "Cache-Control", "max-age=60"}, "gzip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := compressEnv(t, tt.body, nil, tt.hdr...)
			for range 2 {
				resp, body := e.get(t, "/a", "Accept-Encoding", "zstd, br, gzip")
				assert.Equal(t, tt.wantCE, resp.Header.Get("Content-Encoding"))
				assert.True(t, bytes.Equal(tt.body, []byte(body)), "the body as the origin sent it")
			}
			assert.Equal(t, int64(1), e.origin.hits.Load())
		})
	}
}

// TestCompressionConditionalsAndRanges: each variant answers its own
// validators and ranges over its own bytes.
func TestCompressionConditionalsAndRanges(t *testing.T) {
	asset := textAsset(64 << 10)
	e, _ := compressEnv(t, asset, nil, "Content-Type", "text/css", "Cache-Control", "max-age=600", "ETag", `"v1"`)
	_, whole := e.get(t, "/s.css", "Accept-Encoding", "br")

	resp, _ := e.get(t, "/s.css", "Accept-Encoding", "br", "If-None-Match", `"v1-br"`)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode, "the br variant's own ETag")
	resp, body := e.get(t, "/s.css", "Accept-Encoding", "gzip", "If-None-Match", `"v1-br"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another variant's ETag does not match")
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	assert.True(t, bytes.Equal(asset, decode(t, "gzip", []byte(body))))
	resp, _ = e.get(t, "/s.css", "If-None-Match", `"v1"`)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode, "identity keeps the origin's ETag")

	resp, part := e.get(t, "/s.css", "Accept-Encoding", "br", "Range", "bytes=10-109")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, fmt.Sprintf("bytes 10-109/%d", len(whole)), resp.Header.Get("Content-Range"))
	assert.Equal(t, whole[10:110], part, "a range of the encoded bytes")
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestCompressionOnceForManyClients: 200 clients asking for br on a cold
// object cost one origin fetch and one compression, and all decode to the
// asset.
func TestCompressionOnceForManyClients(t *testing.T) {
	const clients = 200
	asset := textAsset(256 << 10)
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "text/css")
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(asset)
	}, func(c *edge.Config) { c.Registerer = reg })
	g := &gate{next: e.edge.Config.Handler}
	e.edge.Config.Handler = g
	var wg sync.WaitGroup
	bodies := make([][]byte, clients)
	ces := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			resp, b := e.get(t, "/cold.css", "Accept-Encoding", "br")
			bodies[i], ces[i] = []byte(b), resp.Header.Get("Content-Encoding")
		})
	}
	waitFor(t, "all clients inside the edge", func() bool { return g.entered.Load() == clients })
	waitFor(t, "the fill to reach the origin", func() bool { return e.origin.hits.Load() == 1 })
	close(release)
	wg.Wait()
	for i := range clients {
		require.Equal(t, "br", ces[i], "client %d", i)
		require.True(t, bytes.Equal(asset, decode(t, "br", bodies[i])), "client %d's body", i)
	}
	assert.Equal(t, int64(1), e.origin.hits.Load(), "origin requests")
	assert.Equal(t, float64(len(asset)), counterValueLabels(t, reg, "outpost_compression_input_bytes_total", "br", "fast"), "bytes compressed: the asset once")
}

// counterValueLabels returns a counter's value for the given label values,
// in label order.
func counterValueLabels(t testing.TB, reg *prometheus.Registry, name string, values ...string) float64 {
	t.Helper()
metric:
	for _, m := range metrictest.Series(t, reg, name) {
		for i, l := range m.GetLabel() {
			if i >= len(values) || l.GetValue() != values[i] {
				continue metric
			}
		}
		return m.GetCounter().GetValue()
	}
	return 0
}

// TestDecodedForClientsThatDoNotAccept: a response the origin sent gzipped
// is stored as sent; a client that refuses gzip gets it decoded with an
// exact length and a weak ETag; one that would expand past the bound is
// refused, not served.
func TestDecodedForClientsThatDoNotAccept(t *testing.T) {
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	asset := textAsset(50 << 10)
	e, _ := compressEnv(t, gz(asset), nil, "Content-Type", "text/css", "Content-Encoding", "gzip", "Cache-Control", "max-age=60", "ETag", `"g"`)
	for range 2 { // a miss, then a hit
		resp, body := e.get(t, "/g.css", "Accept-Encoding", "br")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Content-Encoding"))
		assert.Equal(t, strconv.Itoa(len(asset)), resp.Header.Get("Content-Length"))
		assert.Equal(t, `W/"g"`, resp.Header.Get("ETag"))
		assert.True(t, bytes.Equal(asset, []byte(body)))
	}
	resp, body := e.get(t, "/g.css", "Accept-Encoding", "gzip")
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	assert.True(t, bytes.Equal(asset, decode(t, "gzip", []byte(body))))
	assert.Equal(t, int64(1), e.origin.hits.Load())

	bomb := gz(make([]byte, 8<<20))
	reg := prometheus.NewRegistry()
	e2 := newEnv(t, static(string(bomb), "Content-Type", "application/json", "Content-Encoding", "gzip", "Cache-Control", "max-age=60"),
		func(c *edge.Config) { c.Registerer, c.Compression.MaxDecompressed = reg, 1<<20 })
	for range 2 { // a miss, then a hit
		resp, _ = e2.get(t, "/bomb.json", "Accept-Encoding", "identity")
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "a body expanding past the bound is refused")
	}
	assert.Equal(t, 2.0, counterValue(t, reg, "outpost_decompression_refused_total", ""))
	resp, body = e2.get(t, "/bomb.json", "Accept-Encoding", "gzip")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a client that accepts gzip gets it as sent")
	assert.Equal(t, len(bomb), len(body))
}

// TestCompressionVariantsFollowTheirBase: a 304 refresh keeps the variants
// (no second compression); an unsafe request's invalidation removes them
// with the base; a variant hit often enough is recompressed at the best
// level and replaced.
func TestCompressionVariantsFollowTheirBase(t *testing.T) {
	asset := textAsset(32 << 10)
	var refreshes int
	var mu sync.Mutex
	e, reg := compressEnv(t, nil, func(c *edge.Config) { c.Compression.RecompressAfter = 3 })
	e.origin.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.origin.hits.Add(1)
		w.Header().Set("Date", e.clock.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "text/css")
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			mu.Lock()
			refreshes++
			mu.Unlock()
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodGet {
			w.Write(asset)
		}
	})
	e.get(t, "/v.css", "Accept-Encoding", "gzip")
	fast := counterValueLabels(t, reg, "outpost_compression_input_bytes_total", "gzip", "fast")
	e.clock.Advance(time.Minute)
	resp, body := e.get(t, "/v.css", "Accept-Encoding", "gzip")
	assert.Equal(t, "test-edge; fwd=stale; fwd-status=304; ttl=10; stored", resp.Header.Get("Cache-Status"))
	assert.True(t, bytes.Equal(asset, decode(t, "gzip", []byte(body))))
	resp, _ = e.get(t, "/v.css", "Accept-Encoding", "gzip")
	assert.Equal(t, "test-edge; hit; ttl=10", resp.Header.Get("Cache-Status"))
	assert.Equal(t, fast, counterValueLabels(t, reg, "outpost_compression_input_bytes_total", "gzip", "fast"), "the refreshed variant was not compressed again")
	assert.Equal(t, 1, refreshes)

	// Hits past RecompressAfter: compressed again, at the best level.
	for range 3 {
		e.get(t, "/v.css", "Accept-Encoding", "gzip")
	}
	e.quiesce(t)
	assert.Equal(t, float64(len(asset)), counterValueLabels(t, reg, "outpost_compression_input_bytes_total", "gzip", "best"))
	resp, body = e.get(t, "/v.css", "Accept-Encoding", "gzip")
	assert.Equal(t, "test-edge; hit; ttl=10", resp.Header.Get("Cache-Status"))
	assert.True(t, bytes.Equal(asset, decode(t, "gzip", []byte(body))), "the best-level variant decodes to the asset")

	// An unsafe request invalidates the URL: base and variants go.
	e.do(t, http.MethodPost, "/v.css")
	var left []string
	e.store.Walk(t.Context(), func(m *storage.Meta) error { left = append(left, m.Key); return nil })
	assert.Empty(t, left, "objects left after the invalidation")
}

// TestCompressionOff: compression off passes responses as sent and keys
// a varying response by the one coding a client would get.
func TestCompressionOff(t *testing.T) {
	asset := textAsset(8 << 10)
	e, _ := compressEnv(t, asset, func(c *edge.Config) { c.Compression.Off = true }, "Content-Type", "text/css", "Cache-Control", "max-age=60")
	resp, body := e.get(t, "/off.css", "Accept-Encoding", "gzip, br")
	assert.Empty(t, resp.Header.Get("Content-Encoding"))
	assert.Empty(t, resp.Header.Get("Vary"))
	assert.True(t, bytes.Equal(asset, []byte(body)))
	r, _ := e.origin.lastRequest(t)
	assert.Equal(t, "br", r.Header.Get("Accept-Encoding"), "the normalised coding goes upstream")
}

// TestCompressionConfigIsValidated: bad types and codings are refused.
func TestCompressionConfigIsValidated(t *testing.T) {
	for _, c := range []edge.CompressionConfig{
		{Types: []string{"text"}},
		{Types: []string{"*/*x"}},
		{Codings: []string{"deflate"}},
		{Codings: []string{"identity"}},
		{MinSize: -1},
	} {
		_, err := edge.New(edge.Config{Store: nopTier{}, Hosts: []edge.Host{{Transport: http.DefaultTransport}}, Compression: c})
		assert.Error(t, err, "%+v", c)
	}
}
