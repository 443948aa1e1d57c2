package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/internal/metrictest"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The error paths of the fill pipeline (fill.go) that no other test runs,
// and the truthfulness of Cache-Status "stored".

// counterValue returns the value of a counter (with the given label value,
// if any) from a registry, or 0 when it has not been set.
func counterValue(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	for _, m := range metrictest.Series(t, reg, name) {
		if label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestSpillWhenABodyOutgrowsTheTier: a body of unknown length that grows
// past what the tier takes moves to a spool mid-stream. Every client of the
// flight still gets it whole, none is told it was stored, the refusal is
// counted, and the next request goes to the origin again.
func TestSpillWhenABodyOutgrowsTheTier(t *testing.T) {
	body := payload(300 << 10)
	release := make(chan struct{})
	small, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 1 << 20, MaxObjectSize: 128 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { small.Close() })
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body[:100<<10]) // chunked: no Content-Length
		w.(http.Flusher).Flush()
		<-release
		w.Write(body[100<<10:])
	}, func(c *edge.Config) { c.Store, c.Registerer = small, reg })

	leader := startStream(t, e, "/grows")
	leader.readN(t, 100<<10)
	waiter := startStream(t, e, "/grows")
	assert.True(t, bytes.Equal(body[:100<<10], waiter.readN(t, 100<<10)), "the waiter's first bytes")
	close(release)
	assert.True(t, bytes.Equal(body[100<<10:], leader.rest(t)), "the leader's body goes on from the spool")
	assert.True(t, bytes.Equal(body[100<<10:], waiter.rest(t)), "the waiter's body goes on from the spool")
	for _, s := range []*stream{leader, waiter} {
		assert.NotContains(t, s.resp.Header.Get("Cache-Status"), "stored")
	}
	assert.Equal(t, 1.0, counterValue(t, reg, "outpost_cache_writes_total", "too_large"))

	resp, got := e.get(t, "/grows")
	assert.True(t, bytes.Equal(body, []byte(got)))
	assert.Equal(t, "test-edge; fwd=miss; fwd-status=200", resp.Header.Get("Cache-Status"))
	assert.Equal(t, int64(2), e.origin.hits.Load(), "origin requests: the spilled body was not stored")
}

// TestLeaderLeavesBeforeAnUnshareableResponse: the client whose miss
// started a fill goes away while the origin is still thinking; the response
// then turns out private. It is closed at once (the origin sees its write
// fail) rather than read by nobody, and the client that had joined fetches
// its own copy.
func TestLeaderLeavesBeforeAnUnshareableResponse(t *testing.T) {
	release := make(chan struct{})
	firstWrite := make(chan error, 1)
	var mu sync.Mutex
	calls := 0
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		w.Header().Set("Cache-Control", "private")
		if !first {
			io.WriteString(w, "yours")
			return
		}
		<-release
		// Far more than the socket buffers hold: only a reader, or a
		// close, ends this loop.
		chunk := make([]byte, 64<<10)
		var err error
		for i := 0; i < 1024 && err == nil; i++ {
			_, err = w.Write(chunk)
		}
		firstWrite <- err
	})
	g := &gate{next: e.edge.Config.Handler}
	left := make(chan struct{}) // the edge saw the leader's request end
	var once sync.Once
	e.edge.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { context.AfterFunc(r.Context(), func() { close(left) }) })
		g.ServeHTTP(w, r)
	})

	ctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.edge.URL+"/mine", nil)
		if resp, err := e.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the leader's fill to reach the origin", func() bool { return e.origin.hits.Load() == 1 })
	waiterBody := make(chan string, 1)
	go func() {
		_, b := e.get(t, "/mine")
		waiterBody <- b
	}()
	waitFor(t, "the waiter inside the edge", func() bool { return g.entered.Load() == 2 })
	cancel()
	<-leaderDone
	<-left
	close(release)

	select {
	case err := <-firstWrite:
		assert.Error(t, err, "the origin's write of the abandoned private response")
	case <-time.After(10 * time.Second):
		t.Fatal("the abandoned private response was never closed")
	}
	assert.Equal(t, "yours", <-waiterBody, "the waiter fetched its own response")
	assert.Equal(t, int64(2), e.origin.hits.Load())
}

