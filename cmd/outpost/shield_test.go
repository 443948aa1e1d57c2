package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShieldChain: two edges fetch through one shield; N edges missing at
// once cost the origin one fetch, Cache-Status keeps the shield's entry
// before the edge's, Age accumulates across tiers, and an edge falls back
// to the origin when its shield dies.
func TestShieldChain(t *testing.T) {
	release := make(chan struct{})
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cold" {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Age", "5")
		io.WriteString(w, "body of "+r.URL.Path)
	})
	shield := startNode(t, "--origin", o.URL, "--name", "shield")
	edge1 := startNode(t, "--origin", o.URL, "--parent", shield.url, "--name", "edge1")
	edge2 := startNode(t, "--origin", o.URL, "--parent", shield.url, "--name", "edge2")

	var wg sync.WaitGroup
	statuses := make(chan string, 20)
	for i := range 20 {
		e := edge1
		if i%2 == 1 {
			e = edge2
		}
		wg.Go(func() {
			// Clients reach either edge by the site's name, as DNS sends them.
			resp, body := fetch(t, e.url+"/cold", "Host", "static.example.com")
			assert.Equal(t, "body of /cold", body)
			statuses <- resp.Header.Get("Cache-Status")
		})
	}
	require.Eventually(t, func() bool { return o.count("/cold") == 1 }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	close(statuses)
	assert.Equal(t, 1, o.count("/cold"), "20 clients on two edges cost the origin one fetch")
	for s := range statuses {
		if strings.Contains(s, "; hit") {
			continue // arrived after its edge had stored the object
		}
		assert.True(t, strings.HasPrefix(s, "shield; "), "the shield's entry comes first: %q", s)
		assert.Contains(t, s, ", edge")
	}

	resp, _ := fetch(t, edge1.url+"/cold", "Host", "static.example.com")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "edge1; hit")
	age, err := strconv.Atoi(resp.Header.Get("Age"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, age, 5, "Age accumulates from the origin through the shield")

	// The shield dies: the edges fetch from the origin.
	require.NoError(t, shield.stop(t))
	resp, body := fetch(t, edge2.url+"/after")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "body of /after", body)
	assert.Equal(t, 1, o.count("/after"))
}

// TestLoopIs508: a node configured as its own parent sees its own CDN-Loop
// entry come back and answers 508 (RFC 8586).
func TestLoopIs508(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x")
	})
	a := startNode(t, "--origin", o.URL, "--name", "a")
	b := startNode(t, "--origin", o.URL, "--parent", a.url, "--name", "b")
	// a sends to b, b back to a: restart a with b as its parent.
	require.NoError(t, a.stop(t))
	a2 := startNode(t, "--origin", o.URL, "--parent", b.url, "--name", "a", "--listen", strings.TrimPrefix(a.url, "http://"))
	resp, _ := fetch(t, a2.url+"/loop")
	assert.Equal(t, http.StatusLoopDetected, resp.StatusCode)
	assert.Equal(t, 0, o.count("/loop"), "a loop never reaches the origin")
}
