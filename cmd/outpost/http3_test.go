package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTP3HitAfterHTTP1Miss: with TLS the public port also serves
// HTTP/3, advertised by Alt-Svc, through the same cache: an HTTP/3 GET
// is a hit after an HTTP/1.1 miss for the same URL.
func TestHTTP3HitAfterHTTP1Miss(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, roots := selfSigned(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "over any protocol")
	})
	tn := startNode(t, "--origin", o.URL, "--tls-cert", certFile, "--tls-key", keyFile)
	url := strings.Replace(tn.url, "http://", "https://", 1) + "/app.css"

	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	t.Cleanup(h1.CloseIdleConnections)
	resp, err := h1.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "HTTP/1.1", resp.Proto)
	assert.Equal(t, "over any protocol", string(body))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(tn.url, "http://"))
	assert.Equal(t, `h3=":`+port+`"; ma=86400`, resp.Header.Get("Alt-Svc"))

	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(func() { h3.Close() })
	client := &http.Client{Transport: h3, Timeout: 10 * time.Second}
	resp, err = client.Get(url)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "HTTP/3.0", resp.Proto)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "over any protocol", string(body))
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "the HTTP/1.1 miss stored it")
	assert.Equal(t, 1, o.count("/app.css"), "one origin request for both protocols")

	d := getStatus(t, tn.admin)
	assert.True(t, d.HTTP3)
	assert.Equal(t, 2.0, d.Requests["hit"]+d.Requests["miss"], "both requests counted on the status page")
}

// TestHTTP3Off: http3: false serves no UDP and advertises nothing.
func TestHTTP3Off(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, roots := selfSigned(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") })
	tn := startNode(t, "--origin", o.URL, "--tls-cert", certFile, "--tls-key", keyFile, "--config", writeFile(t, "o.yaml", "http3: false\n"))
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	t.Cleanup(h1.CloseIdleConnections)
	resp, err := h1.Get(strings.Replace(tn.url, "http://", "https://", 1) + "/x")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Empty(t, resp.Header.Get("Alt-Svc"))
	assert.Nil(t, tn.n.ops.h3)
}

// certFor writes a certificate for names, with the serial number given,
// into dir as name.pem and name.key, and returns the paths and a pool
// trusting it.
func certFor(t *testing.T, dir, name string, serial int64, names ...string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	// The key first: a watcher seeing the new certificate with the old
	// key would log a mismatch and wait for the next change.
	require.NoError(t, os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	require.NoError(t, os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.Rename(keyFile+".tmp", keyFile))
	require.NoError(t, os.Rename(certFile+".tmp", certFile))
	return certFile, keyFile, roots
}

// servedSerial connects with SNI name and returns the serial of the
// certificate the listener chose.
func servedSerial(t *testing.T, addr, name string) int64 {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestCertificatesBySNIReloaded: several certificates are chosen by the
// name the client asks for; a renewal written to the files is picked up
// without a restart, and a reload can add a pair.
func TestCertificatesBySNIReloaded(t *testing.T) {
	t.Setenv(tokenEnv, "")
	dir := t.TempDir()
	aCert, aKey, _ := certFor(t, dir, "a", 1, "a.test")
	bCert, bKey, _ := certFor(t, dir, "b", 2, "b.test", "*.b.test")
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") })
	yaml := func(extra string) string {
		return fmt.Sprintf("tls:\n  cert: %q\n  key: %q\n  certificates:\n    - {cert: %q, key: %q}\n%shosts:\n  - origins: [%q]\n", aCert, aKey, bCert, bKey, extra, o.URL)
	}
	cfg := writeFile(t, "outpost.yaml", yaml(""))
	tn := startNodeWith(t, func(n *node) { n.ops.certs.every = 10 * time.Millisecond }, "--config", cfg)
	addr := strings.TrimPrefix(tn.url, "http://")

	assert.Equal(t, int64(1), servedSerial(t, addr, "a.test"))
	assert.Equal(t, int64(2), servedSerial(t, addr, "b.test"))
	assert.Equal(t, int64(2), servedSerial(t, addr, "img.b.test"))
	assert.Equal(t, int64(1), servedSerial(t, addr, "other.test"), "no match: the first pair")

	certFor(t, dir, "b", 3, "b.test") // a renewal, written in place
	require.Eventually(t, func() bool { return servedSerial(t, addr, "b.test") == 3 }, 10*time.Second, 10*time.Millisecond, "the renewed certificate was never served")
	assert.Equal(t, int64(1), servedSerial(t, addr, "a.test"))

	cCert, cKey, _ := certFor(t, dir, "c", 4, "c.test")
	full := fmt.Sprintf("tls:\n  cert: %q\n  key: %q\n  certificates:\n    - {cert: %q, key: %q}\n    - {cert: %q, key: %q}\nhosts:\n  - origins: [%q]\n", aCert, aKey, bCert, bKey, cCert, cKey, o.URL)
	require.NoError(t, os.WriteFile(cfg, []byte(full), 0o600))
	code, res := postReload(t, tn.admin)
	require.Equal(t, http.StatusOK, code, "%+v", res)
	assert.Equal(t, []string{"certificates"}, res.Changed)
	assert.Equal(t, int64(4), servedSerial(t, addr, "c.test"))

	// A pair that does not load is refused; the running pairs stay.
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(full, cKey, aKey, 1)), 0o600))
	code, res = postReload(t, tn.admin)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, res.Error, "tls.certificates[1].cert")
	assert.Equal(t, int64(4), servedSerial(t, addr, "c.test"))
}
