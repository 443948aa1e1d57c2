package origin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Config configures a Pool. Zero durations and counts take the defaults named.
type Config struct {
	// Servers are the origin servers, as absolute http or https URLs. A path
	// in a URL is prefixed to every request path sent to that server.
	Servers []string
	// OriginHost, when true, sends each server's own host name as Host
	// instead of the client's.
	OriginHost bool
	// DialTimeout bounds a TCP connect. Zero means 5s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds a TLS handshake. Zero means 5s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is written. Zero means 30s.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes idle connections after this long. Zero means 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerServer bounds the idle connections kept per server.
	// Zero means 128.
	MaxIdleConnsPerServer int
}

// Error is returned by RoundTrip when a server could not be reached or
// failed before a response: Server is the server's URL.
type Error struct {
	Server string
	Err    error
}

func (e *Error) Error() string { return "origin " + e.Server + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrNoServers is returned by New for a configuration without servers.
var ErrNoServers = errors.New("origin: no servers")

// Pool is an http.RoundTripper that spreads requests over origin servers
// round robin. It is safe for concurrent use. Close releases idle connections.
type Pool struct {
	servers   []*server
	next      atomic.Uint64
	transport *http.Transport
	cfg       Config
}

type server struct {
	url    *url.URL
	prefix string // path prefix without trailing slash
	name   string
}

var _ http.RoundTripper = (*Pool)(nil)

// New returns a Pool configured by cfg. It fails when a server URL is not
// an absolute http(s) URL without query, naming the bad entry.
func New(cfg Config) (*Pool, error) {
	if len(cfg.Servers) == 0 {
		return nil, ErrNoServers
	}
	setDefault(&cfg.DialTimeout, 5*time.Second)
	setDefault(&cfg.TLSHandshakeTimeout, 5*time.Second)
	setDefault(&cfg.ResponseHeaderTimeout, 30*time.Second)
	setDefault(&cfg.IdleConnTimeout, 90*time.Second)
	setDefault(&cfg.MaxIdleConnsPerServer, 128)
	p := &Pool{cfg: cfg}
	for i, raw := range cfg.Servers {
		s, err := parseServer(raw)
		if err != nil {
			return nil, fmt.Errorf("origin: servers[%d]: %w", i, err)
		}
		p.servers = append(p.servers, s)
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		Proxy:                  nil, // an edge talks to its origins directly
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		MaxIdleConns:           0, // bounded per server instead
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerServer,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // bodies pass through as the origin encoded them
		MaxResponseHeaderBytes: 64 << 10,
	}
	return p, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func parseServer(raw string) (*server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: must not have a query, fragment or user info", raw)
	}
	return &server{url: u, prefix: strings.TrimSuffix(u.EscapedPath(), "/"), name: u.Scheme + "://" + u.Host}, nil
}

// RoundTrip sends req to the next server. req.URL's path and query are kept
// (after the server's path prefix); its scheme and host are replaced. req is
// not modified. Errors before a response are *Error.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	s := p.servers[(p.next.Add(1)-1)%uint64(len(p.servers))]
	out := new(http.Request)
	*out = *req
	u := *req.URL
	u.Scheme, u.Host = s.url.Scheme, s.url.Host
	if s.prefix != "" {
		u.Path = s.url.Path + req.URL.Path
		u.RawPath = s.prefix + req.URL.EscapedPath()
	}
	out.URL = &u
	if p.cfg.OriginHost || out.Host == "" {
		out.Host = s.url.Host
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, &Error{Server: s.name, Err: err}
	}
	return resp, nil
}

// Close closes idle connections. In-flight requests finish.
func (p *Pool) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}
