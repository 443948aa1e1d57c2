package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startNATS runs an embedded NATS server with JetStream on loopback and
// returns a config file that puts a node on its purge bus.
func startNATS(t *testing.T) (busConfig string, stop func()) {
	t.Helper()
	addr, stop := runNATS(t)
	return busFile(t, "nats://"+addr), stop
}

// runNATS runs an embedded NATS server with JetStream on loopback and
// returns its address.
func runNATS(t testing.TB) (addr string, stop func()) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	require.NoError(t, err)
	srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "NATS server did not start")
	stop = func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	t.Cleanup(stop)
	return srv.Addr().String(), stop
}

// TestFleetPurge: a purge accepted by one node reaches every node on the
// bus, shields included; a node that was down replays it before it is
// ready; and an edge's refetch after a purge never gets the shield's copy
// from before the purge, whichever node applies it first.
func TestFleetPurge(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "%s v%d", r.URL.Path, version.Load())
	})
	bus, _ := startNATS(t)
	shield := startNode(t, "--name", "shield-1", "--config", bus, "--origin", o.URL)
	edgeA := startNode(t, "--name", "edge-a", "--config", bus, "--origin", o.URL, "--parent", shield.url)
	bDir := t.TempDir()
	edgeB := startNode(t, "--name", "edge-b", "--config", bus, "--origin", o.URL, "--parent", shield.url, "--cache-dir", bDir)

	// Clients ask every node for the same site, as DNS sends them.
	const site = "http://static.example.com"
	body := func(base, path string) string {
		_, b := fetch(t, base+path, "Host", "static.example.com")
		return b
	}
	for _, p := range []string{"/app.css", "/logo.png"} {
		assert.Equal(t, p+" v1", body(edgeA.url, p))
		assert.Equal(t, p+" v1", body(edgeB.url, p))
	}
	require.Equal(t, 1, o.count("/app.css"), "the shield fetched once for both edges")

	// A new release: the origin changes, the deploy purges through edge A.
	version.Store(2)
	code, out := purgeCLI(t, "--admin", edgeA.admin, "--url", site+"/app.css")
	require.Equal(t, 0, code, out)
	assert.NotContains(t, out, "warning")
	for _, n := range []*testNode{edgeA, edgeB} {
		require.Eventually(t, func() bool { return body(n.url, "/app.css") == "/app.css v2" }, 10*time.Second, 10*time.Millisecond,
			"%s never served the new version", n.url)
	}
	assert.Equal(t, "/app.css v2", body(shield.url, "/app.css"), "the shield applied the purge too")
	assert.Equal(t, "/logo.png v1", body(edgeB.url, "/logo.png"), "other objects stay")
	// Each edge's refetch asks the shield for a copy no older than the
	// purge (max-age=0 in its first second, and the precise time beside
	// it): the shield's copy fetched after the purge serves both edges.
	assert.Equal(t, 2, o.count("/app.css"), "one refetch for the whole fleet")

	// Edge B is down while the next purge is issued; when it comes back
	// with its disk cache, it is ready only after replaying the purge.
	require.NoError(t, edgeB.stop(t))
	version.Store(3)
	code, out = purgeCLI(t, "--admin", edgeA.admin, "--url", site+"/logo.png")
	require.Equal(t, 0, code, out)
	edgeB = startNode(t, "--name", "edge-b", "--config", bus, "--origin", o.URL, "--parent", shield.url, "--cache-dir", bDir)
	assert.Equal(t, "/logo.png v3", body(edgeB.url, "/logo.png"), "a purge issued while down is in force once ready")
	assert.Equal(t, "/app.css v2", body(edgeB.url, "/app.css"), "the disk cache survived the restart")
	resp, _ := fetch(t, edgeB.url+"/app.css", "Host", "static.example.com")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "edge-b; hit")
}

// TestFleetPurgeWithTheBusDown: a purge accepted while NATS is down is in
// force on the node that took it, and the CLI says it may not have reached
// the fleet.
func TestFleetPurgeWithTheBusDown(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	bus, stopNATS := startNATS(t)
	tn := startNode(t, "--name", "edge-a", "--config", bus, "--origin", o.URL)
	_, b := fetch(t, tn.url+"/a.js")
	require.Equal(t, "v1", b)
	stopNATS()
	version.Store(2)
	code, out := purgeCLI(t, "--admin", tn.admin, "--url", tn.url+"/a.js")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "warning: in force on this node only")
	_, b = fetch(t, tn.url+"/a.js")
	assert.Equal(t, "v2", b)
}

// TestFleetReadyTimeout: a node whose bus is unreachable at start is not
// ready (it cannot replay what it missed) until purge_bus.ready_timeout,
// when the operator set one; then it serves, and purges work locally.
func TestFleetReadyTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadPort := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close()) // nothing listens there now
	cfg := writeFile(t, "bus.yaml", fmt.Sprintf("purge_bus: { nats: \"nats://127.0.0.1:%d\", ready_timeout: 1s }\n", deadPort))
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "ok")
	})
	start := time.Now()
	tn := startNode(t, "--name", "edge-a", "--config", cfg, "--origin", o.URL)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "not ready before the timeout")
	_, b := fetch(t, tn.url+"/x")
	assert.Equal(t, "ok", b)
	code, out := purgeCLI(t, "--admin", tn.admin, "--url", tn.url+"/x")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "warning")
}

// TestFleetConfigErrors: purge_bus is validated like every other field.
func TestFleetConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		args       []string
		want       []string
	}{
		{"default name", "purge_bus: { nats: \"nats://127.0.0.1:4222\" }\n", nil, []string{"line 1", "purge_bus.nats", "name"}},
		{"bad URL", "name: e1\npurge_bus: { nats: \"http://u:secret@nats\" }\n", nil, []string{"line 2", "purge_bus.nats", "redacted"}},
		{"bad stream", "name: e1\npurge_bus:\n  nats: nats://127.0.0.1:4222\n  stream: a.b\n", nil, []string{"line 4", "purge_bus.stream"}},
		{"stream without server", "name: e1\npurge_bus: { stream: S }\n", nil, []string{"line 2", "purge_bus.nats", "missing"}},
		{"bad ready timeout", "name: e1\npurge_bus:\n  nats: nats://127.0.0.1:4222\n  ready_timeout: soon\n", nil, []string{"line 4", "purge_bus.ready_timeout", "soon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, "")
			args := append([]string{"serve", "--origin", "http://o", "--config", writeFile(t, "outpost.yaml", tt.yaml)}, tt.args...)
			var stderr strings.Builder
			code := run(t.Context(), args, io.Discard, &stderr)
			assert.Equal(t, 2, code, stderr.String())
			for _, w := range tt.want {
				assert.Contains(t, stderr.String(), w)
			}
			assert.NotContains(t, stderr.String(), "secret")
		})
	}
}
