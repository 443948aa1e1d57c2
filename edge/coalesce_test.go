package edge_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// payload returns n deterministic bytes.
func payload(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// gate counts requests entering a handler, so a test can wait until a
// number of clients are inside the edge.
type gate struct {
	entered atomic.Int64
	next    http.Handler
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.entered.Add(1)
	g.next.ServeHTTP(w, r)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMissesCoalesce: 100 concurrent cold clients cost the origin one
// request, and each gets the whole body byte for byte.
func TestMissesCoalesce(t *testing.T) {
	const clients = 100
	body := payload(256 << 10)
	release := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body)
	})
	g := &gate{next: e.edge.Config.Handler}
	e.edge.Config.Handler = g

	var wg sync.WaitGroup
	results := make([][]byte, clients)
	statuses := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			resp, b := e.get(t, "/cold")
			results[i], statuses[i] = []byte(b), resp.Header.Get("Cache-Status")
		})
	}
	waitFor(t, "all clients inside the edge", func() bool { return g.entered.Load() == clients })
	waitFor(t, "the fill to reach the origin", func() bool { return e.origin.hits.Load() == 1 })
	close(release)
	wg.Wait()

	assert.Equal(t, int64(1), e.origin.hits.Load(), "origin requests for %d concurrent cold clients", clients)
	collapsed := 0
	for i, b := range results {
		require.True(t, bytes.Equal(body, b), "client %d got %d bytes, not the body", i, len(b))
		if bytes.Contains([]byte(statuses[i]), []byte("collapsed")) {
			collapsed++
		}
	}
	assert.GreaterOrEqual(t, collapsed, clients/2, "most clients were collapsed onto the one fetch")
}

// TestWaiterStreamsWhileOriginBlocks: a client that joins a fill receives
// the bytes already fetched while the origin is still stalled mid-body.
func TestWaiterStreamsWhileOriginBlocks(t *testing.T) {
	first, second := payload(64<<10), bytes.Repeat([]byte("z"), 64<<10)
	release := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
		w.Write(first)
		w.(http.Flusher).Flush()
		<-release
		w.Write(second)
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	leader := startStream(t, e, "/stream")
	// The leader has the first half; now a second client joins the fill.
	leader.readN(t, len(first))
	waiter := startStream(t, e, "/stream")
	got := waiter.readN(t, len(first))
	assert.True(t, bytes.Equal(first, got), "the waiter received the first half before the origin finished")
	assert.Contains(t, waiter.resp.Header.Get("Cache-Status"), "collapsed")
	close(release)
	assert.True(t, bytes.Equal(second, waiter.rest(t)))
	assert.True(t, bytes.Equal(second, leader.rest(t)))
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// stream is a response being read incrementally.
type stream struct {
	resp   *http.Response
	cancel context.CancelFunc
}

func startStream(t testing.TB, e *env, path string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.edge.URL+path, nil)
	require.NoError(t, err)
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return &stream{resp: resp, cancel: cancel}
}

func (s *stream) readN(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := io.ReadFull(s.resp.Body, b)
	require.NoError(t, err)
	return b
}

func (s *stream) rest(t testing.TB) []byte {
	t.Helper()
	b, err := io.ReadAll(s.resp.Body)
	require.NoError(t, err)
	return b
}

// TestLeaderLeavingBreaksNobody: the client whose miss started a fill goes
// away mid-body; the fill goes on, the other client gets everything, and
// the object is stored.
func TestLeaderLeavingBreaksNobody(t *testing.T) {
	first, second := payload(32<<10), payload(48<<10)
	release := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
		w.Write(first)
		w.(http.Flusher).Flush()
		<-release
		w.Write(second)
	})
	leader := startStream(t, e, "/leave")
	leader.readN(t, len(first))
	waiter := startStream(t, e, "/leave")
	waiter.readN(t, len(first))
	leader.cancel() // the leading client disconnects
	leader.resp.Body.Close()
	close(release)
	assert.True(t, bytes.Equal(second, waiter.rest(t)), "the waiter's body is whole")

	resp, body := e.get(t, "/leave")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, append(append([]byte{}, first...), second...), []byte(body))
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestUnshareableReleasesWaitersAtOnce: 100 clients wait on a fill whose
// response turns out private; they are released to fetch on their own in
// parallel, so all finish in about two origin round trips, not a hundred.
func TestUnshareableReleasesWaitersAtOnce(t *testing.T) {
	const clients = 100
	const delay = 200 * time.Millisecond
	var seq atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay) // the origin's round trip
		w.Header().Set("Cache-Control", "private, max-age=60")
		io.WriteString(w, "for request "+strconv.FormatInt(seq.Add(1), 10))
	})
	start := time.Now()
	var wg sync.WaitGroup
	bodies := make(chan string, clients)
	for range clients {
		wg.Go(func() {
			resp, b := e.get(t, "/private")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			bodies <- b
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(bodies)
	seen := map[string]bool{}
	for b := range bodies {
		assert.False(t, seen[b], "two clients were given the same private response %q", b)
		seen[b] = true
	}
	assert.Len(t, seen, clients)
	// Serially this would take clients*delay = 20 s; released at once it
	// takes about 2*delay. The bound, half the serial time, is generous for a
	// loaded machine and still fails a queue.
	assert.Less(t, elapsed, clients*delay/2, "100 waiters on a private response took %v", elapsed)
}

// TestTruncatedBodyIsAnErrorAndNotStored: an origin body cut short reaches
// every client as an error and is never stored.
func TestTruncatedBodyIsAnErrorAndNotStored(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			var cut atomic.Bool
			cut.Store(true)
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				if !chunked {
					w.Header().Set("Content-Length", "100000")
				}
				w.Write(payload(50000))
				w.(http.Flusher).Flush()
				if cut.Load() {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.(*net.TCPConn).SetLinger(0)
						conn.Close()
					}
					return
				}
				w.Write(payload(50000))
			})
			// A body cut before its header was sent (under 64 KiB, see
			// Config.StreamDelay) is a 502; one cut while streaming breaks
			// the response. Either way no client takes it for whole.
			var wg sync.WaitGroup
			errs := make(chan error, 5)
			for range 5 {
				wg.Go(func() {
					resp, err := e.client.Get(e.edge.URL + "/cut")
					if err != nil {
						errs <- err
						return
					}
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode == http.StatusBadGateway {
						err = errors.New(resp.Status)
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				assert.Error(t, err, "a client read a truncated body as complete")
			}
			cut.Store(false)
			before := e.origin.hits.Load()
			resp, body := e.get(t, "/cut")
			assert.Equal(t, 100000, len(body))
			assert.NotContains(t, resp.Header.Get("Cache-Status"), "hit", "the truncated body was stored")
			assert.Equal(t, before+1, e.origin.hits.Load())
		})
	}
}
