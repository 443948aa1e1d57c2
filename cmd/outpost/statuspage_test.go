package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastSampler makes the status history sample every 50ms.
func fastSampler(n *node) { n.ops.sampleEvery = 50 * time.Millisecond }

// TestStatusJSONMovesWithTraffic: /status.json's samples, totals, tiers,
// origins, top URLs and purges follow the requests a node answers.
func TestStatusJSONMovesWithTraffic(t *testing.T) {
	t.Setenv(tokenEnv, "")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, strings.Repeat("b", 1000))
	})
	tn := startNodeWith(t, fastSampler, "--origin", o.URL, "--cache-dir", t.TempDir())
	before := getStatus(t, tn.admin)
	assert.Zero(t, before.Requests["hit"])
	assert.Equal(t, []string{"memory", "disk"}, []string{before.Tiers[0].Name, before.Tiers[1].Name})
	require.Len(t, before.Origins, 1)
	assert.Equal(t, o.URL, before.Origins[0].Server)
	assert.True(t, before.Origins[0].Up)
	assert.Nil(t, before.Origins[0].LatencyMS, "no exchange yet")

	for range 5 {
		fetch(t, tn.url+"/hot.css")
	}
	fetch(t, tn.url+"/cold.css")
	code, _ := purgeCLI(t, "--admin", tn.admin, "--url", tn.url+"/cold.css")
	require.Equal(t, 0, code)

	var d *statusDoc
	require.Eventually(t, func() bool {
		d = getStatus(t, tn.admin)
		for _, s := range d.Samples {
			if s.HitRatio != nil && *s.HitRatio > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "no sample with hits")
	assert.Equal(t, 4.0, d.Requests["hit"])
	assert.Equal(t, 2.0, d.Requests["miss"])
	assert.Equal(t, int64(4000), d.Bytes["cache"])
	assert.Equal(t, int64(2000), d.Bytes["upstream"])
	assert.Equal(t, uint64(2), d.Origins[0].Requests)
	require.NotNil(t, d.Origins[0].LatencyMS, "the origin's latency after two exchanges")
	assert.Positive(t, *d.Origins[0].LatencyMS)
	assert.Positive(t, d.Tiers[0].Bytes, "the memory tier holds the objects")
	require.NotEmpty(t, d.TopRequests)
	host := strings.TrimPrefix(tn.url, "http://")
	assert.Equal(t, topDoc{URL: host + "/hot.css", Weight: 5}, d.TopRequests[0])
	assert.Equal(t, host+"/hot.css", d.TopBytes[0].URL)
	assert.Equal(t, 5000.0, d.TopBytes[0].Weight)
	require.NotEmpty(t, d.Purges.Recent)
	assert.Equal(t, []string{"url " + tn.url + "/cold.css"}, d.Purges.Recent[0].Targets)
	assert.Nil(t, d.Purges.Bus, "no purge bus")
	assert.True(t, d.Ready)
	assert.InDelta(t, 0.05, d.Interval, 0.001)
	assert.LessOrEqual(t, len(d.Samples), historyLen)
}

// TestStatusPageServed: /status is the embedded page, allowed to load
// nothing from elsewhere, and needs the token like the rest of the API.
func TestStatusPageServed(t *testing.T) {
	t.Setenv(tokenEnv, "s3cret")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	tn := startNode(t, "--origin", o.URL)
	for _, path := range []string{"/status", "/status.json"} {
		resp, _ := fetch(t, tn.admin+path)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, path)
	}
	resp, body := fetch(t, tn.admin+"/status", "Authorization", "Bearer s3cret")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'; connect-src 'self'")
	assert.Contains(t, body, `fetch("status.json"`)
	body = strings.ReplaceAll(body, `"http://www.w3.org/2000/svg"`, "") // a name, not a fetch
	for _, external := range []string{"http://", "https://", "//cdn", "<link", "src=\""} {
		assert.NotContains(t, body, external, "the page loads nothing from elsewhere")
	}
}

// TestTopK: the heaviest keys are kept in bounded memory, and decay keeps
// the order.
func TestTopK(t *testing.T) {
	tk := newTopK(4)
	for i := range 100 { // a long tail of keys seen once
		tk.add([]byte(fmt.Sprintf("/tail/%d", i)), 1)
		tk.add([]byte("/heavy"), 3)
		if i%2 == 0 {
			tk.add([]byte("/medium"), 2)
		}
	}
	top := tk.top(2)
	require.Len(t, top, 2)
	assert.Equal(t, "/heavy", top[0].key)
	assert.Equal(t, 300.0, top[0].weight, "a key never evicted is counted exactly")
	assert.Equal(t, "/medium", top[1].key)
	assert.Len(t, tk.idx, 4, "bounded")
	tk.decay()
	assert.Equal(t, 150.0, tk.top(1)[0].weight)
	for k, i := range tk.idx {
		assert.Equal(t, k, tk.h.entries[i].key, "index of %q", k)
	}
}

// BenchmarkTopK is one add to a full sketch, of a key held and of a new
// one.
func BenchmarkTopK(b *testing.B) {
	tk := newTopK(topURLs)
	for i := range topURLs {
		tk.add([]byte(fmt.Sprintf("/k/%d", i)), float64(i))
	}
	keys := [][]byte{[]byte("/k/7"), []byte("/new/1"), []byte("/new/2")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tk.add(keys[i%3], 1)
		i++
	}
}
