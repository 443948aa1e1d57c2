package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rangeOrigin serves one object as a static file server does, with
// http.ServeContent (Range, If-Range, If-None-Match), counting the body
// bytes it sends. The object can be replaced, and Range support turned off.
type rangeOrigin struct {
	mu          sync.Mutex
	body        []byte
	etag        string
	maxAge      int
	cc          string // Cache-Control instead of max-age=maxAge
	fail        int    // when set, every request is answered with this status
	ignoreRange bool
	extra       []string      // more response fields, name and value
	hold        chan struct{} // when set, requests wait for it to close
	sent        atomic.Int64
	active      atomic.Int64 // handlers running
}

func newRangeOrigin(body []byte, etag string, extra ...string) *rangeOrigin {
	return &rangeOrigin{body: body, etag: etag, maxAge: 3600, extra: extra}
}

// set replaces the object.
func (o *rangeOrigin) set(body []byte, etag string) {
	o.mu.Lock()
	o.body, o.etag = body, etag
	o.mu.Unlock()
}

func (o *rangeOrigin) setIgnoreRange(v bool) {
	o.mu.Lock()
	o.ignoreRange = v
	o.mu.Unlock()
}

// bytesSent returns the body bytes sent, once no handler is still writing.
func (o *rangeOrigin) bytesSent(t testing.TB) int64 {
	t.Helper()
	waitFor(t, "the origin's handlers to return", func() bool { return o.active.Load() == 0 })
	return o.sent.Load()
}

func (o *rangeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.active.Add(1)
	defer o.active.Add(-1)
	if o.hold != nil {
		<-o.hold
	}
	o.mu.Lock()
	body, etag, maxAge, cc, fail, ignore := o.body, o.etag, o.maxAge, o.cc, o.fail, o.ignoreRange
	o.mu.Unlock()
	if fail != 0 {
		w.WriteHeader(fail)
		return
	}
	h := w.Header()
	if cc == "" {
		cc = "max-age=" + strconv.Itoa(maxAge)
	}
	h.Set("Cache-Control", cc)
	h.Set("ETag", etag)
	h.Set("Content-Type", "video/mp4")
	for i := 0; i+1 < len(o.extra); i += 2 {
		h.Set(o.extra[i], o.extra[i+1])
	}
	if ignore {
		r.Header.Del("Range")
		h.Del("Accept-Ranges")
	}
	http.ServeContent(countingWriter{w, &o.sent}, r, "", time.Time{}, bytes.NewReader(body))
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// sliceEnv is an edge that slices, in front of a rangeOrigin, storing in a
// memory tier large enough for the objects of these tests.
type sliceEnv struct {
	*env
	mem *storage.Memory
	src *rangeOrigin
}

func newSliceEnv(t testing.TB, src *rangeOrigin, sliceSize, threshold int64, mod ...func(*edge.Config)) *sliceEnv {
	t.Helper()
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 512 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { mem.Close() }) // after the edge's clean-up, registered later
	mod = append([]func(*edge.Config){func(c *edge.Config) {
		c.Store = mem
		c.SliceSize = sliceSize
		c.SliceThreshold = threshold
	}}, mod...)
	return &sliceEnv{env: newEnv(t, src.ServeHTTP, mod...), mem: mem, src: src}
}

// do sends a request and waits for the fills it started to end, so that
// what they store is visible to the next request and to objects.
func (se *sliceEnv) do(t testing.TB, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	resp, body := se.env.do(t, method, path, hdr...)
	se.quiesce(t)
	return resp, body
}

func (se *sliceEnv) get(t testing.TB, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return se.do(t, http.MethodGet, path, hdr...)
}

// getBody is get for large bodies: it checks the body against want as it
// arrives instead of keeping it.
func (se *sliceEnv) getBody(t testing.TB, path string, want []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, se.edge.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := se.client.Do(req)
	require.NoError(t, err)
	cmp := &compareWriter{want: want}
	_, err = io.Copy(cmp, resp.Body)
	resp.Body.Close()
	require.NoError(t, err, "reading GET %s", path)
	assert.True(t, cmp.ok && cmp.off == len(want), "GET %s: %d bytes, want %d, byte for byte", path, cmp.off, len(want))
	se.quiesce(t)
	return resp
}

