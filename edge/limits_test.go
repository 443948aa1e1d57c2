package edge_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowOrigin sends the first 100 KiB of a 200 KiB body at once and the
// rest when release is closed, so its fills stay in progress.
func slowOrigin(release <-chan struct{}) http.HandlerFunc {
	body := payload(200 << 10)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body[:100<<10])
		w.(http.Flusher).Flush()
		<-release
		w.Write(body[100<<10:])
	}
}

// TestMaxWaitersRefusesOneMore: a fill followed by as many requests as
// max_waiters allows answers one more with 503 and Retry-After, counted,
// without a second origin request; the requests it had get their bodies.
func TestMaxWaitersRefusesOneMore(t *testing.T) {
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	e := newEnv(t, slowOrigin(release), func(c *edge.Config) { c.MaxWaiters, c.Registerer = 2, reg })

	first := startStream(t, e, "/big")
	first.readN(t, 100<<10)
	second := startStream(t, e, "/big")
	second.readN(t, 100<<10)

	resp, body := e.get(t, "/big")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, resp.Header.Get("Cache-Status"), `detail="max_waiters"`)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "503 Service Unavailable\n", body)
	assert.Equal(t, 1.0, counterValue(t, reg, "outpost_fills_refused_total", "max_waiters"))

	close(release)
	want := payload(200 << 10)[100<<10:]
	assert.True(t, bytes.Equal(want, first.rest(t)))
	assert.True(t, bytes.Equal(want, second.rest(t)))
	e.quiesce(t)
	resp, _ = e.get(t, "/big")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, int64(1), e.origin.hits.Load(), "origin requests")
}

// TestMaxFillsRefusesAnotherMiss: with max_fills fills running, a miss for
// another object gets 503 rather than a new origin request; once the fill
// ends, the same miss goes upstream.
func TestMaxFillsRefusesAnotherMiss(t *testing.T) {
	release := make(chan struct{})
	reg := prometheus.NewRegistry()
	e := newEnv(t, slowOrigin(release), func(c *edge.Config) { c.MaxFills, c.Registerer = 1, reg })

	first := startStream(t, e, "/a")
	first.readN(t, 100<<10)
	resp, _ := e.get(t, "/b")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, resp.Header.Get("Cache-Status"), `fwd=miss; detail="max_fills"`)
	assert.Equal(t, 1.0, counterValue(t, reg, "outpost_fills_refused_total", "max_fills"))
	assert.Equal(t, int64(1), e.origin.hits.Load(), "origin requests while the limit holds")

	close(release)
	first.rest(t)
	e.quiesce(t)
	resp, body := e.get(t, "/b")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, body, 200<<10)
	assert.Equal(t, int64(2), e.origin.hits.Load(), "origin requests")
}