// TestRangeWaitsForABodyOfUnknownLength: a Range request that joins a fill
// whose length is not declared waits for the whole body to learn it, then
// gets its bytes; when the body breaks instead, it gets a 502, never a
// wrong Content-Range.
func TestRangeWaitsForABodyOfUnknownLength(t *testing.T) {
	body := payload(200 << 10)
	for _, broken := range []bool{false, true} {
		t.Run("broken="+strconv.FormatBool(broken), func(t *testing.T) {
			release := make(chan struct{})
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Write(body[:100<<10]) // chunked, past smallFill: announced at once
				w.(http.Flusher).Flush()
				<-release
				if broken {
					panic(http.ErrAbortHandler)
				}
				w.Write(body[100<<10:])
			})
			leader := startStream(t, e, "/unknown")
			leader.readN(t, 100<<10)

			type result struct {
				status int
				hdr    http.Header
				body   []byte
			}
			got := make(chan result, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodGet, e.edge.URL+"/unknown", nil)
				req.Header.Set("Range", "bytes=150000-150099")
				resp, err := e.client.Do(req)
				if err != nil {
					got <- result{}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				got <- result{resp.StatusCode, resp.Header, b}
			}()
			select {
			case r := <-got:
				t.Fatalf("the Range request was answered (%d) before the length was known", r.status)
			case <-time.After(50 * time.Millisecond):
			}
			close(release)
			r := <-got
			if broken {
				assert.Equal(t, http.StatusBadGateway, r.status)
				return
			}
			require.Equal(t, http.StatusPartialContent, r.status)
			assert.Equal(t, fmt.Sprintf("bytes 150000-150099/%d", len(body)), r.hdr.Get("Content-Range"))
			assert.True(t, bytes.Equal(body[150000:150100], r.body))
			assert.Contains(t, r.hdr.Get("Cache-Status"), "collapsed")
			assert.Equal(t, int64(1), e.origin.hits.Load())
		})
	}
}