// objects lists the metadata of every object stored for path.
func (se *sliceEnv) objects(t testing.TB, path string) []storage.Meta {
	t.Helper()
	url, err := se.h.CanonicalURL(se.edge.URL + path)
	require.NoError(t, err)
	var out []storage.Meta
	require.NoError(t, se.mem.Walk(t.Context(), func(m *storage.Meta) error {
		if m.Key == url || strings.HasPrefix(m.Key, url+"\x00") {
			out = append(out, m.Clone())
		}
		return nil
	}))
	return out
}

// slices returns the stored slices among objects, by ETag.
func slicesByETag(objs []storage.Meta) map[string]int {
	n := map[string]int{}
	for _, m := range objs {
		if strings.Contains(m.Key, "\x00slice=") {
			n[m.Header.Get("Etag")]++
		}
	}
	return n
}

// bigPayload returns n deterministic pseudo-random bytes, fast.
func bigPayload(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func rangeOf(start, end int64) string { return fmt.Sprintf("bytes=%d-%d", start, end) }

// TestSliceColdRangeCostsOneSlice: a cold request for bytes near the end of
// a 64 MiB object costs the origin one 1 MiB slice; a full GET afterwards
// streams the whole object byte for byte and fetches only the slices not
// stored; then everything is a hit.
func TestSliceColdRangeCostsOneSlice(t *testing.T) {
	const size = 64 << 20
	body := bigPayload(size, 1)
	se := newSliceEnv(t, newRangeOrigin(body, `"v1"`), 1<<20, 8<<20)

	start := int64(62<<20 + 12345)
	resp, got := se.get(t, "/movie.mp4", "Range", rangeOf(start, start+99))
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.True(t, bytes.Equal(body[start:start+100], []byte(got)), "the bytes asked for")
	assert.Equal(t, fmt.Sprintf("bytes %d-%d/%d", start, start+99, size), resp.Header.Get("Content-Range"))
	assert.Equal(t, `"v1"`, resp.Header.Get("ETag"))
	assert.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))
	assert.Equal(t, "test-edge; fwd=miss; fwd-status=206", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(1), se.origin.hits.Load(), "origin requests")
	assert.Equal(t, int64(1<<20), se.src.bytesSent(t), "origin bytes: one slice")
	r, _ := se.origin.lastRequest(t)
	assert.Equal(t, rangeOf(62<<20, 63<<20-1), r.Header.Get("Range"), "a slice-aligned range")

	resp, got = se.get(t, "/movie.mp4", "Range", rangeOf(start, start+99))
	assert.True(t, bytes.Equal(body[start:start+100], []byte(got)))
	assert.Equal(t, "test-edge; hit; ttl=3600", resp.Header.Get("Cache-Status"))
	assert.Equal(t, "0", resp.Header.Get("Age"))

	// Across a slice boundary, one slice stored and one not.
	resp, got = se.get(t, "/movie.mp4", "Range", rangeOf(63<<20-10, 63<<20+9))
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.True(t, bytes.Equal(body[63<<20-10:63<<20+10], []byte(got)))
	assert.Equal(t, "test-edge; fwd=partial; fwd-status=206", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(2), se.origin.hits.Load())

	resp = se.getBody(t, "/movie.mp4", body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, strconv.Itoa(size), resp.Header.Get("Content-Length"))
	assert.Equal(t, "test-edge; fwd=partial; fwd-status=206", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(64), se.origin.hits.Load(), "one request per slice, none twice")
	assert.Equal(t, int64(size), se.src.bytesSent(t), "origin bytes: the object once")

	resp = se.getBody(t, "/movie.mp4", body)
	assert.Equal(t, "test-edge; hit; ttl=3600", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(64), se.origin.hits.Load())

	objs := se.objects(t, "/movie.mp4")
	assert.Len(t, objs, 65, "the index and 64 slices")
	assert.Equal(t, map[string]int{`"v1"`: 64}, slicesByETag(objs))
}

