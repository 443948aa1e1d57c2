package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testNode is an Outpost node running in-process on loopback ports.
type testNode struct {
	n      *node
	url    string // public listener
	admin  string // admin listener
	cancel context.CancelFunc
	done   chan error
}

func startNode(t testing.TB, args ...string) *testNode {
	t.Helper()
	tn := launchNode(t, args...)
	tn.waitReady(t)
	return tn
}

// startNodeWith is startNode with mod applied to the node before it runs.
func startNodeWith(t testing.TB, mod func(*node), args ...string) *testNode {
	t.Helper()
	tn := launchNodeWith(t, mod, args...)
	tn.waitReady(t)
	return tn
}

// launchNode starts a node without waiting for it to be ready.
func launchNode(t testing.TB, args ...string) *testNode {
	t.Helper()
	return launchNodeWith(t, nil, args...)
}

// launchNodeWith is launchNode with mod applied to the node before it
// runs. The node reloads from its flags, as serve's does.
func launchNodeWith(t testing.TB, mod func(*node), args ...string) *testNode {
	t.Helper()
	f := newServeFlags("outpost serve", io.Discard)
	require.NoError(t, f.fs.Parse(append([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain-timeout", "5s"}, args...)))
	resolve := func() (*settings, error) {
		s, err := f.resolve()
		if err == nil && os.Getenv(fastPathEnv) == "1" {
			s.fastPath = true // the suites again with the fast path (fastpath_test.go)
		}
		return s, err
	}
	s, err := resolve()
	require.NoError(t, err)
	n, err := newNode(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	n.ops.resolve = resolve
	if mod != nil {
		mod(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{n: n, url: "http://" + n.publicAddr(), admin: "http://" + n.adminAddr(), cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.run(ctx) }()
	t.Cleanup(func() { tn.stop(t) })
	return tn
}

// waitReady waits for the node's /readyz to answer 200.
func (tn *testNode) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(tn.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "node never became ready")
		time.Sleep(5 * time.Millisecond)
	}
}

// stop stops the node (once) and returns what run returned.
func (tn *testNode) stop(t testing.TB) error {
	t.Helper()
	tn.cancel()
	select {
	case err, ok := <-tn.done:
		if ok {
			close(tn.done)
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("node did not stop")
		return nil
	}
}

// countingOrigin serves a body per path and counts requests per path.
type countingOrigin struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	total  atomic.Int64
}

func newCountingOrigin(t *testing.T, fn http.HandlerFunc) *countingOrigin {
	t.Helper()
	o := &countingOrigin{counts: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.counts[r.URL.Path]++
		o.mu.Unlock()
		o.total.Add(1)
		if ct := staticTypes[path.Ext(r.URL.Path)]; ct != "" {
			// As a file server would (fn may set another): a static
			// path served as text/plain is not stored (edge/deception.go).
			w.Header().Set("Content-Type", ct)
		}
		fn(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// staticTypes are the Content-Types of the static paths the tests fetch.
var staticTypes = map[string]string{".css": "text/css", ".js": "text/javascript", ".png": "image/png", ".mp4": "video/mp4"}

func (o *countingOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

func fetch(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func cacheStatus(t *testing.T, url string) string {
	t.Helper()
	resp, _ := fetch(t, url)
	return resp.Header.Get("Cache-Status")
}

func TestServeCachesAndStopsGracefully(t *testing.T) {
	release := make(chan struct{})
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/slow" {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "01234")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "56789")
			return
		}
		io.WriteString(w, "body of "+r.URL.Path)
	})
	tn := startNode(t, "--origin", o.URL, "--name", "edge-test")
	assert.Equal(t, "edge-test; fwd=miss; fwd-status=200; stored", cacheStatus(t, tn.url+"/a"))
	assert.Equal(t, "edge-test; hit; ttl=60", cacheStatus(t, tn.url+"/a"))
	assert.Equal(t, 1, o.count("/a"))

	// A response in flight when the stop begins is finished, not cut.
	resp, err := http.Get(tn.url + "/slow")
	require.NoError(t, err)
	defer resp.Body.Close()
	first := make([]byte, 5)
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	stopped := make(chan error, 1)
	go func() { stopped <- tn.stop(t) }()
	require.Eventually(t, func() bool {
		r, err := http.Get(tn.admin + "/readyz")
		if err != nil {
			return true // the admin listener may already be closed
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	}, 5*time.Second, 5*time.Millisecond, "/readyz turns 503 while draining")
	close(release)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(first)+string(rest))
	assert.NoError(t, <-stopped, "a graceful stop returns nil (exit 0)")
}

func TestAdminNeedsToken(t *testing.T) {
	t.Setenv(tokenEnv, "s3cret")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	tn := startNode(t, "--origin", o.URL)
	for _, tt := range []struct {
		path, auth string
		want       int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 401},
		{"/metrics", "Bearer wrong", 401},
		{"/metrics", "Bearer s3cret", 200},
		{"/status", "Bearer s3cret", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, tn.admin+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, tt.want, resp.StatusCode, "%s with %q", tt.path, tt.auth)
	}
	req, _ := http.NewRequest(http.MethodPost, tn.admin+"/purge", strings.NewReader(`{"all": true}`))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a purge without the token")
}

// purgeCLI runs `outpost purge` and returns its exit status and output.
func purgeCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), append([]string{"purge"}, args...), &out, &out)
	return code, out.String()
}

// TestPurgeEndToEnd: each purge kind through the CLI against a node with
// memory and disk tiers: purged objects miss, others still hit, and a
// restart does not bring purged objects back from disk.
func TestPurgeEndToEnd(t *testing.T) {
	t.Setenv(tokenEnv, "tok")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600, stale-while-revalidate=600")
		if strings.HasPrefix(r.URL.Path, "/img/") {
			w.Header().Set("Surrogate-Key", "images all")
		}
		io.WriteString(w, "body of "+r.URL.Path)
	})
	dir := t.TempDir()
	tn := startNode(t, "--origin", o.URL, "--cache-dir", dir)
	paths := []string{"/css/a.css", "/css/b.css", "/img/1.png", "/img/2.png", "/js/app.js"}
	warm := func(tn *testNode) {
		for _, p := range paths {
			fetch(t, tn.url+p)
		}
	}
	warm(tn)
	hit := func(p string) bool { return strings.Contains(cacheStatus(t, tn.url+p), "; hit") }
	for _, p := range paths {
		require.True(t, hit(p), "%s cached", p)
	}
	host := strings.TrimPrefix(tn.url, "http://")

	code, out := purgeCLI(t, "--admin", tn.admin, "--url", tn.url+"/css/a.css")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "1 bans")
	assert.False(t, hit("/css/a.css"), "purged by URL")
	assert.True(t, hit("/css/b.css"), "others still hit")

	code, out = purgeCLI(t, "--admin", tn.admin, "--tag", "images")
	require.Equal(t, 0, code, out)
	assert.False(t, hit("/img/1.png"))
	assert.False(t, hit("/img/2.png"))
	assert.True(t, hit("/js/app.js"))

	code, out = purgeCLI(t, "--admin", tn.admin, "--prefix", tn.url+"/css/")
	require.Equal(t, 0, code, out)
	assert.False(t, hit("/css/b.css"))
	assert.True(t, hit("/js/app.js"))

	// Soft: the stale copy is served once (stale-while-revalidate) while
	// one refetch runs.
	before := o.count("/js/app.js")
	code, out = purgeCLI(t, "--admin", tn.admin, "--soft", "--url", tn.url+"/js/app.js")
	require.Equal(t, 0, code, out)
	assert.Contains(t, cacheStatus(t, tn.url+"/js/app.js"), "stale-while-revalidate")
	require.Eventually(t, func() bool { return o.count("/js/app.js") == before+1 }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return hit("/js/app.js") }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, before+1, o.count("/js/app.js"), "one refetch")

	warm(tn)
	code, out = purgeCLI(t, "--admin", tn.admin, "--host", strings.Split(host, ":")[0])
	require.Equal(t, 0, code, out)
	for _, p := range paths {
		assert.False(t, hit(p), "host purge: %s", p)
	}

	// Failures exit non-zero with the server's message.
	t.Setenv(tokenEnv, "wrong")
	code, out = purgeCLI(t, "--admin", tn.admin, "--all")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "401")
	t.Setenv(tokenEnv, "tok")
	code, out = purgeCLI(t, "--admin", tn.admin, "--url", "not-a-url")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "400")
	code, _ = purgeCLI(t, "--admin", tn.admin)
	assert.Equal(t, 2, code, "nothing to purge is a usage error")

	// A purge survives a restart: purged objects are not served from disk.
	warm(tn)
	code, out = purgeCLI(t, "--admin", tn.admin, "--all")
	require.Equal(t, 0, code, out)
	require.NoError(t, tn.stop(t))
	tn = startNode(t, "--origin", o.URL, "--cache-dir", dir)
	for _, p := range paths {
		assert.False(t, hit(p), "resurrected after restart: %s", p)
	}
}

