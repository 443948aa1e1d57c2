package edge_test

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSetHostsAddsHostKeepsCache: a host added by SetHosts is served from
// the next request on, and what the old set stored is a hit under the new
// one (the cache survives the swap).
func TestSetHostsAddsHostKeepsCache(t *testing.T) {
	e := newEnv(t, static("body", "Cache-Control", "max-age=600"), func(c *edge.Config) {
		c.Hosts[0].Names = []string{"a.example"}
	})
	oldTransport := toServer{addr: e.origin.Listener.Addr().String(), rt: http.DefaultTransport}
	resp, _ := e.get(t, "/x", "Host", "a.example")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = e.get(t, "/x", "Host", "b.example")
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, "b.example is not served yet")

	other := newOrigin(t, e.clock, static("from b", "Cache-Control", "max-age=600"))
	require.NoError(t, e.h.SetHosts([]edge.Host{
		{Names: []string{"a.example"}, Transport: oldTransport},
		{Names: []string{"b.example"}, Transport: toServer{addr: other.Listener.Addr().String(), rt: http.DefaultTransport}},
	}))

	resp, body := e.get(t, "/x", "Host", "b.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "from b", body)
	assert.Equal(t, int64(1), other.hits.Load())
	resp, body = e.get(t, "/x", "Host", "a.example")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "stored before the swap, a hit after it")
	assert.Equal(t, "body", body)
	assert.Equal(t, int64(1), e.origin.hits.Load(), "a.example's origin asked once")
}

// TestSetHostsChangesKeyRules: new cache-key rules apply to the requests
// routed after the swap.
func TestSetHostsChangesKeyRules(t *testing.T) {
	e := newEnv(t, static("body", "Cache-Control", "max-age=600"))
	tr := toServer{addr: e.origin.Listener.Addr().String(), rt: http.DefaultTransport}
	e.get(t, "/p?utm_source=a")
	e.get(t, "/p?utm_source=b")
	require.Equal(t, int64(2), e.origin.hits.Load(), "two keys before the rule")

	require.NoError(t, e.h.SetHosts([]edge.Host{{Transport: tr, Key: edge.KeyConfig{IgnoreQuery: []string{"utm_*"}}}}))
	e.get(t, "/p?utm_source=c")
	resp, _ := e.get(t, "/p?utm_source=d")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, int64(3), e.origin.hits.Load(), "one more fetch: both requests have the key /p")
}

// TestSetHostsRefusesBadSet: an invalid set is refused with the entry
// named, and the running set stays.
func TestSetHostsRefusesBadSet(t *testing.T) {
	e := newEnv(t, static("body", "Cache-Control", "max-age=600"))
	tr := toServer{addr: e.origin.Listener.Addr().String(), rt: http.DefaultTransport}
	tests := []struct {
		name    string
		give    []edge.Host
		wantErr string
	}{
		{"empty", nil, "no hosts"},
		{"no transport", []edge.Host{{Names: []string{"a.example"}}}, "hosts[0]: no transport"},
		{"name twice", []edge.Host{{Names: []string{"a.example"}, Transport: tr}, {Names: []string{"A.example"}, Transport: tr}}, `hosts[1]: host name "a.example" listed twice`},
		{"two catch-alls", []edge.Host{{Transport: tr}, {Transport: tr}}, "hosts[1]: a second catch-all"},
		{"bad wildcard", []edge.Host{{Names: []string{"*x.example"}, Transport: tr}}, "bad wildcard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.h.SetHosts(tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			resp, body := e.get(t, "/still", "Host", "any.example")
			assert.Equal(t, http.StatusOK, resp.StatusCode, "the catch-all still serves")
			assert.Equal(t, "body", body)
		})
	}
}

// TestSetHostsKeepsCallersSlice: SetHosts copies the slice; changing it
// afterwards changes nothing served.
func TestSetHostsKeepsCallersSlice(t *testing.T) {
	e := newEnv(t, static("body", "Cache-Control", "max-age=600"))
	tr := toServer{addr: e.origin.Listener.Addr().String(), rt: http.DefaultTransport}
	hosts := []edge.Host{{Names: []string{"a.example"}, Transport: tr}}
	require.NoError(t, e.h.SetHosts(hosts))
	hosts[0].Names = []string{"b.example"}
	resp, _ := e.get(t, "/", "Host", "a.example")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = e.get(t, "/", "Host", "b.example")
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
}

// TestSetHostsDuringDownload: a response streaming from the old set's
// transport finishes whole after the swap, and requests during and after
// it are answered by the set current when they were routed.
func TestSetHostsDuringDownload(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path != "/slow" {
			io.WriteString(w, "old")
			return
		}
		w.Header().Set("Content-Length", "200000")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 100000))
		w.(http.Flusher).Flush()
		once.Do(func() { close(started) })
		<-release
		w.Write(make([]byte, 100000))
	}, func(c *edge.Config) { c.StreamDelay = -1 })
	newer := newOrigin(t, e.clock, static("new", "Cache-Control", "max-age=600"))

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.client.Get(e.edge.URL + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		done <- result{n, err}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the download never started")
	}

	var swaps atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // swap back and forth while requests are routed
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			addr := newer.Listener.Addr().String()
			if i%2 == 1 {
				addr = e.origin.Listener.Addr().String()
			}
			if e.h.SetHosts([]edge.Host{{Transport: toServer{addr: addr, rt: http.DefaultTransport}}}) == nil {
				swaps.Add(1)
			}
		}
	}()
	for i := range 20 {
		resp, body := e.get(t, "/n"+string(rune('a'+i)))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, []string{"old", "new"}, body)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, e.h.SetHosts([]edge.Host{{Transport: toServer{addr: newer.Listener.Addr().String(), rt: http.DefaultTransport}}}))
	_, body := e.get(t, "/fresh")
	assert.Equal(t, "new", body, "after the last swap, misses go to the new origin")
	assert.Positive(t, swaps.Load())

	close(release)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.Equal(t, int64(200000), r.n, "the download in flight during the swaps arrived whole")
	case <-time.After(10 * time.Second):
		t.Fatal("the download never finished")
	}
}
