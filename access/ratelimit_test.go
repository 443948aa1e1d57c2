package access

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// admitFrom sends a GET for path from client through p and returns
// whether it was admitted, the recorder, and the writer to answer through.
func admitFrom(t *testing.T, p *Policy, client, path string) (bool, *httptest.ResponseRecorder, http.ResponseWriter) {
	t.Helper()
	rec := httptest.NewRecorder()
	w, ok := p.Admit(rec, signedRequest("http://h"+path, client))
	return ok, rec, w
}

func TestRequestRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := NewMetrics(nil)
		require.NoError(t, err)
		p, err := New(Config{Host: "h", Metrics: m, RateLimit: RateLimit{
			Client: Limit{Requests: 2, Burst: 3},
			Prefix: Limit{Requests: 5, Burst: 5},
		}})
		require.NoError(t, err)
		for i := range 3 {
			ok, _, _ := admitFrom(t, p, "192.0.2.1", "/a")
			require.True(t, ok, "request %d is within the burst", i)
		}
		ok, rec, _ := admitFrom(t, p, "192.0.2.1", "/a")
		require.False(t, ok, "the burst is spent")
		assert.Equal(t, http.StatusTooManyRequests, rec.Code)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"), "one token at 2/s: half a second, rounded up")
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))

		ok, _, _ = admitFrom(t, p, "192.0.2.2", "/a")
		assert.True(t, ok, "another client of the /24 has its own bucket")
		ok, _, _ = admitFrom(t, p, "192.0.2.3", "/a")
		assert.True(t, ok, "the /24's fifth request")
		ok, rec, _ = admitFrom(t, p, "192.0.2.4", "/a")
		assert.False(t, ok, "the /24 has spent its burst of 5")
		assert.Equal(t, http.StatusTooManyRequests, rec.Code)
		ok, _, _ = admitFrom(t, p, "198.51.100.1", "/a")
		assert.True(t, ok, "another /24")

		time.Sleep(500 * time.Millisecond)
		ok, _, _ = admitFrom(t, p, "192.0.2.1", "/a")
		assert.True(t, ok, "a token came back after Retry-After")

		assert.Equal(t, 1.0, counted(t, m, "h", ruleRate, reasonClientRequests))
		assert.Equal(t, 1.0, counted(t, m, "h", ruleRate, reasonPrefixRequests))
	})
}

func TestRetryAfterRoundsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Config{RateLimit: RateLimit{Client: Limit{Requests: 0.1, Burst: 1}}})
		require.NoError(t, err)
		ok, _, _ := admitFrom(t, p, "192.0.2.1", "/")
		require.True(t, ok)
		time.Sleep(1500 * time.Millisecond)
		ok, rec, _ := admitFrom(t, p, "192.0.2.1", "/")
		require.False(t, ok)
		assert.Equal(t, "9", rec.Header().Get("Retry-After"), "8.5s left, rounded up")
	})
}

// sink is a ResponseWriter that notes when each write arrived.
type sink struct {
	h      http.Header
	buf    bytes.Buffer
	writes []time.Duration
	start  time.Time
}

func newSink() *sink { return &sink{h: http.Header{}, start: time.Now()} }

func (s *sink) Header() http.Header { return s.h }
func (s *sink) WriteHeader(int)     {}
func (s *sink) Write(p []byte) (int, error) {
	s.writes = append(s.writes, time.Since(s.start))
	return s.buf.Write(p)
}

// serve writes n bytes through the writer p admits for a request from
// client, and returns how long it took (synctest time) and the sink.
func serve(t *testing.T, p *Policy, client string, n int) (time.Duration, *sink) {
	t.Helper()
	s := newSink()
	r := signedRequest("http://h/big", client)
	w, ok := p.Admit(s, r)
	require.True(t, ok)
	start := time.Now()
	k, err := w.Write(bytes.Repeat([]byte{'x'}, n))
	require.NoError(t, err)
	require.Equal(t, n, k)
	require.Equal(t, n, s.buf.Len())
	return time.Since(start), s
}

