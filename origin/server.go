package origin

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// maxWeight bounds Server.Weight, which keeps the weighted schedule small.
const maxWeight = 256

// Server is one upstream server of a Pool or a Shield.
type Server struct {
	// URL is the server's absolute http or https URL. A path in it
	// (https://origin.internal/assets) is prefixed to every request path sent
	// to that server; a query, fragment or user info is an error.
	URL string
	// Weight is the server's share of the traffic relative to the others,
	// from 1 to 256. Zero means 1.
	Weight int
}

// ServerStatus is a snapshot of one server's health, for a status page.
type ServerStatus struct {
	// URL is the server's URL, scheme://host[:port].
	URL string
	// Weight is the server's configured weight.
	Weight int
	// Up reports whether the server receives traffic: active checks do not
	// hold it down and it is not ejected.
	Up bool
	// CheckDown reports whether active health checks hold the server down.
	CheckDown bool
	// EjectedUntil is the end of the server's current ejection by passive
	// checks, or the zero Time when it is not ejected.
	EjectedUntil time.Time
	// InFlight counts the requests sent to the server whose response body is
	// not yet closed.
	InFlight int64
	// Requests counts the requests sent to the server.
	Requests uint64
	// Failures counts the requests that failed: no response, a response body
	// that failed, or (for a Pool) a 502, 503 or 504 response.
	Failures uint64
	// Ejections counts the server's ejections by passive checks.
	Ejections uint64
	// LastFailure is the time of the server's last failed request or active
	// check, or the zero Time when it never failed.
	LastFailure time.Time
}

// server is the live state of one upstream server. Its counters and the
// fields read by pick are atomics, so choosing a server takes no lock.
type server struct {
	name    string // scheme://host[:port], its label in logs and metrics
	scheme  string
	host    string // host[:port], as in the URL
	path    string // unescaped path prefix, "" or "/a/b" without trailing slash
	rawPath string // escaped form of path
	weight  int64  // 1 to 256
	hash    uint64 // xxhash of name: the server's identity for rendezvous hashing

	inflight  atomic.Int64
	requests  atomic.Uint64
	failures  atomic.Uint64
	ejections atomic.Uint64

	checkDown    atomic.Bool
	ejectedUntil atomic.Int64 // group clock; 0 when not ejected
	lastFailure  atomic.Int64 // group clock plus one; 0 when it never failed

	mu      sync.Mutex
	passive passiveState // guarded by mu
}

// newServer parses cfg.URL. prefix, already validated, is appended to the
// URL's own path.
func newServer(cfg Server, prefix *url.URL) (*server, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("url %q: scheme must be http or https", cfg.URL)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("url %q: no host", cfg.URL)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("url %q: must not have a query, fragment or user info", cfg.URL)
	case !isASCII(u.Host):
		return nil, fmt.Errorf("url %q: host must be ASCII (use its xn-- form)", cfg.URL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("url %q: bad port", cfg.URL)
		}
	}
	if cfg.Weight < 0 || cfg.Weight > maxWeight {
		return nil, fmt.Errorf("weight %d: must be between 1 and %d", cfg.Weight, maxWeight)
	}
	s := &server{
		name:    u.Scheme + "://" + u.Host,
		scheme:  u.Scheme,
		host:    u.Host,
		path:    strings.TrimSuffix(u.Path, "/"),
		rawPath: strings.TrimSuffix(u.EscapedPath(), "/"),
		weight:  int64(max(cfg.Weight, 1)),
	}
	if prefix != nil {
		s.path += prefix.Path
		s.rawPath += prefix.EscapedPath()
	}
	s.hash = xxhash.Sum64String(s.name)
	return s, nil
}

// addr is the server's host:port as http.Transport names it when it dials.
func (s *server) addr() string {
	u := url.URL{Scheme: s.scheme, Host: s.host}
	port := u.Port()
	if port == "" {
		port = "80"
		if s.scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// available reports whether s may receive traffic at the time c tells.
func (s *server) available(c *clock) bool {
	if s.checkDown.Load() {
		return false
	}
	until := s.ejectedUntil.Load()
	return until == 0 || c.now() >= until
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
