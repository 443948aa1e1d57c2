package origin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadURL returns the URL of a server that no longer listens.
func deadURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// hangUp closes the connection without a response, after reading the body.
func hangUp(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// echo answers the request body, read whole first: an HTTP/1 server may
// stop reading the request once the response has begun.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Write(b)
}

// unbuffered is a request body that net/http cannot rewind.
func unbuffered(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

func TestRetries(t *testing.T) {
	small := strings.Repeat("s", 1000)
	large := strings.Repeat("L", 100<<10)
	tests := []struct {
		name       string
		giveFirst  http.HandlerFunc // nil: the first server is not listening
		giveMethod string
		giveBody   io.Reader
		wantStatus int    // 0: an error
		wantBody   string // from the second server, which echoes
		wantFirst  int64  // requests that reached the first server
		wantSecond int64  // requests that reached the second server
	}{
		{name: "connect failure, GET", giveMethod: "GET", wantStatus: 200, wantSecond: 1},
		{name: "connect failure, POST without body", giveMethod: "POST", wantStatus: 200, wantSecond: 1},
		{name: "connect failure, POST with small buffered body", giveMethod: "POST", giveBody: strings.NewReader(small),
			wantStatus: 200, wantBody: small, wantSecond: 1},
		{name: "connect failure, POST with unbuffered body", giveMethod: "POST", giveBody: unbuffered(small)},
		// How much to buffer is the caller's choice: a body it made
		// replayable is replayed, however large.
		{name: "connect failure, PUT with large buffered body", giveMethod: "PUT", giveBody: strings.NewReader(large),
			wantStatus: 200, wantBody: large, wantSecond: 1},
		{name: "hang-up, GET", giveFirst: hangUp, giveMethod: "GET", wantStatus: 200, wantFirst: 1, wantSecond: 1},
		{name: "hang-up, PUT with small buffered body", giveFirst: hangUp, giveMethod: "PUT", giveBody: bytes.NewReader([]byte(small)),
			wantStatus: 200, wantBody: small, wantFirst: 1, wantSecond: 1},
		{name: "hang-up, POST without body", giveFirst: hangUp, giveMethod: "POST", wantFirst: 1},
		{name: "hang-up, POST with small buffered body", giveFirst: hangUp, giveMethod: "POST", giveBody: strings.NewReader(small), wantFirst: 1},
		{name: "503, GET", giveFirst: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, giveMethod: "GET",
			wantStatus: 503, wantFirst: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := newOrigin(t, "second")
			second.handle(echo)
			first := Server{URL: deadURL(t)}
			var firstOrigin *testOrigin
			if tt.giveFirst != nil {
				firstOrigin = newOrigin(t, "first")
				firstOrigin.handle(tt.giveFirst)
				first.URL = firstOrigin.URL
			}
			p := newTestPool(t, Config{Origins: []Server{first, {URL: second.URL}}}) // round robin: first goes first
			req, err := http.NewRequest(tt.giveMethod, "http://static.example.com/upload", tt.giveBody)
			require.NoError(t, err)

			status, body, err := send(p, req)

			if tt.wantStatus == 0 {
				var oe *Error
				require.ErrorAs(t, err, &oe)
				assert.Equal(t, first.URL, oe.Server, "the error names the first server")
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.wantStatus, status)
				assert.Equal(t, tt.wantBody, body, "the body the second server received")
			}
			if firstOrigin != nil {
				assert.Equal(t, tt.wantFirst, firstOrigin.hits.Load(), "requests at the first server")
			}
			assert.Equal(t, tt.wantSecond, second.hits.Load(), "requests at the second server")
			assert.Equal(t, uint64(tt.wantSecond), p.g.retries.Load(), "retries")
			st := p.Servers()[0]
			assert.Equal(t, uint64(1), st.Requests, "attempts at the first server")
			assert.Equal(t, uint64(1), st.Failures, "failures of the first server")
			assert.Zero(t, st.InFlight)
		})
	}
}

func TestOnlyServerIsNotRetried(t *testing.T) {
	o := newOrigin(t, "only")
	o.handle(hangUp)
	p := newTestPool(t, Config{Origins: servers(o)})

	_, _, err := fetch(t, p, "http://static.example.com/a.png")

	require.Error(t, err)
	assert.Equal(t, int64(1), o.hits.Load())
}