// TestSliceMissesCoalesce: concurrent cold requests for one slice cost the
// origin one request; concurrent full GETs of a sliced object fetch each
// missing slice once.
func TestSliceMissesCoalesce(t *testing.T) {
	const clients = 20
	const size, sliceSize = 4 << 20, 256 << 10
	body := bigPayload(size, 2)
	src := newRangeOrigin(body, `"v1"`)
	hold := make(chan struct{})
	src.hold = hold
	se := newSliceEnv(t, src, sliceSize, 1<<20)
	g := &gate{next: se.edge.Config.Handler}
	se.edge.Config.Handler = g

	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			start := int64(10*sliceSize + i*1000)
			resp, got := se.get(t, "/c.mp4", "Range", rangeOf(start, start+999))
			assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
			assert.True(t, bytes.Equal(body[start:start+1000], []byte(got)), "client %d", i)
		})
	}
	waitFor(t, "all clients inside the edge", func() bool { return g.entered.Load() == clients })
	waitFor(t, "the probe to reach the origin", func() bool { return se.origin.hits.Load() == 1 })
	close(hold)
	wg.Wait()
	assert.Equal(t, int64(1), se.origin.hits.Load(), "origin requests for %d concurrent cold clients", clients)
	assert.Equal(t, int64(sliceSize), se.src.bytesSent(t))

	for i := range 8 {
		wg.Go(func() {
			resp, got := se.get(t, "/c.mp4")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.True(t, bytes.Equal(body, []byte(got)), "full GET %d", i)
		})
	}
	wg.Wait()
	assert.Equal(t, int64(size/sliceSize), se.origin.hits.Load(), "each slice fetched once")
	assert.Equal(t, int64(size), se.src.bytesSent(t))
}

// TestSliceOriginIgnoringRange: an origin that answers a Range request with
// a 200 costs one request; the object is fetched and stored whole, and the
// client still gets its range.
func TestSliceOriginIgnoringRange(t *testing.T) {
	const size = 16 << 20
	body := bigPayload(size, 3)
	src := newRangeOrigin(body, `"v1"`)
	src.setIgnoreRange(true)
	se := newSliceEnv(t, src, 1<<20, 8<<20)

	start := int64(size - 1000)
	resp, got := se.get(t, "/n.mp4", "Range", rangeOf(start, size-1))
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.True(t, bytes.Equal(body[start:], []byte(got)))
	assert.Equal(t, "test-edge; fwd=miss; fwd-status=200", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(1), se.origin.hits.Load(), "the 200 to the probe is the fill, not a second request")

	resp, got = se.get(t, "/n.mp4", "Range", rangeOf(0, 9))
	assert.True(t, bytes.Equal(body[:10], []byte(got)))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
	assert.Equal(t, int64(1), se.origin.hits.Load())
	objs := se.objects(t, "/n.mp4")
	require.Len(t, objs, 1, "stored whole, no slices")
	assert.Equal(t, int64(size), objs[0].Size)
}

// TestSliceOriginStopsHonouringRange: slices are dropped when a slice
// request comes back as a 200, and the request is answered from a whole
// fetch.
func TestSliceOriginStopsHonouringRange(t *testing.T) {
	const size = 16 << 20
	body := bigPayload(size, 4)
	src := newRangeOrigin(body, `"v1"`)
	se := newSliceEnv(t, src, 1<<20, 8<<20)
	se.get(t, "/s.mp4", "Range", rangeOf(2<<20, 2<<20+9))
	require.Len(t, se.objects(t, "/s.mp4"), 2, "an index and one slice")

	src.setIgnoreRange(true)
	start := int64(10<<20 + 5)
	resp, got := se.get(t, "/s.mp4", "Range", rangeOf(start, start+9))
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.True(t, bytes.Equal(body[start:start+10], []byte(got)))
	assert.Equal(t, int64(3), se.origin.hits.Load(), "probe, the slice request answered 200, the whole fetch")
	objs := se.objects(t, "/s.mp4")
	require.Len(t, objs, 1, "the slices were dropped; the object is stored whole")
	assert.Equal(t, http.StatusOK, objs[0].Status)

	resp, _ = se.get(t, "/s.mp4", "Range", rangeOf(0, 9))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
	assert.Equal(t, int64(3), se.origin.hits.Load())
}

