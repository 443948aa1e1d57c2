package origin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Timeouts bound the phases of an exchange with an upstream server. The
// request's context bounds the whole exchange as well. Zero fields take the
// defaults named; none may be negative.
type Timeouts struct {
	// Dial bounds a TCP connect. Zero means 5s.
	Dial time.Duration
	// TLSHandshake bounds a TLS handshake. Zero means 5s.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for the response headers once the
	// request is written. Zero means 30s.
	ResponseHeader time.Duration
	// IdleRead bounds each wait for response body bytes: a body that stalls
	// longer fails its Read with ErrBodyTimeout. Time the reader spends
	// between Reads does not count. Zero means 30s.
	IdleRead time.Duration
	// IdleConn closes a kept-alive connection unused this long. Zero means 90s.
	IdleConn time.Duration
}

// withDefaults returns t with its zero fields set, or an error naming the
// first bad field.
func (t Timeouts) withDefaults() (Timeouts, error) {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"dial", t.Dial}, {"tls_handshake", t.TLSHandshake}, {"response_header", t.ResponseHeader}, {"idle_read", t.IdleRead}, {"idle_conn", t.IdleConn}} {
		if f.d < 0 {
			return t, fmt.Errorf("timeouts.%s %v: must not be negative", f.name, f.d)
		}
	}
	setDefault(&t.Dial, 5*time.Second)
	setDefault(&t.TLSHandshake, 5*time.Second)
	setDefault(&t.ResponseHeader, 30*time.Second)
	setDefault(&t.IdleRead, 30*time.Second)
	setDefault(&t.IdleConn, 90*time.Second)
	return t, nil
}

// TLS configures connections to https servers. Certificates are verified and
// SNI is sent as Go's crypto/tls does by default; HTTP/2 is used with servers
// that offer it by ALPN, HTTP/1.1 with the others.
type TLS struct {
	// CA holds PEM certificates that verify the servers instead of the
	// system's roots. Empty means the system's roots. The caller may reuse
	// the slice once New returns.
	CA []byte
	// ServerName is the name sent by SNI and verified in server certificates.
	// Empty means each server's host name.
	ServerName string
	// InsecureSkipVerify turns certificate verification off. Meant for tests
	// only: a man in the middle can then read and change all traffic.
	InsecureSkipVerify bool
}

// configs returns the TLS configuration of each https server, keyed by the
// address http.Transport dials.
func (t TLS) configs(servers []*server) (map[string]*tls.Config, error) {
	var roots *x509.CertPool
	if len(t.CA) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(t.CA) {
			return nil, errors.New("tls.ca: no PEM certificate found")
		}
	}
	cache := tls.NewLRUClientSessionCache(0)
	byAddr := make(map[string]*tls.Config)
	for _, s := range servers {
		if s.scheme != "https" {
			continue
		}
		name := t.ServerName
		if name == "" {
			host, _, err := net.SplitHostPort(s.addr())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			name = host
		}
		byAddr[s.addr()] = &tls.Config{
			RootCAs:            roots,
			ServerName:         name,
			InsecureSkipVerify: t.InsecureSkipVerify,
			NextProtos:         []string{"h2", "http/1.1"},
			MinVersion:         tls.VersionTLS12,
			ClientSessionCache: cache,
		}
	}
	return byAddr, nil
}

// newTransport returns the http.Transport of a group. It dials and shakes
// hands itself so that a failure to connect is a *connectError (the request
// was never sent) and each server gets its own TLS configuration; the
// Transport then speaks HTTP/2 on connections that negotiated it.
func newTransport(t Timeouts, maxIdlePerServer int, tlsByAddr map[string]*tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &connectError{err}
		}
		return conn, nil
	}
	dialTLS := func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg := tlsByAddr[addr]
		if cfg == nil {
			return nil, &connectError{fmt.Errorf("no TLS configuration for %s", addr)}
		}
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, t.TLSHandshake)
		defer cancel()
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &connectError{fmt.Errorf("tls handshake with %s: %w", addr, err)}
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return tc, nil // net/http needs the *tls.Conn to speak HTTP/2
		}
		return newTEConn(tc), nil
	}
	return &http.Transport{
		Proxy: nil, // an edge talks to its origins directly
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newTEConn(conn), nil
		},
		DialTLSContext:         dialTLS,
		ForceAttemptHTTP2:      true, // on connections whose ALPN chose h2
		ResponseHeaderTimeout:  t.ResponseHeader,
		IdleConnTimeout:        t.IdleConn,
		MaxIdleConns:           0, // bounded per server instead
		MaxIdleConnsPerHost:    maxIdlePerServer,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // bodies pass through as the origin encoded them
		MaxResponseHeaderBytes: 64 << 10,
		ReadBufferSize:         32 << 10,
		WriteBufferSize:        32 << 10,
		HTTP2: &http.HTTP2Config{
			// Find dead HTTP/2 connections, which would otherwise swallow
			// every request multiplexed on them.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
}
