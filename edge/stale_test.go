package edge_test

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStaleWhileRevalidate: within the window a stale response is served
// at once and refreshed in the background, once however many clients ask
// (RFC 5861 §3).
func TestStaleWhileRevalidate(t *testing.T) {
	var version atomic.Int64
	release := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if version.Add(1) > 1 {
			<-release // the refresh is slow
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		io.WriteString(w, "v"+strconv.FormatInt(version.Load(), 10))
	})
	e.get(t, "/swr")
	e.clock.Advance(15 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp, body := e.get(t, "/swr")
			assert.Equal(t, "v1", body, "the stale response, at once")
			assert.Equal(t, `test-edge; hit; ttl=-5; detail="stale-while-revalidate"`, resp.Header.Get("Cache-Status"))
		})
	}
	wg.Wait()
	close(release)
	e.quiesce(t)
	assert.Equal(t, int64(2), e.origin.hits.Load(), "one background refresh for 20 stale hits")
	resp, body := e.get(t, "/swr")
	assert.Equal(t, "v2", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "; hit; ttl=")
}

// TestStaleOnOriginFailure: stale-if-error serves the stored response when
// the origin answers 5xx (RFC 5861 §4); with no response at all a stored
// response is served stale as a disconnected cache may (RFC 9111 §4.2.4);
// must-revalidate forbids both.
func TestStaleOnOriginFailure(t *testing.T) {
	tests := []struct {
		name       string
		giveCC     string
		giveFail   string // "500" or "close"
		wantStatus int
		wantDetail string
	}{
		{"stale-if-error on 500", "max-age=10, stale-if-error=60", "500", 200, `detail="stale-if-error"`},
		{"no stale-if-error: the 500 passes", "max-age=10", "500", 500, ""},
		{"stale-if-error past its window", "max-age=10, stale-if-error=1", "500", 500, ""},
		{"unreachable origin", "max-age=10", "close", 200, `detail="origin-unreachable"`},
		{"must-revalidate forbids stale", "max-age=10, must-revalidate, stale-if-error=60", "close", 502, ""},
		{"s-maxage forbids stale", "s-maxage=10, stale-if-error=60", "500", 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fail atomic.Bool
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if fail.Load() {
					if tt.giveFail == "close" {
						conn, _, _ := http.NewResponseController(w).Hijack()
						conn.Close()
						return
					}
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				w.Header().Set("Cache-Control", tt.giveCC)
				io.WriteString(w, "stored")
			})
			e.get(t, "/f")
			e.quiesce(t) // the fill has committed and left the flight table
			e.clock.Advance(15 * time.Second)
			fail.Store(true)
			resp, body := e.get(t, "/f")
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantDetail != "" {
				assert.Equal(t, "stored", body)
				assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=stale")
				assert.Contains(t, resp.Header.Get("Cache-Status"), tt.wantDetail)
			}
		})
	}
}

// TestEarlyHintsReachTheClient: a 103 from the origin is relayed to the
// client whose request caused the fetch, and never stored.
func TestEarlyHintsReachTheClient(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "page")
	})
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, e.edge.URL+"/hints", nil)
	require.NoError(t, err)
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "page", string(b))
	assert.Equal(t, []string{"</style.css>; rel=preload; as=style"}, hints)
	assert.Empty(t, resp.Header.Get("Link"), "the hint's fields stay on the 103")

	resp, body := e.get(t, "/hints")
	assert.Equal(t, "page", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
}