func TestWarm(t *testing.T) {
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "warm "+r.URL.Path)
	})
	tn := startNode(t, "--origin", o.URL)
	var out bytes.Buffer
	code := run(context.Background(), []string{"warm", "--admin", tn.admin, tn.url + "/w1", tn.url + "/w2"}, &out, &out)
	require.Equal(t, 0, code, out.String())
	assert.Contains(t, out.String(), "queued 2 of 2")
	require.Eventually(t, func() bool { return o.count("/w1") == 1 && o.count("/w2") == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(cacheStatus(t, tn.url+"/w2"), "; hit") }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, o.count("/w2"))
	code = run(context.Background(), []string{"warm", "--admin", tn.admin, "ftp://x"}, &out, &out)
	assert.Equal(t, 2, code)
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cmdDemo(ctx, []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	buf := make([]byte, 64<<10)
	n, err := io.ReadAtLeast(pr, buf, 200)
	require.NoError(t, err)
	head := string(buf[:n])
	go io.Copy(io.Discard, pr)
	edge, origin := "", ""
	for _, line := range strings.Split(head, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "edge" {
			edge = strings.TrimSuffix(f[1], "/")
		} else if len(f) >= 2 && f[0] == "origin" {
			origin = strings.TrimSuffix(f[1], "/")
		}
	}
	require.NotEmpty(t, edge, "the demo prints the edge URL:\n%s", head)
	resp, body := fetch(t, edge+"/")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, body, "Outpost demo")
	resp, body = fetch(t, edge+"/media/big.bin", "Range", "bytes=0-99")
	assert.Equal(t, 206, resp.StatusCode)
	assert.Len(t, body, 100)
	resp, body = fetch(t, edge+"/media/big.bin", "Range", "bytes=10-19")
	assert.Equal(t, 206, resp.StatusCode)
	assert.Len(t, body, 10)
	_, stats := fetch(t, origin+"/origin/stats")
	assert.Contains(t, stats, `"GET /media/big.bin": 1`, "one slice fetched for both ranges")
	resp, _ = fetch(t, edge+"/fonts/outpost-icons.ttf")
	assert.Equal(t, "font/ttf", resp.Header.Get("Content-Type"))
	cancel()
	assert.Equal(t, 0, <-done)
}