// TestSliceETagChangeDropsOldSlices: a slice whose ETag differs from the
// index's shows the object changed; the old index and slices are deleted
// and the request is answered from the new representation alone.
func TestSliceETagChangeDropsOldSlices(t *testing.T) {
	const size, sliceSize = 4 << 20, 256 << 10
	a, b := bigPayload(size, 5), bigPayload(size, 6)
	src := newRangeOrigin(a, `"a"`)
	se := newSliceEnv(t, src, sliceSize, 1<<20)
	se.get(t, "/e.mp4", "Range", rangeOf(3*sliceSize, 3*sliceSize+9))
	se.get(t, "/e.mp4", "Range", rangeOf(5*sliceSize, 5*sliceSize+9))
	require.Equal(t, map[string]int{`"a"`: 2}, slicesByETag(se.objects(t, "/e.mp4")))

	src.set(b, `"b"`)
	start := int64(7*sliceSize + 100)
	resp, got := se.get(t, "/e.mp4", "Range", rangeOf(start, start+99))
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.True(t, bytes.Equal(b[start:start+100], []byte(got)), "bytes of the new representation")
	assert.Equal(t, `"b"`, resp.Header.Get("ETag"))
	assert.Equal(t, int64(4), se.origin.hits.Load(), "two probes, the slice showing the change, the new probe")
	objs := se.objects(t, "/e.mp4")
	assert.Equal(t, map[string]int{`"b"`: 1}, slicesByETag(objs), "the old slices are gone")
	for _, m := range objs {
		assert.Equal(t, `"b"`, m.Header.Get("Etag"), "object %q", m.Key)
	}

	resp, got = se.get(t, "/e.mp4", "Range", rangeOf(3*sliceSize, 3*sliceSize+9))
	assert.True(t, bytes.Equal(b[3*sliceSize:3*sliceSize+10], []byte(got)))
	assert.Equal(t, int64(5), se.origin.hits.Load(), "the dropped slice is fetched again")
}

// TestSliceChangeMidResponseAborts: when the object changes after bytes of
// the old representation were sent, the response is broken off rather than
// finished with bytes of the new one; the next request gets the new one.
func TestSliceChangeMidResponseAborts(t *testing.T) {
	const size, sliceSize = 4 << 20, 256 << 10
	a, b := bigPayload(size, 7), bigPayload(size, 8)
	src := newRangeOrigin(a, `"a"`)
	se := newSliceEnv(t, src, sliceSize, 1<<20)
	se.get(t, "/m.mp4", "Range", rangeOf(0, 99)) // slice 0 of a
	src.set(b, `"b"`)

	resp, err := se.client.Get(se.edge.URL + "/m.mp4")
	require.NoError(t, err)
	assert.Equal(t, `"a"`, resp.Header.Get("ETag"), "the header went out with slice 0")
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Error(t, err, "the response is broken off")
	assert.Less(t, len(got), size)
	assert.True(t, bytes.Equal(a[:len(got)], got), "what arrived is all of the old representation")

	resp2, got2 := se.get(t, "/m.mp4")
	assert.Equal(t, `"b"`, resp2.Header.Get("ETag"))
	assert.True(t, bytes.Equal(b, []byte(got2)))
}

// urlBans is a Bans of hard URL purges, matching storage.Meta.URL as the
// purge package does.
type urlBans struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (b *urlBans) ban(url string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]time.Time)
	}
	b.m[url] = at
}

func (b *urlBans) Check(m *storage.Meta) (time.Time, bool, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.m[m.URL]
	return at, false, ok && m.ResponseTime.Before(at)
}

