package origin

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Pool. It is plain data, one field per key of a host's
// entry in the configuration file; zero fields take the defaults named.
type Config struct {
	// Name identifies the pool in logs and in the pool label of metrics.
	// Empty means "default".
	Name string
	// Origins are the pool's servers. At least one is required.
	Origins []Server
	// Balance is how a server is chosen for a request. Empty means
	// RoundRobin.
	Balance Policy
	// Health configures active health checks. The zero value sends none.
	Health HealthCheck
	// Ejection configures passive health checks. The zero value has
	// Ejection's defaults.
	Ejection Ejection
	// HostHeader is the Host header sent to servers. Empty means HostClient.
	HostHeader HostHeader
	// PathPrefix, an absolute path, is prefixed to every request path:
	// with "/static", /img/a.png is fetched as /static/img/a.png. It follows
	// a path in a server's URL. Empty means none.
	PathPrefix string
	// RequestHeaders edits the headers of every request sent to a server.
	RequestHeaders HeaderRules
	// TLS configures connections to https servers.
	TLS TLS
	// Timeouts bound the phases of each exchange with a server.
	Timeouts Timeouts
	// Bucket, when set, makes the servers the endpoint of an S3-compatible
	// bucket whose requests are signed (bucket.go). Its servers' URLs have
	// no path, and HostHeader must be empty or HostOrigin. Nil means plain
	// HTTP origins.
	Bucket *Bucket
	// MaxIdleConnsPerServer bounds the kept-alive HTTP/1.1 connections per
	// server. Zero means 128.
	MaxIdleConnsPerServer int
	// Logger receives one line per change of a server's health. Nil means
	// no logging.
	Logger *slog.Logger
	// Registerer receives the pool's metrics, outpost_origin_* with the
	// label pool=Name, until Close. Nil means no metrics.
	Registerer prometheus.Registerer
}

// Pool is an http.RoundTripper that sends each request to one of a set of
// origin servers, chosen by its Policy among those that are up, and retries
// once on another server when that is safe (see RoundTrip). It checks the
// servers' health actively (HealthCheck) and passively (Ejection) and keeps
// idle connections per server, speaking HTTP/2 to TLS servers that offer it.
//
// A Pool is safe for concurrent use. Its health checks run until Close.
type Pool struct {
	g *group
}

var _ http.RoundTripper = (*Pool)(nil)

// New returns a Pool configured by cfg and starts its health checks. Its
// error names the first bad field of cfg (for example
// `origins[1]: url "ftp://a": scheme must be http or https`); with no
// servers it is ErrNoServers.
func New(cfg Config) (*Pool, error) {
	return newPool(cfg, rand.Uint64)
}

// newPool is New with the source of randomness of LeastRequests, which
// must be safe for concurrent use.
func newPool(cfg Config, random func() uint64) (*Pool, error) {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.Balance == "" {
		cfg.Balance = RoundRobin
	}
	if !cfg.Balance.Valid() {
		return nil, fmt.Errorf("origin: balance %q: must be %s, %s or %s", cfg.Balance, RoundRobin, LeastRequests, Rendezvous)
	}
	var bk *bucket
	servers := cfg.Origins
	if cfg.Bucket != nil {
		if cfg.HostHeader == HostClient {
			return nil, fmt.Errorf("origin: host_header %q: a bucket is addressed by its own host name", cfg.HostHeader)
		}
		cfg.HostHeader = HostOrigin
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		var err error
		if bk, err = newBucket(*cfg.Bucket, cfg.RequestHeaders.Add, log.With("pool", cfg.Name)); err != nil {
			return nil, fmt.Errorf("origin: %w", err)
		}
		if !bk.pathStyle {
			servers = make([]Server, len(cfg.Origins))
			for i, s := range cfg.Origins {
				s.URL, _ = bk.virtualHost(s.URL)
				servers[i] = s
			}
		}
	}
	rw, err := newRewriter(cfg.HostHeader, cfg.RequestHeaders)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	g, err := newGroup(groupConfig{
		name:           cfg.Name,
		field:          "origins",
		servers:        servers,
		pathless:       bk != nil,
		bucket:         bk,
		policy:         cfg.Balance,
		prefix:         cfg.PathPrefix,
		rewrite:        rw,
		statusFailures: true,
		health:         cfg.Health,
		ejection:       cfg.Ejection,
		tls:            cfg.TLS,
		timeouts:       cfg.Timeouts,
		maxIdle:        cfg.MaxIdleConnsPerServer,
		logger:         cfg.Logger,
		registerer:     cfg.Registerer,
		rand:           random,
	})
	if err != nil {
		if err == ErrNoServers {
			return nil, err
		}
		return nil, fmt.Errorf("origin: %w", err)
	}
	return &Pool{g: g}, nil
}

// RoundTrip sends req to a server of the pool and returns its response.
// req.URL is the cache URL as the client addressed it: its scheme and host
// are replaced by the server's, its path gets the prefixes, its query is
// kept. The Host header is the client's (req.Host, or req.URL.Host when
// empty) unless HostHeader is HostOrigin. req is not modified.
//
// A request that failed to connect, or an idempotent request (GET, HEAD,
// OPTIONS, TRACE, PUT, DELETE, or one with an Idempotency-Key header) that
// failed before a response, is retried once on another server, provided
// its body is absent or replayable (GetBody set); a 5xx
// response is returned as is. When no server is up, the least recently
// failed one is tried rather than none.
//
// An error before a response is an *Error for the last server tried; its
// Timeout method tells a timeout from other failures. The response body
// fails a Read with an *Error wrapping ErrBodyTimeout when the server sends
// nothing for Timeouts.IdleRead. The caller must close the body: that ends
// the request's share of its server's load.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	if b := p.g.bucket; b != nil {
		return b.roundTrip(req, p.g.roundTrip)
	}
	return p.g.roundTrip(req)
}

// Servers returns a snapshot of the servers' health, in configuration
// order. The caller owns the slice.
func (p *Pool) Servers() []ServerStatus { return p.g.status() }

// Close stops the health checks and waits for them to end, removes the
// pool's metrics from the Registerer and closes idle connections. Requests
// in flight finish; later ones fail with ErrClosed. Close always returns nil.
func (p *Pool) Close() error { return p.g.close() }
