package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/edge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// forged are forwarding fields a client may send to lie about itself.
var forged = []string{
	"X-Forwarded-For", "203.0.113.9",
	"X-Forwarded-Proto", "https",
	"X-Forwarded-Host", "admin.internal",
	"Forwarded", "for=203.0.113.9;host=admin.internal;proto=https",
}

// TestForwardingFieldsAreOutposts: X-Forwarded-For, -Proto, -Host and
// Forwarded reach the origin as written from the connection; a client's
// values are dropped, and kept (the peer appended) only when the peer is a
// trusted proxy.
func TestForwardingFieldsAreOutposts(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string
	}{
		{"untrusted peer", nil, map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  "site.example",
			"Forwarded":         "for=127.0.0.1;host=site.example;proto=http",
		}},
		{"a peer in another network", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, map[string]string{
			"X-Forwarded-For": "127.0.0.1",
			"Forwarded":       "for=127.0.0.1;host=site.example;proto=http",
		}},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[string]string{
			"X-Forwarded-For":   "203.0.113.9, 127.0.0.1",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "admin.internal",
			"Forwarded":         "for=203.0.113.9;host=admin.internal;proto=https, for=127.0.0.1;host=site.example;proto=http",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, static("x", "Cache-Control", "max-age=60"), func(c *edge.Config) { c.TrustedProxies = tt.trusted })
			for _, method := range []string{"GET", "POST"} { // a fill and a pass
				resp, _ := e.do(t, method, "/f", append([]string{"Host", "site.example"}, forged...)...)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				r, _ := e.origin.lastRequest(t)
				for k, v := range tt.want {
					assert.Equal(t, []string{v}, r.Header.Values(k), "%s %s", method, k)
				}
			}
		})
	}
}

// TestOverrideHeadersAreRemoved: headers that frameworks read as overrides
// of the URL, host or client address, and header names with "_", never
// reach the origin, unless the host keeps the override.
func TestOverrideHeadersAreRemoved(t *testing.T) {
	overrides := edge.OverrideHeaders()
	require.Contains(t, overrides, "X-Original-Url")
	for _, tt := range []struct {
		name string
		keep []string
	}{{"default", nil}, {"kept", []string{"x-real-ip", "X-Original-URL"}}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, static("x"), withPrivacy(edge.Privacy{KeepHeaders: tt.keep}))
			var hdr []string
			for _, h := range overrides {
				hdr = append(hdr, h, "evil")
			}
			hdr = append(hdr, "Transfer_Encoding", "chunked", "X_Api_Key", "k", "X-Fine", "ok")
			for _, method := range []string{"GET", "POST"} {
				e.do(t, method, "/o", hdr...)
				r, _ := e.origin.lastRequest(t)
				for _, h := range overrides {
					kept := false
					for _, k := range tt.keep {
						kept = kept || strings.EqualFold(k, h)
					}
					if kept {
						assert.Equal(t, "evil", r.Header.Get(h), "%s %s kept by the host", method, h)
					} else {
						assert.Empty(t, r.Header.Values(h), "%s %s", method, h)
					}
				}
				for k := range r.Header {
					assert.NotContains(t, k, "_", "%s: a header name with _ reached the origin", method)
				}
				assert.Equal(t, "ok", r.Header.Get("X-Fine"))
			}
		})
	}
}

// TestUnderscoreTransferEncodingIsNotForwarded: a body framed by
// Content-Length reaches the origin framed the same way; a
// Transfer_Encoding field beside it (which a CGI gateway would read as
// Transfer-Encoding) is dropped.
func TestUnderscoreTransferEncodingIsNotForwarded(t *testing.T) {
	e := newEnv(t, static("done"))
	conn, err := net.Dial("tcp", e.edge.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	fmt.Fprintf(conn, "POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	r, body := e.origin.lastRequest(t)
	assert.Equal(t, "0\r\n\r\n", string(body), "the body as Content-Length framed it")
	assert.Empty(t, r.Header.Values("Transfer_encoding"))
	assert.Empty(t, r.TransferEncoding)
	assert.Equal(t, int64(1), e.origin.hits.Load())
}

// TestUpgradeIsNeverTunnelled: an Upgrade request reaches the origin as a
// plain request (Upgrade and Connection are hop-by-hop, RFC 9110 §7.8), the
// bytes after it are read as HTTP, not relayed raw; and an origin that
// answers 101 anyway gets its client a 502, not a raw connection.
func TestUpgradeIsNeverTunnelled(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/switch" {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "websocket")
			w.WriteHeader(http.StatusSwitchingProtocols)
			if conn, buf, err := http.NewResponseController(w).Hijack(); err == nil {
				buf.WriteString("RAW-FROM-ORIGIN")
				buf.Flush()
				conn.Close()
			}
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "plain")
	})
	for _, tt := range []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{"GET", "/ws", 200, "plain"},
		{"POST", "/ws", 200, "plain"},
		{"GET", "/switch", 502, "502 Bad Gateway\n"},
		{"POST", "/switch", 502, "502 Bad Gateway\n"},
	} {
		conn, err := net.Dial("tcp", e.edge.Listener.Addr().String())
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"+
			"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tt.method, tt.path)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "%s %s", tt.method, tt.path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tt.wantStatus, resp.StatusCode, "%s %s", tt.method, tt.path)
		assert.Equal(t, tt.wantBody, string(b), "%s %s", tt.method, tt.path)
		assert.Empty(t, resp.Header.Get("Upgrade"))
		rest, _ := io.ReadAll(br)
		assert.NotContains(t, string(rest), "RAW-FROM-ORIGIN", "%s %s", tt.method, tt.path)
		conn.Close()
		if tt.wantStatus == 200 {
			// The bytes after the request were HTTP to the edge: the
			// next request was answered, not tunnelled.
			assert.Contains(t, string(rest), "HTTP/1.1 200 OK", "%s %s", tt.method, tt.path)
		}
	}
	e.origin.mu.Lock()
	defer e.origin.mu.Unlock()
	for _, r := range e.origin.reqs {
		assert.Empty(t, r.Header.Get("Upgrade"), "%s %s", r.Method, r.URL)
		assert.Empty(t, r.Header.Get("Connection"), "%s %s", r.Method, r.URL)
	}
}
