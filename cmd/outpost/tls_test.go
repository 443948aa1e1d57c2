package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "outpost test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
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
	certFile = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	return certFile, keyFile, roots
}

// TestTLSListener: with --tls-cert and --tls-key the public listener
// speaks HTTPS and HTTP/2, caches under https URLs, and purges by them.
func TestTLSListener(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, roots := selfSigned(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "secure "+r.URL.Path)
	})
	tn := startNode(t, "--origin", o.URL, "--tls-cert", certFile, "--tls-key", keyFile)
	base := strings.Replace(tn.url, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}, Timeout: 10 * time.Second}
	get := func() (*http.Response, string) {
		resp, err := client.Get(base + "/app.css")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	get()
	resp, body := get()
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Equal(t, "secure /app.css", body)
	assert.Equal(t, int64(len(body)), resp.ContentLength)
	// The hit comes a moment after the miss: a second boundary may lie
	// between them on a loaded machine.
	assert.Regexp(t, `^outpost; hit; ttl=(600|599)$`, resp.Header.Get("Cache-Status"))
	assert.Equal(t, 1, o.count("/app.css"))

	code, out := purgeCLI(t, "--admin", tn.admin, "--url", base+"/app.css")
	require.Equal(t, 0, code, out)
	resp, _ = get()
	assert.Contains(t, resp.Header.Get("Cache-Status"), "fwd=miss", "purged by its https URL")

	// Plain HTTP on the TLS port is refused, not served.
	plain, err := http.Get(tn.url + "/app.css")
	if err == nil {
		plain.Body.Close()
		assert.Equal(t, http.StatusBadRequest, plain.StatusCode)
	}
}

// TestTLSConfigErrors: a certificate without its key, or one that does
// not load, exits 2 naming the field.
func TestTLSConfigErrors(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, []string{"--tls-key", "missing"}},
		{"key without cert", []string{"--tls-key", keyFile}, []string{"--tls-cert", "missing"}},
		{"key does not match", []string{"--tls-cert", certFile, "--tls-key", writeFile(t, "bad.pem", "not a key")}, []string{"--tls-cert"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tokenEnv, "")
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--origin", "http://o"}, tt.args...), io.Discard, &stderr)
			assert.Equal(t, 2, code, stderr.String())
			for _, w := range tt.want {
				assert.Contains(t, stderr.String(), w)
			}
		})
	}
}