// TestSlicesArePurgedByURL: every slice carries the URL and the tags of
// the whole response, so a purge of the URL reaches all of them.
func TestSlicesArePurgedByURL(t *testing.T) {
	const size, sliceSize = 4 << 20, 256 << 10
	body := bigPayload(size, 9)
	bans := &urlBans{}
	se := newSliceEnv(t, newRangeOrigin(body, `"v1"`, "Surrogate-Key", "movies m42"), sliceSize, 1<<20, func(c *edge.Config) {
		c.Bans = bans
		c.Tags = func(h http.Header) []string { return strings.Fields(h.Get("Surrogate-Key")) }
	})
	se.get(t, "/p.mp4", "Range", rangeOf(2*sliceSize, 2*sliceSize+9))
	se.get(t, "/p.mp4", "Range", rangeOf(6*sliceSize-5, 6*sliceSize+4))
	url, err := se.h.CanonicalURL(se.edge.URL + "/p.mp4")
	require.NoError(t, err)
	objs := se.objects(t, "/p.mp4")
	require.Len(t, objs, 4, "the index and slices 2, 5 and 6")
	for _, m := range objs {
		assert.Equal(t, url, m.URL, "Meta.URL of %q", m.Key)
		assert.Equal(t, []string{"movies", "m42"}, m.Tags, "Meta.Tags of %q", m.Key)
	}

	se.clock.Advance(time.Second)
	purgedAt := se.clock.Now()
	bans.ban(url, purgedAt)
	se.clock.Advance(time.Second)
	resp, got := se.get(t, "/p.mp4", "Range", rangeOf(5*sliceSize, 5*sliceSize+9))
	assert.True(t, bytes.Equal(body[5*sliceSize:5*sliceSize+10], []byte(got)))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss", "the purged index is not used")
	resp, _ = se.get(t, "/p.mp4", "Range", rangeOf(2*sliceSize, 2*sliceSize+9))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss", "the purged slice is not used")
	assert.Equal(t, int64(5), se.origin.hits.Load())
	for _, m := range se.objects(t, "/p.mp4") {
		if m.Key != url+"\x00slice=6" {
			assert.True(t, m.ResponseTime.After(purgedAt), "%q is from after the purge", m.Key)
		}
	}
}

