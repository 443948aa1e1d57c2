package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLSListenerGuardsHTTP1: over TLS, HTTP/1.1 connections pass the
// framing guard (and requests still know they came over TLS), HTTP/2 ones
// go to net/http's HTTP/2 server, a client stuck in its handshake holds up
// nobody, and plain HTTP on the TLS port gets a 400.
func TestTLSListenerGuardsHTTP1(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, roots := selfSigned(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "secure "+r.URL.Path)
	})
	cfg := writeFile(t, "outpost.yaml", "limits: { header_timeout: 2s }\n")
	tn := startNode(t, "--origin", o.URL, "--tls-cert", certFile, "--tls-key", keyFile, "--config", cfg)
	addr := strings.TrimPrefix(tn.url, "http://")

	// A client that connects and never says hello.
	stuck, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer stuck.Close()

	for _, proto := range []string{"h2", "http/1.1"} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{proto}})
		require.NoError(t, err, proto)
		assert.Equal(t, proto, c.ConnectionState().NegotiatedProtocol)
		c.Close()
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
	}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/a.css")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "HTTP/1.1", resp.Proto)
	assert.Equal(t, "secure /a.css", string(b))
	obj, err := tn.n.store.Get(t.Context(), "https://"+addr+"/a.css")
	require.NoError(t, err, "keyed under https: Request.TLS is set")
	obj.Close()

	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, clte("Transfer-Encoding: chunked"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusBadRequest, r.StatusCode, "HTTP/1.1 over TLS is guarded")
	assert.Zero(t, o.count("/poison"))

	plain, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer plain.Close()
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(plain)
	assert.True(t, strings.HasPrefix(string(out), "HTTP/1.0 400 Bad Request"), "plain HTTP on the TLS port: %q", out)

	// The stuck client's handshake times out (limits.header_timeout).
	stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = stuck.Read(make([]byte, 1))
	assert.Error(t, err, "closed")
}
