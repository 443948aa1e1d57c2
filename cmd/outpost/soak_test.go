package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// soakContent is the body of every object the soak's origins serve: bytes
// derived from the path alone, so any client can check any body, whole or
// in ranges, whichever origin served it and whenever.
type soakContent struct {
	mu    sync.Mutex
	cache map[string][]byte
}

func (sc *soakContent) body(path string) []byte {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if b, ok := sc.cache[path]; ok {
		return b
	}
	h := fnv.New64a()
	io.WriteString(h, path)
	seed := h.Sum64()
	r := rand.New(rand.NewPCG(seed, seed>>3))
	size := 0
	switch {
	case strings.HasPrefix(path, "/s/"):
		size = 100 + r.IntN(8<<10)
	case strings.HasPrefix(path, "/m/"):
		size = 64<<10 + r.IntN(448<<10)
	case strings.HasPrefix(path, "/l/"):
		size = 3<<20 + r.IntN(3<<20) // sliced: over storage.slice_threshold
	}
	b := make([]byte, size)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	if !strings.Contains(path, "/miss/") { // misses are asked for once
		sc.cache[path] = b
	}
	return b
}

// soakOrigin is one server of the soak's pool; while down it drops every
// connection before answering, as a crashed or restarting origin does.
type soakOrigin struct {
	srv      *http.Server
	url      string
	down     atomic.Bool
	requests atomic.Int64
	dropped  atomic.Int64
}

func startSoakOrigin(t *testing.T, content *soakContent) *soakOrigin {
	t.Helper()
	o := &soakOrigin{}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			o.dropped.Add(1)
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		o.requests.Add(1)
		path := r.URL.Path
		if strings.HasPrefix(path, "/miss/") {
			path = "/s/" + path // a small object under a key nobody asked for before
		}
		b := content.body(path)
		etag := fmt.Sprintf(`"%x"`, fnv.New32a().Sum32()+uint32(len(b)))
		w.Header().Set("Cache-Control", "max-age=2")
		w.Header().Set("Etag", etag)
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b)) // ranges too: slices ask for them
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o.url = "http://" + ln.Addr().String()
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

// soakStats counts what the soak's clients did and saw.
type soakStats struct {
	requests, hits, misses, ranges, purges, conditional atomic.Int64
	errors, corrupt                                     atomic.Int64
}