// TestPutSurvivesAnIdleClose: an origin that closes a keep-alive
// connection just as the node reuses it (Node.js and Apache close idle
// ones after 5 s) does not cost a client a 502 for an idempotent request
// with a small body: the node kept the body and sends it again.
func TestPutSurvivesAnIdleClose(t *testing.T) {
	var n atomic.Int32
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n.Add(1) == 1 {
			conn, rw, err := http.NewResponseController(w).Hijack()
			require.NoError(t, err)
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 5\r\n\r\nfirst")
			rw.Reader.ReadByte() // the next request arrives on this connection
			conn.Close()
			return
		}
		w.Write(body)
	})
	tn := startNode(t, "--origin", o.URL)
	_, b := fetch(t, tn.url+"/first")
	require.Equal(t, "first", b)

	req, err := http.NewRequest(http.MethodPut, tn.url+"/upload", strings.NewReader("payload"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "payload", string(got))
}

// TestPurgeMethod: with admin.purge_method the public listener takes
// PURGE for one URL with the admin token (401 without), answers as the
// admin API does, and Outpost-Soft-Purge: 1 makes it soft; without the
// setting PURGE gets 405 and never reaches the origin.
func TestPurgeMethod(t *testing.T) {
	t.Setenv(tokenEnv, "tok")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600, stale-while-revalidate=600")
		io.WriteString(w, "body")
	})
	cfg := writeFile(t, "outpost.yaml", "admin: { purge_method: true }\n")
	tn := startNode(t, "--origin", o.URL, "--config", cfg)
	purgeReq := func(path, token string, hdr ...string) (*http.Response, string) {
		req, err := http.NewRequest("PURGE", tn.url+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	fetch(t, tn.url+"/a.css")
	require.Contains(t, cacheStatus(t, tn.url+"/a.css"), "; hit")

	resp, _ := purgeReq("/a.css", "wrong")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, cacheStatus(t, tn.url+"/a.css"), "; hit", "a refused purge purges nothing")

	resp, body := purgeReq("/a.css", "tok")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Contains(t, body, `"bans":1`)
	assert.Contains(t, cacheStatus(t, tn.url+"/a.css"), "fwd=miss")

	require.Contains(t, cacheStatus(t, tn.url+"/a.css"), "; hit")
	resp, _ = purgeReq("/a.css", "tok", "Outpost-Soft-Purge", "1")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, cacheStatus(t, tn.url+"/a.css"), "stale-while-revalidate", "soft: served stale while refetched")

	plain := startNode(t, "--origin", o.URL)
	before := o.total.Load()
	req, err := http.NewRequest("PURGE", plain.url+"/a.css", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, before, o.total.Load(), "PURGE never reaches the origin")
}
