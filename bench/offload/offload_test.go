package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateIsDeterministicAndShaped(t *testing.T) {
	tests := []struct {
		kind        string
		wantOneHits bool
	}{
		{"zipf", false},
		{"ohw", true},
		{"shift", false},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			spec := traceSpec{Kind: tt.kind, Requests: 20_000, Objects: 2000}
			a, err := generate(spec)
			require.NoError(t, err)
			b, err := generate(spec)
			require.NoError(t, err)
			assert.Equal(t, a, b, "same spec, same trace")
			st := statsOf(a)
			assert.Equal(t, 20_000, st.Requests)
			assert.InDelta(t, 20<<10, st.MedianSize, 4<<10, "median size")
			assert.LessOrEqual(t, st.MaxSize, int64(8<<20))
			ohw := 0
			for _, r := range a {
				if r.id >= 2000 {
					ohw++
				}
			}
			if tt.wantOneHits {
				assert.InDelta(t, 0.3, float64(ohw)/float64(len(a)), 0.02, "share of one-hit wonders")
			} else {
				assert.Zero(t, ohw)
			}
		})
	}
	_, err := generate(traceSpec{Kind: "bursty"})
	assert.ErrorContains(t, err, "bursty")
}

func TestShiftRedrawsTheHotSet(t *testing.T) {
	reqs, err := generate(traceSpec{Kind: "shift", Requests: 20_000, Objects: 2000, ShiftAt: 10_000})
	require.NoError(t, err)
	top := func(part []request) int64 {
		n := map[int64]int{}
		var best int64
		for _, r := range part {
			n[r.id]++
			if n[r.id] > n[best] {
				best = r.id
			}
		}
		return best
	}
	assert.NotEqual(t, top(reqs[:10_000]), top(reqs[10_000:]), "most popular object before and after the shift")
}

func TestTraceRoundTrip(t *testing.T) {
	reqs, err := generate(traceSpec{Requests: 500, Objects: 100})
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, writeTrace(&b, reqs))
	got, err := readTrace(&b)
	require.NoError(t, err)
	assert.Equal(t, reqs, got)
	_, err = readTrace(strings.NewReader("1 10\n1 20\n"))
	assert.ErrorContains(t, err, "line 2")
}

// TestSimulators checks the offline caches on a trace small enough to
// work out by hand, and their order on a real one.
func TestSimulators(t *testing.T) {
	// Capacity 3 bytes of 1-byte objects: a b c a d a b.
	trace := []request{{1, 1}, {2, 1}, {3, 1}, {1, 1}, {4, 1}, {1, 1}, {2, 1}}
	lru := simLRU(trace, 3)
	assert.Equal(t, int64(2), lru.Hits, "LRU hits: a, a (b was evicted by d)")
	bel := simBelady(trace, 3, false)
	assert.Equal(t, int64(3), bel.Hits, "Belady hits: a, a, b (d evicts c, used never again)")

	reqs, err := generate(traceSpec{Kind: "ohw", Requests: 20_000, Objects: 2000})
	require.NoError(t, err)
	l := simLRU(reqs, 8<<20)
	bs := simBelady(reqs, 8<<20, true)
	b := simBelady(reqs, 8<<20, false)
	m, err := simMemory(reqs, 8<<20)
	require.NoError(t, err)
	assert.Greater(t, bs.ObjectHitRatio(), l.ObjectHitRatio(), "Belady-size vs LRU, objects")
	assert.Greater(t, b.ByteHitRatio(), l.ByteHitRatio(), "Belady vs LRU, bytes")
	assert.Greater(t, m.ByteHitRatio(), l.ByteHitRatio(), "Outpost's memory tier vs LRU, bytes, with one-hit wonders")
	assert.Equal(t, int64(len(reqs)), m.Requests)
}

func TestOriginServesObjectsAndRanges(t *testing.T) {
	o, err := newOrigin("127.0.0.1:0", 1<<20)
	require.NoError(t, err)
	defer o.Close()
	get := func(path, rng string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, o.URL()+path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}
	resp, body := get("/obj/7/5000", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, o.body(7, 5000), body)
	assert.Equal(t, "public, max-age=86400", resp.Header.Get("Cache-Control"))
	resp, body = get("/obj/7/5000", "bytes=100-199")
	assert.Equal(t, 206, resp.StatusCode)
	assert.Equal(t, o.body(7, 5000)[100:200], body)
	assert.Equal(t, "bytes 100-199/5000", resp.Header.Get("Content-Range"))
	resp, _ = get("/probe", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, int64(2), o.requests.Load(), "the probe is not counted")
	assert.Equal(t, int64(5100), o.bytes.Load())
	resp, _ = get("/obj/x/5", "")
	assert.Equal(t, 404, resp.StatusCode)
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		give string
		want int64
	}{
		{"64MiB", 64 << 20}, {"2GiB", 2 << 30}, {"512", 512}, {"10KB", 10_000}, {"1 MiB", 1 << 20},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.give)
		require.NoError(t, err, "parseSize(%q)", tt.give)
		assert.Equal(t, tt.want, got, "parseSize(%q)", tt.give)
	}
	_, err := parseSize("12XB")
	assert.Error(t, err)
	assert.Equal(t, "64MiB", sizeFlag(64<<20))
}
