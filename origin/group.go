package origin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// group is what a Pool and a Shield share: a set of servers with their
// health, the policy that picks among them, the transport that reaches them,
// the loop that checks them and the metrics that show them.
type group struct {
	name     string
	servers  []*server
	hashes   []uint64 // servers[i].hash, contiguous for rendezvous picks
	policy   Policy
	schedule []uint32 // weighted schedule of server indexes
	uniform  bool     // all weights equal
	next     atomic.Uint64
	rand     func() uint64 // safe for concurrent use

	rewrite  rewriter
	bucket   *bucket           // signs requests to a bucket; nil for HTTP servers
	fallback http.RoundTripper // a Shield's origin; nil for a Pool
	// statusFailures makes 502, 503 and 504 responses count as failures:
	// true for origins, false for parents, whose 5xx are their origin's.
	statusFailures bool
	ejection       Ejection
	idleRead       time.Duration

	transport      *http.Transport
	checkTransport *http.Transport // no keep-alive: each check connects anew
	stopChecks     context.CancelFunc
	checks         sync.WaitGroup

	epoch     time.Time // zero of the group clock, which is monotonic
	log       *slog.Logger
	registry  prometheus.Registerer
	collector prometheus.Collector
	retries   retryStats
	fallbacks atomic.Uint64
	allDown   atomic.Bool // no server was available at the last pick
	closed    atomic.Bool
}

// groupConfig is the part of Config and ShieldConfig that a group takes,
// with the name of the server list for error messages.
type groupConfig struct {
	name           string
	field          string // "origins" or "parents"
	pathless       bool   // server URLs must not have a path
	servers        []Server
	policy         Policy
	prefix         string
	rewrite        rewriter
	bucket         *bucket
	fallback       http.RoundTripper
	statusFailures bool
	health         HealthCheck
	ejection       Ejection
	tls            TLS
	timeouts       Timeouts
	maxIdle        int
	logger         *slog.Logger
	registerer     prometheus.Registerer
	rand           func() uint64
}

// newGroup validates gc, fills its defaults and starts the health checks.
// Its errors name the bad field.
func newGroup(gc groupConfig) (*group, error) {
	if len(gc.servers) == 0 {
		return nil, ErrNoServers
	}
	var err error
	if gc.health, err = gc.health.withDefaults(); err != nil {
		return nil, err
	}
	if gc.ejection, err = gc.ejection.withDefaults(); err != nil {
		return nil, err
	}
	if gc.timeouts, err = gc.timeouts.withDefaults(); err != nil {
		return nil, err
	}
	if gc.maxIdle < 0 {
		return nil, fmt.Errorf("max_idle_conns_per_server %d: must not be negative", gc.maxIdle)
	}
	setDefault(&gc.maxIdle, 128)
	prefix, err := parsePrefix(gc.prefix)
	if err != nil {
		return nil, err
	}
	g := &group{
		name:           gc.name,
		policy:         gc.policy,
		rand:           gc.rand,
		rewrite:        gc.rewrite,
		bucket:         gc.bucket,
		fallback:       gc.fallback,
		statusFailures: gc.statusFailures,
		ejection:       gc.ejection,
		idleRead:       gc.timeouts.IdleRead,
		epoch:          time.Now(),
		log:            gc.logger,
		registry:       gc.registerer,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("pool", g.name)
	seen := make(map[string]int)
	weights := make([]int64, 0, len(gc.servers))
	for i, sc := range gc.servers {
		s, err := newServer(sc, prefix)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", gc.field, i, err)
		}
		if gc.pathless && s.path != "" {
			return nil, fmt.Errorf("%s[%d]: url %q: must not have a path", gc.field, i, sc.URL)
		}
		if j, dup := seen[s.addr()]; dup {
			return nil, fmt.Errorf("%s[%d]: %s is %s[%d] again", gc.field, i, s.name, gc.field, j)
		}
		seen[s.addr()] = i
		g.servers = append(g.servers, s)
		g.hashes = append(g.hashes, s.hash)
		weights = append(weights, s.weight)
	}
	g.schedule = newSchedule(weights)
	g.uniform = len(g.schedule) == len(g.servers)
	tlsByAddr, err := gc.tls.configs(g.servers)
	if err != nil {
		return nil, err
	}
	if gc.tls.InsecureSkipVerify && len(tlsByAddr) > 0 {
		g.log.Warn("tls.insecure_skip_verify is set: server certificates are not verified")
	}
	g.transport = newTransport(gc.timeouts, gc.maxIdle, tlsByAddr)
	g.checkTransport = g.transport.Clone()
	g.checkTransport.DisableKeepAlives = true
	if g.registry != nil {
		g.collector = newCollector(g)
		if err := g.registry.Register(g.collector); err != nil {
			return nil, fmt.Errorf("register metrics of pool %q: %w", g.name, err)
		}
	}
	g.startChecks(gc.health)
	return g, nil
}

// parsePrefix validates a path prefix: "" or an absolute path, kept without
// its trailing slash.
func parsePrefix(prefix string) (*url.URL, error) {
	if prefix == "" || prefix == "/" {
		return nil, nil
	}
	u, err := url.Parse(prefix)
	if err != nil || !strings.HasPrefix(prefix, "/") || u.Host != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("path_prefix %q: must be an absolute path without query", prefix)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

// now reads the group clock: monotonic time since the group was made.
func (g *group) now() int64 { return int64(time.Since(g.epoch)) }

// clock reads the group clock at most once for one pick. Only ejected servers
// need the time, so a pick among healthy servers does not read it.
type clock struct {
	epoch time.Time
	t     int64
	read  bool
}

func (c *clock) now() int64 {
	if !c.read {
		c.t, c.read = int64(time.Since(c.epoch)), true
	}
	return c.t
}

// status returns a snapshot of the servers' health.
func (g *group) status() []ServerStatus {
	c := clock{epoch: g.epoch}
	out := make([]ServerStatus, len(g.servers))
	for i, s := range g.servers {
		st := ServerStatus{
			URL:       s.name,
			Weight:    int(s.weight),
			Up:        s.available(&c),
			CheckDown: s.checkDown.Load(),
			InFlight:  s.inflight.Load(),
			Requests:  s.requests.Load(),
			Failures:  s.failures.Load(),
			Ejections: s.ejections.Load(),
		}
		if until := s.ejectedUntil.Load(); until > c.now() {
			st.EjectedUntil = g.epoch.Add(time.Duration(until))
		}
		if last := s.lastFailure.Load(); last != 0 {
			st.LastFailure = g.epoch.Add(time.Duration(last - 1))
		}
		out[i] = st
	}
	return out
}

// close stops the health checks and waits for them, forgets the metrics and
// closes idle connections. Requests in flight finish.
func (g *group) close() error {
	if !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	if g.stopChecks != nil {
		g.stopChecks()
	}
	g.checks.Wait()
	if g.collector != nil {
		g.registry.Unregister(g.collector)
	}
	g.transport.CloseIdleConnections()
	g.checkTransport.CloseIdleConnections()
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
