package main

import (
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
	"errors"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pairNames are the certificate pairs rig certs writes, in the order the
// servers offer them: ECDSA first, RSA for clients without ECDSA.
var pairNames = []string{"ecdsa", "rsa"}

// cmdCerts writes self-signed ECDSA P-256 and RSA-2048 certificates for
// 127.0.0.1 and localhost (<name>.pem, <name>.key) and a session ticket
// secret (tickets.key) in the format Outpost reads.
func cmdCerts(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("-dir is required")
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	for i, key := range []crypto.Signer{ec, rk} {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)),
			Subject:      pkix.Name{CommonName: "outpost bench " + pairNames[i]},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(30 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return err
		}
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		base := filepath.Join(*dir, pairNames[i])
		if err := os.WriteFile(base+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			return err
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	return os.WriteFile(filepath.Join(*dir, "tickets.key"), []byte(base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600)
}

// loadPairs reads the pairs cmdCerts wrote.
func loadPairs(dir string) ([]tls.Certificate, error) {
	var out []tls.Certificate
	for _, n := range pairNames {
		base := filepath.Join(dir, n)
		c, err := tls.LoadX509KeyPair(base+".pem", base+".key")
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