// TestSoak drives a node with a mix of hits, misses, ranges (of whole and
// sliced objects), conditional requests and purges from concurrent
// clients while its origins go down and up in turn. No client may see an
// error (the pool retries a GET lost to a dropped connection on the other
// origin) or a body that is not the origin's, byte for byte. Afterwards the
// node's goroutines and the process heap go back to where they were. It
// runs 3 s; OUTPOST_SOAK=60s runs it at length.
func TestSoak(t *testing.T) {
	duration := 3 * time.Second
	if v := os.Getenv("OUTPOST_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "OUTPOST_SOAK")
		duration = d
	}
	t.Setenv(tokenEnv, "")
	content := &soakContent{cache: map[string][]byte{}}
	a, b := startSoakOrigin(t, content), startSoakOrigin(t, content)

	for i := range 40 { // the test's own copies of the bodies, made before the baseline
		content.body(fmt.Sprintf("/s/%d", i))
	}
	for i := range 20 {
		content.body(fmt.Sprintf("/m/%d", i))
	}
	for i := range 3 {
		content.body(fmt.Sprintf("/l/%d", i))
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	goroutinesBefore, heapBefore := settle(t)

	cfg := writeFile(t, "outpost.yaml", fmt.Sprintf(`hosts:
  - names: [soak.example]
    origins: [%q, %q]
    balance: round_robin
storage:
  slice_size: 256KiB
  slice_threshold: 2MiB
`, a.url, b.url))
	tn := startNode(t, "--config", cfg, "--memory", "24MiB", "--cache-dir", t.TempDir(), "--disk", "256MiB")

	// Origins go down and up in turn, never both at once.
	flapCtx, stopFlap := context.WithCancel(context.Background())
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
		r := rand.New(rand.NewPCG(1, 1))
		for i := 0; ; i++ {
			o := []*soakOrigin{a, b}[i%2]
			o.down.Store(true)
			select {
			case <-time.After(time.Duration(50+r.IntN(250)) * time.Millisecond):
			case <-flapCtx.Done():
				o.down.Store(false)
				return
			}
			o.down.Store(false)
			select {
			case <-time.After(time.Duration(50+r.IntN(250)) * time.Millisecond):
			case <-flapCtx.Done():
				return
			}
		}
	}()

	var st soakStats
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(deadline) {
				soakOne(t, client, tn, content, r, &st)
			}
		})
	}
	wg.Wait()
	stopFlap()
	<-flapDone
	require.NoError(t, tn.n.edge.Wait(context.Background()))

	// The node, idle again, holds no more goroutines than before the load
	// (client connections closed, fills done).
	goroutinesIdle := 0
	require.Eventually(t, func() bool {
		goroutinesIdle = runtime.NumGoroutine()
		return goroutinesIdle <= goroutinesBefore+nodeGoroutines
	}, 10*time.Second, 20*time.Millisecond, "goroutines after the load: %d, before the node: %d", goroutinesIdle, goroutinesBefore)
	require.NoError(t, tn.stop(t))
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	goroutinesAfter, heapAfter := settle(t)

	t.Logf("soak %v: %d requests (%d hits, %d misses, %d ranges, %d conditional, %d purges); origins dropped %d connections; "+
		"%d client errors, %d corrupt bodies; goroutines %d before, %d after; heap %d MiB before, %d MiB after",
		duration, st.requests.Load(), st.hits.Load(), st.misses.Load(), st.ranges.Load(), st.conditional.Load(), st.purges.Load(),
		a.dropped.Load()+b.dropped.Load(), st.errors.Load(), st.corrupt.Load(), goroutinesBefore, goroutinesAfter, heapBefore>>20, heapAfter>>20)
	assert.Zero(t, st.errors.Load(), "client errors")
	assert.Zero(t, st.corrupt.Load(), "corrupt bodies")
	assert.Positive(t, a.dropped.Load()+b.dropped.Load(), "the origins did go down")
	assert.LessOrEqual(t, goroutinesAfter, goroutinesBefore, "goroutines left behind")
	assert.Less(t, heapAfter, heapBefore+16<<20, "heap back to where it was")
}

// nodeGoroutines bounds the goroutines a running, idle node holds (listeners,
// health checks, sweeper, tier loops).
const nodeGoroutines = 40

