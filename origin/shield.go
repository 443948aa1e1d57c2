package origin

import (
	"errors"
	"fmt"
	"net/http"
)

// ShieldConfig configures a Shield: the parents, Outpost nodes reached on
// their public listener, are configured like a pool's servers, in Config.
// Config.Origins lists them (http or https URLs without a path; at least
// one; weights skew the share of keys each is home to). Config.Name
// defaults to "shield". Balance, HostHeader, PathPrefix and RequestHeaders
// must be zero: a shield picks by rendezvous and forwards requests as they
// are. A parent's public listener proxies every path, so Health has no
// default path: use one a parent answers cheaply (a small cached object,
// with Health.Host set to a host it serves). For Ejection only a missing
// response or a failed body counts as a failure: a parent's 5xx is its
// origin's.
type ShieldConfig struct {
	Config
	// Origin receives the requests when no parent is up, typically the
	// edge's Pool (or its router of pools). It is required. The Shield does
	// not close it.
	Origin http.RoundTripper
}

// Shield is an http.RoundTripper that sends each request through the shield
// tier: to the parent that is the home of its cache key, chosen by
// rendezvous hashing of the request URL among the parents that are up, so
// every edge sends an object's misses to the same parent and adding or
// removing one of N parents moves only about 1/N of the objects. When no
// parent is up it sends the request to its origin RoundTripper.
//
// A request to a parent keeps its Host header (the client's), path, query
// and headers, CDN-Loop and Cache-Status included; the URL's scheme and
// host become the parent's. Loop detection is the edge's.
//
// A Shield is safe for concurrent use. Its health checks run until Close.
type Shield struct {
	g *group
}

var _ http.RoundTripper = (*Shield)(nil)

// NewShield returns a Shield configured by cfg and starts its health checks.
// Its error names the first bad field of cfg; with no parents it is
// ErrNoServers.
func NewShield(cfg ShieldConfig) (*Shield, error) {
	if cfg.Name == "" {
		cfg.Name = "shield"
	}
	switch {
	case cfg.Origin == nil:
		return nil, errors.New("origin: shield: origin: required")
	case cfg.Balance != "" || cfg.HostHeader != "" || cfg.PathPrefix != "" || len(cfg.RequestHeaders.Add) > 0 || len(cfg.RequestHeaders.Remove) > 0:
		return nil, errors.New("origin: shield: balance, host header, path prefix and request headers are a pool's, not a shield's")
	}
	g, err := newGroup(groupConfig{
		name:       cfg.Name,
		field:      "parents",
		servers:    cfg.Origins,
		policy:     Rendezvous,
		pathless:   true,
		fallback:   cfg.Origin,
		health:     cfg.Health,
		ejection:   cfg.Ejection,
		tls:        cfg.TLS,
		timeouts:   cfg.Timeouts,
		maxIdle:    cfg.MaxIdleConnsPerServer,
		logger:     cfg.Logger,
		registerer: cfg.Registerer,
	})
	if err != nil {
		if err == ErrNoServers {
			return nil, err
		}
		return nil, fmt.Errorf("origin: shield: %w", err)
	}
	return &Shield{g: g}, nil
}

// RoundTrip sends req to its home parent, or, when that parent is down, to
// the next parent in its rendezvous order that is up, or, when none is, to
// the origin. req.URL is the cache URL; req is not modified.
//
// Whether a failure may be repeated follows Pool.RoundTrip's rules (a
// failed connection, or an idempotent request with no body or a small
// buffered one). Such a failure at the home parent is retried at the next
// parent that is up; a second one, or no other parent up, sends the request
// to the origin. An error before a response is an *Error: the parent's, or
// the origin's when the origin took the request.
func (sh *Shield) RoundTrip(req *http.Request) (*http.Response, error) {
	return sh.g.roundTrip(req)
}

// Servers returns a snapshot of the parents' health, in configuration order.
// The caller owns the slice.
func (sh *Shield) Servers() []ServerStatus { return sh.g.status() }

// Close stops the health checks and waits for them to end, removes the
// shield's metrics from the Registerer and closes idle connections to the
// parents. It does not close the origin. Requests in flight finish; later
// ones fail with ErrClosed. Close always returns nil.
func (sh *Shield) Close() error { return sh.g.close() }