// TestSliceHEADAndConditional: HEAD, conditional and Range requests on a
// sliced object are answered from the index and the slices, as for a whole
// object.
func TestSliceHEADAndConditional(t *testing.T) {
	const size, sliceSize = 4 << 20, 256 << 10
	body := bigPayload(size, 10)
	se := newSliceEnv(t, newRangeOrigin(body, `"v1"`), sliceSize, 1<<20)
	se.get(t, "/h.mp4", "Range", rangeOf(0, 9))

	resp, got := se.do(t, http.MethodHead, "/h.mp4")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, got)
	assert.Equal(t, strconv.Itoa(size), resp.Header.Get("Content-Length"))
	assert.Equal(t, "test-edge; hit; ttl=3600", resp.Header.Get("Cache-Status"))

	tests := []struct {
		name       string
		giveHeader []string
		wantStatus int
	}{
		{"If-None-Match matches", []string{"If-None-Match", `"v1"`}, http.StatusNotModified},
		{"If-None-Match with Range matches", []string{"If-None-Match", `"v1"`, "Range", "bytes=100-"}, http.StatusNotModified},
		{"If-Match fails", []string{"If-Match", `"v0"`}, http.StatusPreconditionFailed},
		{"unsatisfiable range", []string{"Range", fmt.Sprintf("bytes=%d-", size)}, http.StatusRequestedRangeNotSatisfiable},
	}
	for _, tt := range tests {
		resp, got := se.get(t, "/h.mp4", tt.giveHeader...)
		assert.Equal(t, tt.wantStatus, resp.StatusCode, tt.name)
		assert.Empty(t, got, tt.name)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit", tt.name)
	}
	assert.Equal(t, int64(1), se.origin.hits.Load(), "all answered from the index")

	resp, got = se.get(t, "/h.mp4", "Range", "bytes=0-9,-10")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	assert.Equal(t, "multipart/byteranges", mt)
	mr := multipart.NewReader(strings.NewReader(got), params["boundary"])
	for _, want := range []struct{ cr, body string }{
		{fmt.Sprintf("bytes 0-9/%d", size), string(body[:10])},
		{fmt.Sprintf("bytes %d-%d/%d", size-10, size-1, size), string(body[size-10:])},
	} {
		p, err := mr.NextPart()
		require.NoError(t, err)
		assert.Equal(t, want.cr, p.Header.Get("Content-Range"))
		b, _ := io.ReadAll(p)
		assert.Equal(t, want.body, string(b))
	}
	assert.Equal(t, "test-edge; fwd=partial; fwd-status=206", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(2), se.origin.hits.Load(), "the last slice")

	resp, got = se.get(t, "/h.mp4", "Range", "bytes=0-9", "If-Range", `"v0"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "If-Range with another ETag: the whole object")
	assert.True(t, bytes.Equal(body, []byte(got)))
}

// TestSliceRevalidation: a stale index is revalidated with a conditional
// request for the slice needed; a 304 refreshes it without a body, and a
// changed object replaces index and slices.
func TestSliceRevalidation(t *testing.T) {
	const size, sliceSize = 4 << 20, 256 << 10
	a, b := bigPayload(size, 11), bigPayload(size, 12)
	src := newRangeOrigin(a, `"a"`)
	src.maxAge = 60
	se := newSliceEnv(t, src, sliceSize, 1<<20)
	se.get(t, "/r.mp4", "Range", rangeOf(sliceSize, sliceSize+9))
	se.get(t, "/r.mp4", "Range", rangeOf(3*sliceSize, 3*sliceSize+9))
	sent := se.src.bytesSent(t)

	se.clock.Advance(61 * time.Second)
	resp, got := se.get(t, "/r.mp4", "Range", rangeOf(sliceSize, sliceSize+9))
	assert.True(t, bytes.Equal(a[sliceSize:sliceSize+10], []byte(got)))
	assert.Equal(t, "test-edge; fwd=stale; fwd-status=304; ttl=60; stored", resp.Header.Get("Cache-Status"))
	r, _ := se.origin.lastRequest(t)
	assert.Equal(t, `"a"`, r.Header.Get("If-None-Match"))
	assert.Equal(t, rangeOf(sliceSize, 2*sliceSize-1), r.Header.Get("Range"))
	assert.Equal(t, sent, se.src.bytesSent(t), "a 304 has no body")
	resp, _ = se.get(t, "/r.mp4", "Range", rangeOf(3*sliceSize, 3*sliceSize+9))
	assert.Equal(t, "test-edge; hit; ttl=60", resp.Header.Get("Cache-Status"), "the refreshed index keeps its slices")
	assert.Equal(t, int64(3), se.origin.hits.Load())

	src.set(b, `"b"`)
	se.clock.Advance(61 * time.Second)
	resp, got = se.get(t, "/r.mp4", "Range", rangeOf(sliceSize, sliceSize+9))
	assert.True(t, bytes.Equal(b[sliceSize:sliceSize+10], []byte(got)))
	assert.Equal(t, `"b"`, resp.Header.Get("ETag"))
	assert.Equal(t, "test-edge; fwd=stale; fwd-status=206", resp.Header.Get("Cache-Status"))
	assert.Equal(t, map[string]int{`"b"`: 1}, slicesByETag(se.objects(t, "/r.mp4")))
	assert.Equal(t, int64(4), se.origin.hits.Load())
}

// TestSliceStaleIndex: a stale index is served under
// stale-while-revalidate while one background revalidation refreshes it,
// and under stale-if-error when the origin fails (RFC 5861).
func TestSliceStaleIndex(t *testing.T) {
	const size, sliceSize = 4 << 20, 256 << 10
	body := bigPayload(size, 17)
	src := newRangeOrigin(body, `"v1"`)
	src.cc = "max-age=60, stale-while-revalidate=30, stale-if-error=600"
	se := newSliceEnv(t, src, sliceSize, 1<<20)
	se.get(t, "/st.mp4", "Range", rangeOf(0, 9))

	se.clock.Advance(70 * time.Second)
	resp, got := se.get(t, "/st.mp4", "Range", rangeOf(0, 9)) // get waits for the revalidation
	assert.Equal(t, string(body[:10]), got)
	assert.Equal(t, `test-edge; hit; ttl=-10; detail="stale-while-revalidate"`, resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(2), se.origin.hits.Load(), "one background revalidation")
	r, _ := se.origin.lastRequest(t)
	assert.Equal(t, `"v1"`, r.Header.Get("If-None-Match"))
	resp, _ = se.get(t, "/st.mp4", "Range", rangeOf(0, 9))
	assert.Equal(t, "test-edge; hit; ttl=60", resp.Header.Get("Cache-Status"), "refreshed by the 304")

	se.clock.Advance(200 * time.Second)
	src.mu.Lock()
	src.fail = http.StatusServiceUnavailable
	src.mu.Unlock()
	resp, got = se.get(t, "/st.mp4", "Range", rangeOf(0, 9))
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, string(body[:10]), got)
	assert.Equal(t, `test-edge; fwd=stale; fwd-status=503; ttl=-140; detail="stale-if-error"`, resp.Header.Get("Cache-Status"))
	resp, _ = se.get(t, "/st.mp4", "Range", rangeOf(size-10, size-1))
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "a slice not stored cannot be served stale")
}

// TestSliceColdSuffixRange: a cold suffix range cannot know where the end
// is, so it costs slice 0 (which tells the length) and the last slice.
func TestSliceColdSuffixRange(t *testing.T) {
	const size, sliceSize = 4<<20 + 1000, 256 << 10
	body := bigPayload(size, 18)
	se := newSliceEnv(t, newRangeOrigin(body, `"v1"`), sliceSize, 1<<20)
	resp, got := se.get(t, "/sfx.mp4", "Range", "bytes=-2000")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, string(body[size-2000:]), got)
	assert.Equal(t, int64(3), se.origin.hits.Load(), "slice 0, then the last two slices")
	assert.Equal(t, int64(sliceSize+sliceSize+1000), se.src.bytesSent(t))
}

// TestSliceSmallObjectsStayWhole: a Range probe that shows a small object
// stores it whole: at once when the probe covered it, else with one more
// request; later requests are hits.
func TestSliceSmallObjectsStayWhole(t *testing.T) {
	const sliceSize = 256 << 10
	tests := []struct {
		name     string
		giveSize int
		wantHits int64
	}{
		{"smaller than a slice: the probe is the whole", 100 << 10, 1},
		{"between a slice and the threshold: fetched whole", 600 << 10, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bigPayload(tt.giveSize, 13)
			se := newSliceEnv(t, newRangeOrigin(body, `"v1"`), sliceSize, 1<<20)
			resp, got := se.get(t, "/small", "Range", "bytes=10-19")
			assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
			assert.Equal(t, string(body[10:20]), got)
			assert.Equal(t, tt.wantHits, se.origin.hits.Load())
			assert.LessOrEqual(t, se.src.bytesSent(t), int64(tt.giveSize+sliceSize))

			resp, got = se.get(t, "/small")
			assert.True(t, bytes.Equal(body, []byte(got)))
			assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit")
			objs := se.objects(t, "/small")
			require.Len(t, objs, 1)
			assert.Equal(t, http.StatusOK, objs[0].Status, "stored whole")
			assert.Equal(t, tt.wantHits, se.origin.hits.Load())
		})
	}
}

// TestSliceMemoryStaysFlat: streaming a 64 MiB sliced object, cold and
// from the disk tier, allocates a small fraction of its size: no request
// holds the body (or a slice) in memory.
func TestSliceMemoryStaysFlat(t *testing.T) {
	const size = 64 << 20
	body := bigPayload(size, 14)
	disk, err := storage.NewDisk(storage.DiskConfig{Dir: t.TempDir(), MaxBytes: 1 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { disk.Close() })
	<-disk.Ready()
	e := newEnv(t, newRangeOrigin(body, `"v1"`).ServeHTTP, func(c *edge.Config) { c.Store = disk })
	e.get(t, "/flat.mp4", "Range", "bytes=0-0")

	for _, pass := range []string{"fetching 63 slices", "from disk"} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		resp, err := e.client.Get(e.edge.URL + "/flat.mp4")
		require.NoError(t, err)
		cmp := &compareWriter{want: body}
		_, err = io.Copy(cmp, resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		runtime.ReadMemStats(&after)
		assert.True(t, cmp.ok && cmp.off == size, "%s: the body, byte for byte", pass)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d MiB streamed, %.1f MiB allocated in all", pass, size>>20, float64(alloc)/(1<<20))
		assert.Less(t, alloc, uint64(size/4), "%s: allocations while streaming %d bytes", pass, size)
	}
}

// compareWriter checks what is written against want, without keeping it.
type compareWriter struct {
	want []byte
	off  int
	ok   bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if c.off == 0 {
		c.ok = true
	}
	if c.off+len(p) > len(c.want) || !bytes.Equal(c.want[c.off:c.off+len(p)], p) {
		c.ok = false
	}
	c.off += len(p)
	return len(p), nil
}

// TestSlicingOff: with a negative threshold a cold Range request fetches
// the object whole, as before slicing existed.
func TestSlicingOff(t *testing.T) {
	body := bigPayload(2<<20, 15)
	se := newSliceEnv(t, newRangeOrigin(body, `"v1"`), 256<<10, -1)
	resp, got := se.get(t, "/off", "Range", "bytes=-10")
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, string(body[len(body)-10:]), got)
	r, _ := se.origin.lastRequest(t)
	assert.Empty(t, r.Header.Get("Range"))
	assert.Len(t, se.objects(t, "/off"), 1)
}

func TestSliceSizeIsValidated(t *testing.T) {
	_, err := edge.New(edge.Config{Store: nopTier{}, Hosts: []edge.Host{{Transport: http.DefaultTransport}}, SliceSize: 1000})
	assert.ErrorContains(t, err, "SliceSize")
}

// nopTier stores nothing.
type nopTier struct{}

func (nopTier) Get(context.Context, string) (storage.Object, error) { return nil, storage.ErrNotFound }
func (nopTier) Put(context.Context, storage.Meta) (storage.Writer, error) {
	return nil, storage.ErrTooLarge
}
func (nopTier) Update(context.Context, storage.Meta) error { return storage.ErrNotFound }
func (nopTier) Delete(context.Context, string) error       { return nil }

// BenchmarkSliceRangeHit serves a Range request from a sliced 16 MiB
// object, every slice stored, through the full handler; "whole" serves the
// same range from the object stored whole, for comparison.
func BenchmarkSliceRangeHit(b *testing.B) {
	const size = 16 << 20
	body := bigPayload(size, 16)
	for _, mode := range []struct {
		name      string
		threshold int64
	}{{"sliced", 8 << 20}, {"whole", -1}} {
		for _, n := range []int{64 << 10, 1 << 20} {
			b.Run(mode.name+"/"+sizeName(n), func(b *testing.B) {
				se := newSliceEnv(b, newRangeOrigin(body, `"v1"`), 1<<20, mode.threshold)
				se.get(b, "/bench.mp4", "Range", "bytes=0-0")
				se.get(b, "/bench.mp4")
				start := int64(5<<20 + 512<<10) // crosses a slice boundary at 1 MiB
				req, _ := http.NewRequest(http.MethodGet, se.edge.URL+"/bench.mp4", nil)
				req.Header.Set("Range", rangeOf(start, start+int64(n)-1))
				w := &discard{h: make(http.Header, 16)}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					w.n = 0
					se.h.ServeHTTP(w, req)
				}
				require.Equal(b, http.StatusPartialContent, w.status)
				require.Equal(b, int64(n), w.n)
			})
		}
	}
}