func TestCanceledRequestIsNotRetriedNorCounted(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	arrived := make(chan struct{})
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	p := newTestPool(t, Config{Origins: servers(a, b), Ejection: Ejection{Failures: 1}})
	req, err := http.NewRequest(http.MethodGet, "http://static.example.com/a.png", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(req.Context())
	go func() {
		<-arrived
		cancel()
	}()

	_, err = p.RoundTrip(req.WithContext(ctx))

	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, b.hits.Load(), "retried")
	st := p.Servers()[0]
	assert.True(t, st.Up, "a client's cancel ejected the server")
	assert.Zero(t, st.Failures)
}

func TestOriginDyingUnderLoadCausesNoClientError(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	p := newTestPool(t, Config{Origins: servers(a, b), Balance: LeastRequests})
	const workers, each = 4, 150
	var (
		done     atomic.Int64
		killOnce sync.Once
		wg       sync.WaitGroup
		errs     = make(chan error, workers*each)
	)
	for range workers {
		wg.Go(func() {
			for range each {
				if done.Add(1) == workers*each/3 {
					killOnce.Do(func() { go b.Close() })
				}
				status, _, err := fetch(t, p, "http://static.example.com/a.png")
				if err == nil && status != http.StatusOK {
					err = errors.New(http.StatusText(status))
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)

	for err := range errs {
		t.Errorf("client error: %v", err)
	}
	assert.Positive(t, b.hits.Load(), "b served before it died")
	// A GET that b handled as it died, and that never got its response
	// back, was retried on a: idempotent requests may be served twice.
	assert.GreaterOrEqual(t, a.hits.Load()+b.hits.Load(), int64(workers*each), "every request was served")
}

func TestAllDownStillTriesLeastRecentlyFailed(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b") // outside the bubble: they wait on the network
	synctest.Test(t, func(t *testing.T) {
		var logs logBuffer
		a.status.Store(503)
		b.status.Store(503)
		p := newTestPool(t, Config{Origins: servers(a, b), Ejection: Ejection{Failures: 1, Backoff: time.Minute}, Logger: logs.logger()})

		fetch(t, p, "http://static.example.com/1") // a fails and is ejected
		closeIdle(p.g)
		time.Sleep(time.Second)
		fetch(t, p, "http://static.example.com/2") // b fails later and is ejected
		a.status.Store(0)
		b.status.Store(0)
		require.False(t, p.Servers()[0].Up || p.Servers()[1].Up, "both ejected")

		status, body, err := fetch(t, p, "http://static.example.com/3")

		require.NoError(t, err)
		assert.Equal(t, 200, status)
		assert.Equal(t, "a", body, "a failed least recently")
		assert.Equal(t, uint64(1), p.g.fallbacks.Load())
		assert.Equal(t, 1, logs.count("no server up: trying the least recently failed"))
		closeIdle(p.g)
	})
}

// closeWhenReused answers the first request of a connection over the raw
// connection, keeping it open, then reads the next request sent on it and
// closes the connection without answering: the race of a server closing
// an idle keep-alive connection just as the client reuses it.
func closeWhenReused(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
	rw.Reader.ReadByte() // the next request arrives
	conn.Close()
}

// TestStaleKeepAliveIsRetriedOnTheOnlyServer: an idempotent request lost
// on a reused connection the server had closed is sent again to the same
// server, over a new connection, even when it is the pool's only one; a
// POST is not, and neither counts against the server's health.
func TestStaleKeepAliveIsRetriedOnTheOnlyServer(t *testing.T) {
	for _, tt := range []struct {
		method     string
		wantStatus int // 0: an error
	}{{http.MethodGet, 200}, {http.MethodPut, 200}, {http.MethodDelete, 200}, {http.MethodPost, 0}} {
		t.Run(tt.method, func(t *testing.T) {
			o := newOrigin(t, "only")
			var n atomic.Int32
			o.handle(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					closeWhenReused(w, r)
					return
				}
				echo(w, r)
			})
			// One failure ejects: a recorded idle close would show.
			p := newTestPool(t, Config{Origins: servers(o), Ejection: Ejection{Failures: 1}})
			status, body, err := fetch(t, p, "http://static.example.com/first")
			require.NoError(t, err)
			require.Equal(t, "first", body)
			require.Equal(t, 200, status)

			req, err := http.NewRequest(tt.method, "http://static.example.com/second", bytes.NewReader([]byte("again")))
			require.NoError(t, err)
			status, body, err = send(p, req)
			if tt.wantStatus == 0 {
				require.Error(t, err)
				assert.Equal(t, int32(1), n.Load(), "not sent again")
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.wantStatus, status)
				assert.Equal(t, "again", body)
				assert.Equal(t, int32(2), n.Load(), "the retry reached the handler once")
			}
			if tt.wantStatus != 0 {
				assert.True(t, p.Servers()[0].Up, "an idle close is not a failure of the server")
			}
		})
	}
}
