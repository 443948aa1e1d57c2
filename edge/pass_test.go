package edge_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOtherMethodsPassThrough: methods other than GET and HEAD reach the
// origin with their bodies, every time, and are never cached.
func TestOtherMethodsPassThrough(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("X-Method", r.Method)
		io.WriteString(w, "got "+string(b))
	})
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, "BREW"} {
		for range 2 {
			req, err := http.NewRequest(method, e.edge.URL+"/m", strings.NewReader("payload-"+method))
			require.NoError(t, err)
			resp, err := e.client.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, method)
			assert.Equal(t, method, resp.Header.Get("X-Method"))
			assert.Equal(t, "got payload-"+method, string(b))
			assert.Equal(t, "test-edge; fwd=method; fwd-status=200", resp.Header.Get("Cache-Status"))
			r, body := e.origin.lastRequest(t)
			assert.Equal(t, method, r.Method)
			assert.Equal(t, "payload-"+method, string(body))
		}
	}
	assert.Equal(t, int64(12), e.origin.hits.Load(), "every request reached the origin")
}

// TestUnsafeMethodInvalidates: a successful unsafe request invalidates the
// stored response for its URL and for same-origin Location and
// Content-Location (RFC 9111 §4.4); a failed one does not.
func TestUnsafeMethodInvalidates(t *testing.T) {
	status := http.StatusOK
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/other")
			w.Header().Set("Content-Location", "http://elsewhere.example/third")
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, r.URL.Path)
	})
	for _, p := range []string{"/inv", "/other", "/third"} {
		e.get(t, p)
	}
	post := func() {
		resp, err := e.client.Post(e.edge.URL+"/inv", "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		resp.Body.Close()
	}
	status = http.StatusInternalServerError
	post()
	resp, _ := e.get(t, "/inv")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "a failed POST does not invalidate")

	status = http.StatusSeeOther
	post()
	resp, _ = e.get(t, "/inv")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss", "the target URI is invalidated")
	resp, _ = e.get(t, "/other")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss", "the same-origin Location is invalidated")
	resp, _ = e.get(t, "/third")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "another origin's Content-Location is left alone")
}

// TestHopByHopAndEndToEndFields: hop-by-hop fields are dropped both ways
// (RFC 9110 §7.6.1), X-Forwarded-For is written from the connection (the
// client's value dropped: it is not a trusted proxy), and end-to-end
// fields pass unchanged both ways.
func TestHopByHopAndEndToEndFields(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Connection", "X-Hop-Resp")
		w.Header().Set("X-Hop-Resp", "drop me")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Custom", "Kept As Is")
		w.Header().Set("Vary", "accept-encoding")
		io.WriteString(w, "x")
	})
	resp, _ := e.get(t, "/h",
		"Connection", "X-Hop-Req", "X-Hop-Req", "drop me", "X-Forwarded-For", "10.0.0.1",
		"X-Client", "Also Kept", "Proxy-Authorization", "Basic Zm9v")
	r, _ := e.origin.lastRequest(t)
	assert.Empty(t, r.Header.Get("X-Hop-Req"), "a field named by Connection is hop-by-hop")
	assert.Empty(t, r.Header.Get("Proxy-Authorization"))
	assert.Equal(t, "Also Kept", r.Header.Get("X-Client"))
	assert.Equal(t, "127.0.0.1", r.Header.Get("X-Forwarded-For"))
	assert.Contains(t, r.Header.Get("Via"), "test-edge")
	assert.Contains(t, r.Header.Get("CDN-Loop"), "test-edge")

	for _, resp := range []*http.Response{resp, func() *http.Response { r, _ := e.get(t, "/h"); return r }()} {
		assert.Empty(t, resp.Header.Get("X-Hop-Resp"))
		assert.Empty(t, resp.Header.Get("Keep-Alive"))
		assert.Equal(t, "Kept As Is", resp.Header.Get("X-Custom"))
		assert.Equal(t, []string{"accept-encoding"}, resp.Header.Values("Vary"), "the origin's Vary is passed as sent")
	}
}

// TestCDNHeadersLeaveOnlyInnerTiers: Surrogate-Control and Surrogate-Key
// are honoured and removed before the response leaves the outermost tier,
// but kept for a downstream CDN tier (a request carrying CDN-Loop).
func TestCDNHeadersLeaveOnlyInnerTiers(t *testing.T) {
	e := newEnv(t, static("x", "Surrogate-Control", "max-age=60", "Surrogate-Key", "a b", "Cache-Tag", "c"))
	resp, _ := e.get(t, "/s")
	resp, _ = e.get(t, "/s")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "Surrogate-Control max-age made it storable")
	for _, f := range []string{"Surrogate-Control", "Surrogate-Key", "Cache-Tag"} {
		assert.Empty(t, resp.Header.Get(f), f)
	}
	resp, _ = e.get(t, "/s", "CDN-Loop", "edge-2; node=1234")
	assert.Equal(t, "a b", resp.Header.Get("Surrogate-Key"))
}

func TestLoopIsDetected(t *testing.T) {
	e := newEnv(t, static("x", "Cache-Control", "max-age=60"))
	e.get(t, "/loop")
	r, _ := e.origin.lastRequest(t)
	resp, _ := e.get(t, "/loop", "CDN-Loop", r.Header.Get("CDN-Loop"))
	assert.Equal(t, http.StatusLoopDetected, resp.StatusCode, "a request that already passed this node")
	resp, _ = e.get(t, "/loop", "CDN-Loop", "test-edge; node=other")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another node with the same name is not a loop")
}

func TestOriginDownIs502(t *testing.T) {
	e := newEnv(t, static("x"))
	e.origin.Close()
	resp, body := e.get(t, "/down")
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, "502 Bad Gateway\n", body, "no internal detail leaks")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss")
}
