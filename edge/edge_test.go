package edge_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// origin is a scripted httptest origin that counts what reaches it.
type origin struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	reqs []*http.Request // every request received, bodies read into body
	body [][]byte
}

// newOrigin starts an origin whose Date comes from clk, so tests that move
// the edge's clock keep the two in step.
func newOrigin(t testing.TB, clk *clock, fn http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		o.mu.Lock()
		o.reqs = append(o.reqs, r.Clone(context.Background()))
		o.body = append(o.body, b)
		o.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		w.Header().Set("Date", clk.Now().UTC().Format(http.TimeFormat))
		fn(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// lastRequest returns the last request the origin received.
func (o *origin) lastRequest(t testing.TB) (*http.Request, []byte) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	require.NotEmpty(t, o.reqs, "the origin received no request")
	return o.reqs[len(o.reqs)-1], o.body[len(o.body)-1]
}

// toServer sends requests to a fixed address, keeping the request's Host
// header, like an origin.Pool with one server.
type toServer struct {
	addr string
	rt   http.RoundTripper
}

func (t toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme = "http"
	out.URL.Host = t.addr
	return t.rt.RoundTrip(out)
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is an edge in front of one scripted origin, both on real sockets.
type env struct {
	origin *origin
	edge   *httptest.Server
	h      *edge.Handler
	store  *storage.Memory
	client *http.Client
	clock  *clock
}

func newEnv(t testing.TB, fn http.HandlerFunc, mod ...func(*edge.Config)) *env {
	t.Helper()
	clk := newClock()
	o := newOrigin(t, clk, fn)
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 64 << 20})
	require.NoError(t, err)
	tr := &http.Transport{MaxIdleConnsPerHost: 200}
	cfg := edge.Config{
		Name:  "test-edge",
		Store: mem,
		Hosts: []edge.Host{{Transport: toServer{addr: o.Listener.Addr().String(), rt: tr}}},
		Now:   clk.Now,
		// A small body arrives whole long before this even on a loaded
		// machine, so Cache-Status "stored" is deterministic.
		StreamDelay: 10 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	h, err := edge.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	client := &http.Client{
		// No Accept-Encoding unless a test sends one: responses arrive
		// as the edge sent them.
		Transport:     &http.Transport{MaxIdleConnsPerHost: 200, DisableCompression: true},
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
		h.Close()
		mem.Close()
		tr.CloseIdleConnections()
	})
	return &env{origin: o, edge: srv, h: h, store: mem, client: client, clock: clk}
}

// do sends a request to the edge and returns the response with its body.
func (e *env) do(t testing.TB, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.edge.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "reading %s %s", method, path)
	return resp, string(b)
}

func (e *env) get(t testing.TB, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return e.do(t, http.MethodGet, path, hdr...)
}

// quiesce waits for background fills (revalidations) to end.
func (e *env) quiesce(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.h.Wait(ctx))
}

// static returns an origin handler answering every request with body
// and the given header fields.
func static(body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		io.WriteString(w, body)
	}
}
