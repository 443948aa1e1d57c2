package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
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

// selfSigned writes an ECDSA P-256 certificate and key for 127.0.0.1 and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return selfSignedKey(t, key)
}

// selfSignedKey does what selfSigned does with the key given.
func selfSignedKey(t *testing.T, key crypto.Signer) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "outpost test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
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

// TestTLSConfigErrors: a certificate without its key, one that does not
// load, or session ticket settings that cannot work exit 2 naming the
// field.
func TestTLSConfigErrors(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	tickets := ticketFile(t, 1)
	// tlsYAML is a config file with the tls block given; pairYAML adds a
	// certificate pair to it.
	tlsYAML := func(t *testing.T, block string) []string {
		return []string{"--config", writeFile(t, "outpost.yaml", "tls:\n  "+strings.ReplaceAll(block, "\n", "\n  ")+"\n")}
	}
	pairYAML := func(t *testing.T, block string) []string {
		return tlsYAML(t, "cert: "+certFile+"\nkey: "+keyFile+"\n"+block)
	}
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, []string{"--tls-key", "missing"}},
		{"key without cert", []string{"--tls-key", keyFile}, []string{"--tls-cert", "missing"}},
		{"key does not match", []string{"--tls-cert", certFile, "--tls-key", writeFile(t, "bad.pem", "not a key")}, []string{"--tls-cert"}},
		{"second pair without its key", tlsYAML(t, "certificates: [{cert: "+certFile+"}]"), []string{"tls.certificates[0].key", "missing"}},
		{"tickets without a certificate", tlsYAML(t, "session_tickets: {key_file: "+tickets+"}"), []string{"tls.session_tickets", "without a certificate"}},
		{"ticket key file missing", pairYAML(t, "session_tickets: {key_file: /nonexistent/tickets}"), []string{"tls.session_tickets.key_file", "no such file"}},
		{"ticket secret not base64", pairYAML(t, "session_tickets: {key_file: "+writeFile(t, "t1", "not base64!\n")+"}"), []string{"tls.session_tickets.key_file", "line 1"}},
		{"ticket secret too short", pairYAML(t, "session_tickets: {key_file: "+writeFile(t, "t2", base64.StdEncoding.EncodeToString(make([]byte, 16)))+"}"), []string{"tls.session_tickets.key_file", "at least 32 bytes"}},
		{"rotation too short", pairYAML(t, "session_tickets: {key_file: "+tickets+", rotation: 10s}"), []string{"tls.session_tickets.rotation", "at least 1m"}},
		{"lifetime below rotation", pairYAML(t, "session_tickets: {key_file: "+tickets+", rotation: 2h, lifetime: 1h}"), []string{"tls.session_tickets.lifetime"}},
		{"lifetime above 7 days", pairYAML(t, "session_tickets: {key_file: "+tickets+", lifetime: 200h}"), []string{"tls.session_tickets.lifetime"}},
		{"rotation without key file", pairYAML(t, "session_tickets: {rotation: 1h}"), []string{"tls.session_tickets.key_file", "missing"}},
		{"unknown ticket field", pairYAML(t, "session_tickets: {key_fiel: x}"), []string{"key_fiel"}},
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

// TestTLSCertificatePerClient: with an ECDSA and an RSA pair, a client that
// can verify ECDSA gets the ECDSA certificate and one that cannot (here a
// TLS 1.2 client offering only RSA key exchange suites) gets the RSA one.
func TestTLSCertificatePerClient(t *testing.T) {
	t.Setenv(tokenEnv, "")
	ecCert, ecKey, ecRoots := selfSigned(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaCert, rsaKey, rsaRoots := selfSignedKey(t, rk)
	o := cacheableOrigin(t)
	config := writeFile(t, "outpost.yaml", "tls:\n  certificates:\n    - {cert: "+ecCert+", key: "+ecKey+"}\n    - {cert: "+rsaCert+", key: "+rsaKey+"}\n")
	tn := startNode(t, "--origin", o.URL, "--config", config)
	addr := strings.TrimPrefix(tn.url, "http://")
	for _, tt := range []struct {
		name     string
		give     *tls.Config
		wantAlgo x509.PublicKeyAlgorithm
	}{
		{"TLS 1.3", &tls.Config{RootCAs: ecRoots}, x509.ECDSA},
		{"TLS 1.2, ECDSA suites", &tls.Config{RootCAs: ecRoots, MaxVersion: tls.VersionTLS12}, x509.ECDSA},
		{"TLS 1.2, RSA suites only", &tls.Config{RootCAs: rsaRoots, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, x509.RSA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, tt.give)
			require.NoError(t, err, "the certificate verifies with the roots of the pair expected")
			defer c.Close()
			assert.Equal(t, tt.wantAlgo, c.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm)
		})
	}
}
