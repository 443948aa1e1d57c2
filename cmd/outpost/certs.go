package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

// The public listener's certificates, chosen by SNI and replaced while
// serving: by a reload, and when their files change on disk (a renewal).

// certFiles are the files of one certificate pair.
type certFiles struct {
	cert, key string
}

// resolveMoreCerts loads tls.certificates, the pairs offered after tls.cert
// and tls.key, naming the bad one.
func (s *settings) resolveMoreCerts(pairs []certPair) error {
	for i, p := range pairs {
		field := fmt.Sprintf("tls.certificates[%d].", i)
		switch {
		case p.Cert.V == "":
			return badField(field+"cert", p.Key.Line, "missing (%skey is set)", field)
		case p.Key.V == "":
			return badField(field+"key", p.Cert.Line, "missing (%scert is set)", field)
		}
		c, err := tls.LoadX509KeyPair(p.Cert.V, p.Key.V)
		if err != nil {
			return badField(field+"cert", p.Cert.Line, "%v", err)
		}
		if s.tlsCert == nil {
			s.tlsCert = &c
		}
		s.tlsFiles = append(s.tlsFiles, certFiles{cert: p.Cert.V, key: p.Key.V})
	}
	return nil
}

// certSet is the certificates of one load and the state of their files.
type certSet struct {
	files  []certFiles
	certs  []tls.Certificate
	stamps []fileStamp // per file: cert, key, cert, key...
}

// fileStamp is what tells that a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// stampsOf returns the stamps of every file of files, in order.
func stampsOf(files []certFiles) ([]fileStamp, error) {
	out := make([]fileStamp, 0, 2*len(files))
	for _, f := range files {
		for _, p := range []string{f.cert, f.key} {
			st, err := stampOf(p)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// loadCertSet reads every pair of files. The stamps are taken first, so a
// file written during the load is seen as changed at the next look.
func loadCertSet(files []certFiles) (*certSet, error) {
	stamps, err := stampsOf(files)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cs := &certSet{files: files, stamps: stamps}
	for _, f := range files {
		c, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("tls: %s: %w", f.cert, err)
		}
		if c.Leaf == nil && len(c.Certificate) > 0 {
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls: %s: %w", f.cert, err)
			}
		}
		cs.certs = append(cs.certs, c)
	}
	return cs, nil
}

// certStore serves the current certSet to TLS handshakes and replaces it.
// It is safe for concurrent use.
type certStore struct {
	cur atomic.Pointer[certSet]
	log *slog.Logger
	// every is how often the files are looked at. Zero means 10s.
	every time.Duration
}

func newCertStore(files []certFiles, log *slog.Logger) (*certStore, error) {
	cs, err := loadCertSet(files)
	if err != nil {
		return nil, err
	}
	st := &certStore{log: log}
	st.cur.Store(cs)
	return st, nil
}

// get is tls.Config.GetCertificate: the first pair valid for the name the
// client asks for (SNI) whose key the client can verify (its signature
// algorithms, and for TLS 1.2 its cipher suites), else the first pair, as
// crypto/tls chooses from Config.Certificates.
func (st *certStore) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := st.cur.Load().certs
	for i := range certs {
		if hello.SupportsCertificate(&certs[i]) == nil {
			return &certs[i], nil
		}
	}
	return &certs[0], nil
}

// store makes cs current and reports whether it differs from the set it
// replaces (other files, or other certificates in them).
func (st *certStore) store(cs *certSet) bool {
	old := st.cur.Swap(cs)
	if !slices.Equal(old.files, cs.files) || len(old.certs) != len(cs.certs) {
		return true
	}
	for i := range cs.certs {
		if !slices.EqualFunc(old.certs[i].Certificate, cs.certs[i].Certificate, func(a, b []byte) bool { return string(a) == string(b) }) {
			return true
		}
	}
	return false
}

// run looks at the files every st.every until ctx is done and loads them
// again when one changed. A pair that fails to load (a renewal half
// written) is logged once and tried again when the files change again; the
// certificates in use stay.
func (st *certStore) run(ctx context.Context) {
	every := st.every
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var failed []fileStamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := st.cur.Load()
		now, err := stampsOf(cur.files)
		if err != nil || slices.Equal(now, cur.stamps) || slices.Equal(now, failed) {
			continue
		}
		cs, err := loadCertSet(cur.files)
		if err != nil {
			failed = now
			st.log.Warn("tls: certificate files changed but do not load; the certificates in use stay", "err", err)
			continue
		}
		failed = nil
		if st.cur.CompareAndSwap(cur, cs) { // a reload meanwhile wins
			st.log.Info("tls: certificates reloaded from their files", "pairs", len(cs.certs))
		}
	}
}

// setupTLS serves the public listener's certificates from a certStore, so
// that SNI chooses among them and reloads replace them, and adds HTTP/3
// when it is on.
func (n *node) setupTLS() error {
	st, err := newCertStore(n.s.tlsFiles, n.log)
	if err != nil {
		return err
	}
	n.ops.certs = st
	n.public.TLSConfig.Certificates = nil
	n.public.TLSConfig.GetCertificate = st.get
	if n.s.http3 {
		return n.setupHTTP3()
	}
	return nil
}
