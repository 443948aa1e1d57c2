package edge_test

import (
	"net/http"
	"testing"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/stretchr/testify/assert"
)

// stampWriter is the wrapper an Admit hook hands back: it marks every
// response it carries.
type stampWriter struct{ http.ResponseWriter }

func (s stampWriter) WriteHeader(code int) {
	s.Header().Set("X-Admitted", "yes")
	s.ResponseWriter.WriteHeader(code)
}

func (s stampWriter) Write(p []byte) (int, error) {
	if s.Header().Get("X-Admitted") == "" {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(p)
}

// TestAdmitRunsBeforeTheCache: a request the host's Admit answers itself
// reaches neither the cache nor the origin; an admitted one is answered
// through the writer Admit returned, on a miss and on a hit alike.
func TestAdmitRunsBeforeTheCache(t *testing.T) {
	admit := func(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
		if r.URL.Path == "/deny" {
			http.Error(w, "no", http.StatusForbidden)
			return w, false
		}
		return stampWriter{w}, true
	}
	e := newEnv(t, static("body", "Cache-Control", "max-age=60"), func(c *edge.Config) {
		c.Hosts[0].Admit = admit
	})

	resp, body := e.get(t, "/deny")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "no\n", body)
	assert.Empty(t, resp.Header.Get("Cache-Status"), "Admit answered: the cache never saw it")
	assert.Equal(t, int64(0), e.origin.hits.Load())

	for i, want := range []string{"fwd=miss", "hit"} {
		resp, body = e.get(t, "/ok")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "request %d", i)
		assert.Equal(t, "body", body, "request %d", i)
		assert.Equal(t, "yes", resp.Header.Get("X-Admitted"), "request %d", i)
		assert.Contains(t, resp.Header.Get("Cache-Status"), want, "request %d", i)
	}
	assert.Equal(t, int64(1), e.origin.hits.Load())
}
