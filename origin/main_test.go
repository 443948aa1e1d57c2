package origin

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testOrigin is a real HTTP origin that answers its name, and can be made to
// fail its health checks, answer another status, or do anything else.
type testOrigin struct {
	*httptest.Server
	name    string
	hits    atomic.Int64 // requests but health checks
	checks  atomic.Int64 // health checks
	sick    atomic.Bool  // health checks fail
	status  atomic.Int64 // status of the answers; 0 means 200
	handler atomic.Pointer[http.HandlerFunc]
}

func newOrigin(t testing.TB, name string) *testOrigin {
	t.Helper()
	o := &testOrigin{name: name}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serveHTTP))
	t.Cleanup(o.Close)
	return o
}

func (o *testOrigin) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		o.checks.Add(1)
		if o.sick.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		return
	}
	o.hits.Add(1)
	if h := o.handler.Load(); h != nil {
		(*h)(w, r)
		return
	}
	if code := o.status.Load(); code != 0 {
		w.WriteHeader(int(code))
	}
	io.WriteString(w, o.name)
}

// handle makes o answer with h.
func (o *testOrigin) handle(h http.HandlerFunc) { o.handler.Store(&h) }

// servers returns the Server entries of origins.
func servers(origins ...*testOrigin) []Server {
	out := make([]Server, len(origins))
	for i, o := range origins {
		out[i] = Server{URL: o.URL}
	}
	return out
}

// seeded returns a deterministic source of randomness for LeastRequests.
func seeded(seed uint64) func() uint64 {
	r := rand.New(rand.NewPCG(seed, seed))
	var mu sync.Mutex
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// newTestPool returns a Pool on cfg, with seeded randomness, closed when the
// test ends.
func newTestPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := newPool(cfg, seeded(1))
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// fetch sends a GET for url through rt and returns the status and body.
func fetch(t testing.TB, rt http.RoundTripper, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return send(rt, req)
}

func send(rt http.RoundTripper, req *http.Request) (int, string, error) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// logBuffer collects log lines; slog's handler serializes the writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count returns the number of lines with msg.
func (l *logBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), "msg=\""+msg+"\"")
}

// closeIdle closes the idle connections of g, whose reading goroutines
// block on the network and so keep a synctest bubble's clock from moving.
func closeIdle(g *group) { g.transport.CloseIdleConnections() }

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