func TestBandwidthPacesResponses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := NewMetrics(nil)
		require.NoError(t, err)
		p, err := New(Config{Host: "h", Metrics: m, RateLimit: RateLimit{Client: Limit{Bandwidth: 64 << 10}}})
		require.NoError(t, err)
		// A second's worth (the bucket) goes at once, the next 192 KiB at
		// 64 KiB/s.
		took, _ := serve(t, p, "192.0.2.1", 256<<10)
		assert.InDelta(t, 3.0, took.Seconds(), 0.001)
		// The client's next response shares its bucket, now empty.
		took, _ = serve(t, p, "192.0.2.1", 64<<10)
		assert.InDelta(t, 1.0, took.Seconds(), 0.001)
		// Another client has a bucket of its own.
		took, _ = serve(t, p, "192.0.2.2", 64<<10)
		assert.Zero(t, took)
		assert.InDelta(t, 4.0, testutilDelay(m, "h"), 0.05, "seconds waited, counted")
	})
}

func TestBandwidthBacklogIs429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Config{RateLimit: RateLimit{Client: Limit{Bandwidth: 16 << 10}}})
		require.NoError(t, err)
		// Three responses in parallel queue far more than a second's worth.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var writers []http.ResponseWriter
		for range 3 {
			r := signedRequest("http://h/big", "192.0.2.1").WithContext(ctx)
			w, ok := p.Admit(newSink(), r)
			require.True(t, ok, "nothing is queued yet")
			writers = append(writers, w)
		}
		for _, w := range writers {
			go w.Write(make([]byte, 64<<10))
		}
		synctest.Wait() // every writer is now waiting for its bucket
		ok, rec, _ := admitFrom(t, p, "192.0.2.1", "/small")
		assert.False(t, ok)
		assert.Equal(t, http.StatusTooManyRequests, rec.Code)
		assert.NotEmpty(t, rec.Header().Get("Retry-After"))
		cancel() // the clients leave: their writes end
		synctest.Wait()
	})
}

func TestLimitRateAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Config{RateLimit: RateLimit{LimitRate: LimitRate{After: 1 << 20, Rate: 256 << 10}}})
		require.NoError(t, err)
		// The first MiB at full speed, then 1 MiB at 256 KiB/s, less the
		// one piece the response's bucket holds when it starts.
		took, s := serve(t, p, "192.0.2.1", 2<<20)
		assert.InDelta(t, (4*time.Second - time.Second/16).Seconds(), took.Seconds(), 0.001)
		assert.Zero(t, s.writes[63], "the 64th piece of 16 KiB (the first MiB) went at once")
		// The cap is per response: the next one starts fast again.
		took, _ = serve(t, p, "192.0.2.1", 1<<20)
		assert.Zero(t, took)
	})
}

func TestHEADIsNotWrapped(t *testing.T) {
	p, err := New(Config{RateLimit: RateLimit{LimitRate: LimitRate{Rate: 1 << 10}}})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	r := signedRequest("http://h/a", "192.0.2.1")
	r.Method = http.MethodHead
	w, ok := p.Admit(rec, r)
	assert.True(t, ok)
	assert.Same(t, rec, w.(*httptest.ResponseRecorder))
	w, ok = p.Admit(rec, signedRequest("http://h/a", "192.0.2.1"))
	assert.True(t, ok)
	pw, wrapped := w.(*pacedWriter)
	require.True(t, wrapped, "a GET is paced")
	assert.Same(t, rec, pw.Unwrap().(*httptest.ResponseRecorder), "http.ResponseController reaches the writer underneath")
}

func TestRateLimitConfig(t *testing.T) {
	for _, tt := range []struct {
		give    RateLimit
		wantErr string
	}{
		{RateLimit{Client: Limit{Requests: -1}}, "client.requests"},
		{RateLimit{Prefix: Limit{Burst: 3}}, "prefix.burst is set without"},
		{RateLimit{Client: Limit{Bandwidth: -1}}, "client.bandwidth"},
		{RateLimit{MaxClients: -1, Client: Limit{Requests: 1}}, "max_clients"},
		{RateLimit{LimitRate: LimitRate{After: 10}}, "limit_rate.after is set without"},
	} {
		_, err := New(Config{RateLimit: tt.give})
		require.Error(t, err, "%+v", tt.give)
		assert.True(t, strings.Contains(err.Error(), tt.wantErr), "%q does not name %q", err, tt.wantErr)
	}
}