// TestLargeBodyServedAfterA304: a large object in the disk tier, revalidated
// with a 304, is served whole and by range from its stored body, under the
// refreshed header.
func TestLargeBodyServedAfterA304(t *testing.T) {
	body := payload(3 << 20)
	disk, err := storage.NewDisk(storage.DiskConfig{Dir: t.TempDir(), MaxBytes: 64 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { disk.Close() })
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"big"`)
		w.Header().Set("Cache-Control", "max-age=10")
		if r.Header.Get("If-None-Match") == `"big"` {
			w.Header().Set("X-Refreshed", "yes")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(body)
	}, func(c *edge.Config) { c.Store = disk })

	_, got := e.get(t, "/big.bin")
	require.True(t, bytes.Equal(body, []byte(got)))
	e.clock.Advance(time.Minute)

	resp, got := e.get(t, "/big.bin")
	assert.Equal(t, "test-edge; fwd=stale; fwd-status=304; ttl=10; stored", resp.Header.Get("Cache-Status"))
	assert.Equal(t, "yes", resp.Header.Get("X-Refreshed"))
	assert.Equal(t, strconv.Itoa(len(body)), resp.Header.Get("Content-Length"))
	assert.True(t, bytes.Equal(body, []byte(got)), "the body after a 304: %d bytes", len(got))

	resp, got = e.get(t, "/big.bin", "Range", "bytes=2000000-2999999")
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.True(t, bytes.Equal(body[2000000:3000000], []byte(got)))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, "yes", resp.Header.Get("X-Refreshed"))
	assert.Equal(t, int64(2), e.origin.hits.Load())
}

// TestStoredIsTruthful: Cache-Status says "stored" exactly when a repeat
// of the request is a hit, through a memory tier full of objects read
// often, whose admission policy refuses some newcomers.
func TestStoredIsTruthful(t *testing.T) {
	small, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 1 << 20, MaxObjectSize: 64 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { small.Close() })
	body := strings.Repeat("x", 60<<10)
	e := newEnv(t, static(body, "Cache-Control", "max-age=600"), func(c *edge.Config) { c.Store = small })

	check := func(path string) {
		resp, _ := e.get(t, path)
		stored := strings.HasSuffix(resp.Header.Get("Cache-Status"), "; stored")
		again, _ := e.get(t, path)
		hit := strings.Contains(again.Header.Get("Cache-Status"), "; hit")
		assert.Equal(t, stored, hit, "%s: first answer %q, repeat %q", path, resp.Header.Get("Cache-Status"), again.Header.Get("Cache-Status"))
	}
	for i := range 16 {
		path := fmt.Sprintf("/hot/%d", i)
		check(path)
		for range 20 {
			e.get(t, path)
		}
	}
	for i := range 20 {
		check(fmt.Sprintf("/cold/%d", i))
	}
}

// TestAdmissionRefusalIsNotStored: a commit the tier refuses at admission
// is answered without "stored", counted, and the next request goes to the
// origin again.
func TestAdmissionRefusalIsNotStored(t *testing.T) {
	reg := prometheus.NewRegistry()
	var tier *refusingTier
	e := newEnv(t, static("small body", "Cache-Control", "max-age=600"), func(c *edge.Config) {
		tier = &refusingTier{Tier: c.Store}
		c.Store, c.Registerer = tier, reg
	})
	resp, _ := e.get(t, "/kept")
	assert.Equal(t, "test-edge; fwd=miss; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
	for range 2 {
		resp, body := e.get(t, "/refused")
		assert.Equal(t, "small body", body)
		assert.Equal(t, "test-edge; fwd=miss; fwd-status=200", resp.Header.Get("Cache-Status"))
	}
	assert.Equal(t, int64(3), e.origin.hits.Load())
	assert.Equal(t, 2.0, counterValue(t, reg, "outpost_cache_writes_total", "not_admitted"))
	assert.Equal(t, 1.0, counterValue(t, reg, "outpost_cache_writes_total", "stored"))
}

// refusingTier is a tier whose admission refuses every object under a key
// containing "/refused".
type refusingTier struct{ storage.Tier }

func (t *refusingTier) Put(ctx context.Context, m storage.Meta) (storage.Writer, error) {
	w, err := t.Tier.Put(ctx, m)
	if err != nil || !strings.Contains(m.Key, "/refused") {
		return w, err
	}
	return refusingWriter{w}, nil
}

type refusingWriter struct{ storage.Writer }

func (w refusingWriter) Commit() error {
	w.Writer.Abort()
	return fmt.Errorf("test tier: %w", storage.ErrNotAdmitted)
}

// TestFillPanicIsNotTheNodesEnd: a transport that panics fails the
// requests following its fill with a 502, and the node serves on.
func TestFillPanicIsNotTheNodesEnd(t *testing.T) {
	e := newEnv(t, static("fine", "Cache-Control", "max-age=60"))
	h, err := edge.New(edge.Config{
		Name: "test-edge", Store: e.store,
		Hosts: []edge.Host{{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == "/boom" {
				panic("transport bug")
			}
			return http.DefaultTransport.RoundTrip(r)
		})}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://a.test/boom", nil))
		assert.Equal(t, http.StatusBadGateway, w.Code)
	}
}

// roundTripFunc is a RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSecondHandlerOnARegistryIsAnError: two Handlers registering on one
// Registerer is a configuration error New reports, not a panic.
func TestSecondHandlerOnARegistryIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := edge.Config{Store: nopTier{}, Hosts: []edge.Host{{Transport: http.DefaultTransport}}, Registerer: reg}
	h, err := edge.New(cfg)
	require.NoError(t, err)
	defer h.Close()
	_, err = edge.New(cfg)
	assert.ErrorContains(t, err, "already registered")
}