// settle waits for goroutines to finish exiting and returns their number
// and the heap in use after a collection.
func settle(t *testing.T) (goroutines int, heap uint64) {
	t.Helper()
	prev := -1
	for range 100 {
		runtime.GC()
		g := runtime.NumGoroutine()
		if g == prev {
			break
		}
		prev = g
		time.Sleep(20 * time.Millisecond)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

// soakOne sends one request of the mix and checks what comes back.
func soakOne(t *testing.T, client *http.Client, tn *testNode, content *soakContent, r *rand.Rand, st *soakStats) {
	st.requests.Add(1)
	var path string
	switch n := r.IntN(100); {
	case n < 5: // a purge of a hot object
		st.purges.Add(1)
		u := fmt.Sprintf("http://soak.example/s/%d", r.IntN(40))
		resp, err := client.Post(tn.admin+"/purge", "application/json", strings.NewReader(`{"urls": ["`+u+`"]}`))
		if err != nil {
			st.errors.Add(1)
			t.Errorf("purge: %v", err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			st.errors.Add(1)
			t.Errorf("purge: %d", resp.StatusCode)
		}
		return
	case n < 15: // a miss
		st.misses.Add(1)
		path = fmt.Sprintf("/miss/%d", r.Uint64())
	case n < 35: // ranges
		st.ranges.Add(1)
		path = []string{fmt.Sprintf("/m/%d", r.IntN(20)), fmt.Sprintf("/l/%d", r.IntN(3))}[r.IntN(2)]
		soakRange(t, client, tn, path, content.body(path), r, st)
		return
	case n < 45: // conditional
		st.conditional.Add(1)
		path = fmt.Sprintf("/s/%d", r.IntN(40))
	default:
		path = []string{fmt.Sprintf("/s/%d", r.IntN(40)), fmt.Sprintf("/m/%d", r.IntN(20))}[r.IntN(2)]
	}
	req, _ := http.NewRequest(http.MethodGet, tn.url+path, nil)
	req.Host = "soak.example"
	if strings.HasPrefix(path, "/s/") && r.IntN(4) == 0 {
		req.Header.Set("Cache-Control", "no-cache") // a revalidation
	}
	resp, err := client.Do(req)
	if err != nil {
		st.errors.Add(1)
		t.Errorf("GET %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		st.errors.Add(1)
		t.Errorf("GET %s: %d, %v", path, resp.StatusCode, err)
		return
	}
	if strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
		st.hits.Add(1)
	}
	want := path
	if strings.HasPrefix(path, "/miss/") {
		want = "/s/" + path
	}
	if !bytes.Equal(got, content.body(want)) {
		st.corrupt.Add(1)
		t.Errorf("GET %s: %d bytes, not the origin's %d (Cache-Status %q)", path, len(got), len(content.body(want)), resp.Header.Get("Cache-Status"))
	}
}

// soakRange asks for one or several ranges of path and checks each part.
func soakRange(t *testing.T, client *http.Client, tn *testNode, path string, whole []byte, r *rand.Rand, st *soakStats) {
	type rg struct{ start, end int }
	n := 1 + r.IntN(3)
	var rs []rg
	var spec []string
	for range n {
		s := r.IntN(len(whole))
		e := min(len(whole)-1, s+r.IntN(300<<10))
		rs = append(rs, rg{s, e})
		spec = append(spec, fmt.Sprintf("%d-%d", s, e))
	}
	req, _ := http.NewRequest(http.MethodGet, tn.url+path, nil)
	req.Host = "soak.example"
	req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
	resp, err := client.Do(req)
	if err != nil {
		st.errors.Add(1)
		t.Errorf("GET %s %v: %v", path, spec, err)
		return
	}
	defer resp.Body.Close()
	fail := func(format string, args ...any) {
		st.corrupt.Add(1)
		t.Errorf("GET %s %v: "+format, append([]any{path, spec}, args...)...)
	}
	if resp.StatusCode != http.StatusPartialContent {
		io.Copy(io.Discard, resp.Body)
		st.errors.Add(1)
		t.Errorf("GET %s %v: status %d", path, spec, resp.StatusCode)
		return
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			st.errors.Add(1)
			t.Errorf("GET %s %v: %v", path, spec, err)
			return
		}
		var s, e, size int
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &s, &e, &size); err != nil || size != len(whole) || e < s {
			fail("Content-Range %q", resp.Header.Get("Content-Range"))
			return
		}
		if !bytes.Equal(got, whole[s:e+1]) {
			fail("%d bytes of %d-%d differ", len(got), s, e)
		}
		return
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			st.errors.Add(1)
			t.Errorf("GET %s %v: multipart: %v", path, spec, err)
			return
		}
		got, err := io.ReadAll(part)
		if err != nil {
			st.errors.Add(1)
			t.Errorf("GET %s %v: part: %v", path, spec, err)
			return
		}
		var s, e, size int
		if _, err := fmt.Sscanf(part.Header.Get("Content-Range"), "bytes %d-%d/%d", &s, &e, &size); err != nil || size != len(whole) || e < s {
			fail("part Content-Range %q", part.Header.Get("Content-Range"))
			return
		}
		if !bytes.Equal(got, whole[s:e+1]) {
			fail("part %d-%d differs", s, e)
		}
	}
}
