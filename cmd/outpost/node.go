package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/access"
	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/internal/httpguard"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/purge"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// node is one running Outpost: storage, origins, purges, the edge handler
// and the public and admin listeners, wired from settings. Only cmd builds
// one.
type node struct {
	s   *settings
	log *slog.Logger
	reg *prometheus.Registry

	mem      *storage.Memory
	disk     *storage.Disk // nil without --cache-dir
	store    storage.Tier
	bans     *purge.Index
	bus      *purge.Bus   // nil without purge_bus
	purger   purge.Purger // bus, else bans: where purges issued here go
	purgeAPI *purge.Handler
	edge     *edge.Handler
	warmer   *warmer
	access   *access.Metrics
	public   *http.Server
	admin    *http.Server
	publicLn net.Listener
	fast     *fastServer // fast_path: serves publicLn's plain HTTP/1.1 hits (fastpath.go); nil: off
	adminLn  net.Listener
	tls      *publicTLS // nil: the public listener is plain HTTP

	ready    atomic.Bool
	started  time.Time   // when run began serving
	busLate  atomic.Bool // logged: ready without the bus's replay
	draining atomic.Bool
	closers  []func() error // run in reverse order at the end

	ops ops // what changes while running and what shows it: reload, status, logs, HTTP/3 (ops.go)
}

// newNode builds a node and binds its listeners, so a bad address fails
// before anything is served.
func newNode(s *settings, log *slog.Logger) (_ *node, err error) {
	n := &node{s: s, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			n.close() // n, not the nil every error path returns
		}
	}()
	token, err := s.adminToken()
	if err != nil {
		return nil, err
	}
	n.ops.token.Store(&token)
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := n.buildStorage(); err != nil {
		return nil, err
	}
	n.registerStorageGauges()
	if n.access, err = access.NewMetrics(n.reg); err != nil {
		return nil, err
	}
	hosts, err := n.buildHosts(s)
	if err != nil {
		return nil, err
	}
	n.ops.hosts.Store(hosts) // replaced by reloads (reload.go)
	n.closers = append(n.closers, n.closeHosts)

	// The purge index canonicalises URLs as the edge does; the edge asks
	// the index about every object it looks up. Canonicalize is only called
	// for purges, which arrive once the listeners are up, after eh is set.
	var eh *edge.Handler
	dir := ""
	if s.cacheDir != "" {
		dir = s.cacheDir
	}
	n.bans, err = purge.New(purge.Config{
		Canonicalize: func(raw string) (string, error) { return eh.CanonicalURL(raw) },
		Tier:         n.store,
		Dir:          dir,
		Registerer:   n.reg,
		Logger:       log,
	})
	if err != nil {
		return nil, err // already "purge: ..."
	}
	n.closers = append(n.closers, n.bans.Close)
	n.purger = n.bans
	if s.busURL != "" {
		n.bus, err = purge.NewBus(purge.BusConfig{
			URL:        s.busURL,
			Stream:     s.busStream,
			Node:       s.name,
			Index:      n.bans,
			Logger:     log,
			Registerer: n.reg,
		})
		if err != nil {
			return nil, err
		}
		n.closers = append(n.closers, n.bus.Close) // closed before the index
		n.purger = n.bus
	}

	eh, err = edge.New(edge.Config{
		Name:                 s.name,
		Store:                n.store,
		Hosts:                hosts.hosts,
		Bans:                 nodeBans{Index: n.bans, n: n},
		Tags:                 purge.ParseTags,
		Logger:               log,
		Registerer:           n.reg,
		StaleWhileRevalidate: s.cache.swr,
		StaleIfError:         s.cache.sie,
		HeuristicMax:         s.cache.heuristicMax,
		NegativeTTL:          s.cache.negativeTTL,
		StaleIfUnreachable:   s.cache.staleUnreachable,
		SliceSize:            s.sliceSize,
		SliceThreshold:       s.sliceThresh,
		IgnoreClientNoCache:  s.cache.ignoreClientNoCache,
		Compression:          s.compression,
		TrustedProxies:       s.trustedProxies,
		MaxVariants:          s.cache.maxVariants,
		MaxRanges:            s.limits.maxRanges,
		MaxFills:             s.limits.maxFills,
		MaxWaiters:           s.limits.maxWaiters,
	})
	if err != nil {
		return nil, err
	}
	n.edge = eh
	n.closers = append(n.closers, n.edge.Close)
	n.warmer = newWarmer(n.edge, log)
	n.closers = append(n.closers, n.warmer.Close)

	if n.purgeAPI, err = purge.NewHandler(purge.HandlerConfig{Purger: n.purger, Logger: log}); err != nil {
		return nil, err
	}
	var public http.Handler = n.edge
	if s.purgeMethod {
		public = n.purgeMethod(public)
	} else {
		public = refusePurge(public)
	}
	if public, err = n.observe(public); err != nil { // status page, access log (ops.go)
		return nil, err
	}
	guard, err := httpguard.New(httpguard.Config{
		MaxRequestLine: s.limits.requestLine,
		MaxHeaderBytes: s.limits.headerBytes,
		MaxHeaderCount: s.limits.headerCount,
		BodyTimeout:    s.limits.bodyTimeout,
		Registerer:     n.reg,
	})
	if err != nil {
		return nil, err
	}
	n.public = &http.Server{
		Handler:           guard.Handler(recoverPanics(log, n.reg, public)),
		ConnContext:       guard.ConnContext,
		ReadHeaderTimeout: s.limits.headerTimeout,
		IdleTimeout:       s.limits.idleTimeout,
		MaxHeaderBytes:    guard.MaxHead() + 4<<10, // the guard answers first, with its status and metric
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if s.tlsCert != nil {
		// Session tickets and HTTP/2 with its guard (tls.go), then
		// certificates by SNI, reloaded, and HTTP/3 (certs.go, http3.go).
		// The TLS listener (listener.go) does the handshakes with this
		// configuration, ALPN h2 and http/1.1.
		if n.tls, err = newPublicTLS(s, n.public, log); err != nil {
			return nil, err
		}
		if err := n.setupTLS(); err != nil {
			return nil, err
		}
	}
	n.admin = &http.Server{
		Handler:           n.adminMux(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if n.publicLn, err = net.Listen("tcp", s.listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n.publicLn = n.publicListener(n.publicLn, guard)
	if s.fastPath {
		// The fast path takes the connections; net/http serves those it
		// hands off, through a listener of its own.
		n.fast = newFastServer(n.publicLn, n.public, guard.MaxHead()+4<<10, log)
		n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "outpost_fast_path_requests_total",
			Help: "Requests answered on the fast path (fast_path: true).",
		}, func() float64 { return float64(n.fast.served.Load()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "outpost_fast_path_handoffs_total",
			Help: "Connections the fast path handed to net/http (a request it does not take).",
		}, func() float64 { return float64(n.fast.handoffs.Load()) }))
		n.public.ConnContext = guardConnContext(guard.ConnContext)
		n.publicLn = n.fast.handoff
	}
	if n.adminLn, err = net.Listen("tcp", s.admin); err != nil {
		n.publicLn.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := n.bindHTTP3(); err != nil { // the public port, over UDP (http3.go)
		n.publicLn.Close()
		n.adminLn.Close()
		return nil, err
	}
	return n, nil
}

// publicListener wraps the bound public listener: send timeout, the
// connection limit, then TLS handshakes or the framing guard (listener.go).
func (n *node) publicListener(ln net.Listener, guard *httpguard.Guard) net.Listener {
	if n.s.sendTimeout > 0 {
		timeouts := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_http_send_timeouts_total",
			Help: "Responses abandoned because the client took none of a write for send_timeout.",
		})
		n.reg.MustRegister(timeouts)
		ln = sendTimeoutListener{ln, n.s.sendTimeout, timeouts}
	}
	tlsCfg := n.public.TLSConfig
	ln = newConnLimit(ln, n.s.limits.maxConns, tlsCfg == nil, n.reg)
	if tlsCfg != nil {
		// A copy: Serve writes to the server's own when it sets up HTTP/2.
		return newTLSListener(ln, tlsCfg.Clone(), guard, n.s.limits.headerTimeout, n.log)
	}
	return guard.Listener(ln)
}

// buildStorage makes the memory tier and, with a cache directory, the disk
// tier behind it.
func (n *node) buildStorage() error {
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: n.s.memory, MaxObjectSize: n.s.maxObject, Arena: n.s.memoryArena})
	if err != nil {
		return badField("storage.memory", 0, "%v", err)
	}
	n.mem, n.store = mem, mem
	n.closers = append(n.closers, mem.Close)
	if n.s.cacheDir == "" {
		return nil
	}
	disk, err := storage.NewDisk(storage.DiskConfig{Dir: n.s.cacheDir, MaxBytes: n.s.disk, MaxObjectSize: n.s.diskMaxObj, Logger: n.log, Registerer: n.reg})
	if err != nil {
		return err // already "disk tier: ..."
	}
	n.disk = disk
	n.closers = append(n.closers, disk.Close)
	tiered, err := storage.NewTiered(mem, disk, storage.TieredConfig{Logger: n.log, Registerer: n.reg, DiskMinUses: n.s.diskMinUses})
	if err != nil {
		return err
	}
	n.closers = append(n.closers, tiered.Close)
	n.store = tiered
	return nil
}

// buildHosts makes one origin pool per host entry of s, plus the catch-all
// pool of --origin; with parents, each pool is reached through the shield
// tier. A reload builds a new set beside the running one (reload.go).
func (n *node) buildHosts(s *settings) (_ *hostSet, err error) {
	set := newHostSet(n)
	defer func() {
		if err != nil {
			set.close()
		}
	}()
	for i, hs := range s.hosts {
		cfg, err := n.poolConfig(i, &hs)
		if err != nil {
			return nil, err
		}
		if hs.bucket != nil {
			if cfg.Bucket, err = bucketOrigin(hs.bucket); err != nil {
				return nil, fmt.Errorf("hosts[%d]: %w", i, err)
			}
		}
		rt, err := n.upstream(s, set, cfg)
		if err != nil {
			return nil, fmt.Errorf("hosts[%d]: %w", i, err)
		}
		gate, ignore, err := n.hostAccess(&hs)
		if err != nil {
			return nil, fmt.Errorf("hosts[%d]: %w", i, err)
		}
		set.gates = append(set.gates, gate)
		set.hosts = append(set.hosts, edge.Host{
			Names:     hs.names,
			Transport: rt,
			Key:       edge.KeyConfig{SortQuery: hs.sortQuery, IgnoreQuery: ignore},
			Privacy:   s.hostPrivacy(&hs),
			Admit:     gate.Admit,
		})
	}
	if len(s.origins) > 0 {
		rt, err := n.upstream(s, set, origin.Config{Name: "default", Origins: servers(s.origins, nil)})
		if err != nil {
			return nil, fmt.Errorf("--origin: %w", err)
		}
		gate := access.NewGate(nil) // no rules
		set.gates = append(set.gates, gate)
		set.hosts = append(set.hosts, edge.Host{Transport: rt, Privacy: s.hostPrivacy(&hostSettings{}), Admit: gate.Admit})
	}
	return set, nil
}

// hostPrivacy is a host entry's privacy policy: its privacy block, the
// node's cache.set_cookie where the block sets none, and Cookie stripped
// by the edge itself when request_headers.remove names it, so that no tier
// (a shield included) sees it and responses to such requests are judged
// like any other.
func (s *settings) hostPrivacy(hs *hostSettings) edge.Privacy {
	p := edge.Privacy{
		HeuristicWithCookie: hs.privacy.cookieHeuristic,
		StoreTypeMismatch:   hs.privacy.storeTypeMismatch,
		KeepHeaders:         hs.privacy.keepHeaders,
	}
	sc := hs.privacy.setCookie
	if sc == "" {
		sc = s.cache.setCookie
	}
	if sc == "strip" {
		p.SetCookie = edge.SetCookieStrip
	}
	for _, h := range hs.delHeaders {
		if strings.EqualFold(strings.TrimSpace(h), "Cookie") {
			p.StripCookie = true
		}
	}
	return p
}

// poolConfig maps a host entry of the configuration to an origin pool.
func (n *node) poolConfig(i int, hs *hostSettings) (origin.Config, error) {
	cfg := origin.Config{
		Name:           fmt.Sprintf("hosts[%d]", i),
		Origins:        servers(hs.origins, hs.weights),
		Balance:        origin.Policy(hs.balance),
		Health:         healthCheck(&hs.health),
		HostHeader:     origin.HostHeader(hs.hostHeader),
		PathPrefix:     hs.pathPrefix,
		RequestHeaders: origin.HeaderRules{Add: hs.addHeaders, Remove: hs.delHeaders},
		TLS:            origin.TLS{ServerName: hs.serverName, InsecureSkipVerify: hs.insecure},
		Timeouts: origin.Timeouts{
			Dial: hs.timeouts.dial, TLSHandshake: hs.timeouts.tlsHandshake,
			ResponseHeader: hs.timeouts.responseHeader, IdleRead: hs.timeouts.idleRead,
		},
	}
	if len(hs.names) > 0 {
		cfg.Name = hs.names[0]
	}
	if hs.caFile != "" {
		ca, err := os.ReadFile(hs.caFile)
		if err != nil {
			return cfg, badField(fmt.Sprintf("hosts[%d].tls.ca_file", i), 0, "%v", err)
		}
		cfg.TLS.CA = ca
	}
	return cfg, nil
}

// upstream builds the pool for cfg and, when s has parents, the shield in
// front of it, into set, whose registry takes their metrics.
func (n *node) upstream(s *settings, set *hostSet, cfg origin.Config) (http.RoundTripper, error) {
	cfg.Logger, cfg.Registerer = n.log, set.reg
	pool, err := origin.New(cfg)
	if err != nil {
		return nil, err
	}
	set.closers = append(set.closers, pool.Close)
	set.pools = append(set.pools, namedPool{cfg.Name, pool})
	if len(s.parents) == 0 {
		return set.meter(pool), nil
	}
	shield, err := origin.NewShield(origin.ShieldConfig{
		Config: origin.Config{
			Name:       "shield:" + cfg.Name,
			Origins:    servers(s.parents, nil),
			Health:     healthCheck(&s.parentHealth),
			Logger:     n.log,
			Registerer: set.reg,
		},
		Origin: pool,
	})
	if err != nil {
		return nil, fmt.Errorf("parents: %w", err)
	}
	set.closers = append(set.closers, shield.Close)
	return set.meter(shield), nil
}

// namedPool is a pool with the name it has in metrics, for the status page.
type namedPool struct {
	name string
	pool *origin.Pool
}

func servers(urls []string, weights []int) []origin.Server {
	out := make([]origin.Server, len(urls))
	for i, u := range urls {
		out[i].URL = u
		if i < len(weights) {
			out[i].Weight = weights[i]
		}
	}
	return out
}

func healthCheck(h *healthSettings) origin.HealthCheck {
	return origin.HealthCheck{
		Path: h.path, Host: h.host, Interval: h.interval, Timeout: h.timeout,
		Status: h.status, Fall: h.fall, Rise: h.rise,
	}
}

// adminMux serves the admin API (DESIGN "Admin API"). With a token, every
// endpoint but /healthz and /readyz requires it.
func (n *node) adminMux() http.Handler {
	guarded := http.NewServeMux()
	guarded.Handle("/purge", n.purgeAPI)
	guarded.Handle("/warm", n.warmer)
	guarded.Handle("GET /metrics", promhttp.HandlerFor(n.gatherer(), promhttp.HandlerOpts{Registry: n.reg}))
	n.opsRoutes(guarded)                                 // GET /status, /status.json, POST /reload (ops.go)
	guarded.HandleFunc("GET /debug/pprof/", pprof.Index) // profiles, for operators chasing CPU or memory
	guarded.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	guarded.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	rest := n.requireToken(guarded, false) // the token of the last reload
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.isReady() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("/", rest)
	return mux
}

// isReady: listeners up, the disk index loaded, the purges the node
// missed while down replayed from the bus, not draining.
func (n *node) isReady() bool {
	if !n.ready.Load() || n.draining.Load() {
		return false
	}
	if n.disk != nil {
		select {
		case <-n.disk.Ready():
		default:
			return false
		}
	}
	return n.replay() != replayPending
}

// replayState is where a node is in replaying, from the fleet's bus, the
// purges it missed while down.
type replayState int

const (
	replayNone    replayState = iota // no bus
	replayDone                       // caught up
	replayPending                    // under way: the cache is not used
	replayLate                       // not done, but past purge_bus.ready_timeout: the cache is used
)

// replay reports where the node is in replaying the purges it missed.
// While it is pending, the node serves nothing from its cache (the edge
// fetches through, see nodeBans) and is not ready.
func (n *node) replay() replayState {
	if n.bus == nil {
		return replayNone
	}
	select {
	case <-n.bus.Ready():
		return replayDone
	default:
	}
	// purge_bus.ready_timeout: the operator prefers serving from the cache
	// to waiting for a bus that may be down; purges issued meanwhile are
	// applied when the replay arrives.
	if w := n.s.busReadyWait; w == 0 || !n.ready.Load() || time.Since(n.started) < w {
		return replayPending
	}
	if !n.busLate.Swap(true) {
		n.log.Warn("purge bus: purges missed while down not replayed yet; ready, and serving from the cache, anyway (purge_bus.ready_timeout)", "waited", n.s.busReadyWait)
	}
	return replayLate
}

// nodeBans is the purge index as the edge sees it: it also says when the
// purges the node missed are still being replayed, so that the edge
// answers nothing from storage that they may ban (edge.Bans, Replaying).
type nodeBans struct {
	*purge.Index
	n *node
}

// Replaying reports whether the replay is pending.
func (b nodeBans) Replaying() bool { return b.n.replay() == replayPending }

// publicAddr and adminAddr are the bound addresses (useful with port 0).
func (n *node) publicAddr() string { return n.publicLn.Addr().String() }
func (n *node) adminAddr() string  { return n.adminLn.Addr().String() }

// run serves until ctx is done, then stops gracefully: /readyz turns 503,
// the public listener stops accepting, in-flight responses get the drain
// timeout to finish, and everything is closed.
func (n *node) run(ctx context.Context) error {
	errc := make(chan error, 3)
	// With TLS the listener does the handshakes (publicListener); Serve
	// serves HTTP/2 on the *tls.Conn of clients that chose h2.
	go func() { errc <- ignoreClosed(n.public.Serve(n.publicLn)) }()
	if n.fast != nil {
		go func() { errc <- n.fast.serve() }() // nil once shut down
	}
	go func() { errc <- ignoreClosed(n.admin.Serve(n.adminLn)) }()
	n.started = time.Now()
	n.ready.Store(true)
	n.startOps() // sampler, certificate watcher, HTTP/3 (ops.go)
	n.log.Info("serving", "listen", n.publicAddr(), "tls", n.tls != nil, "admin", n.adminAddr(), "name", n.s.name)
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		if n.disk != nil {
			select { // the sweeper walks the disk once its index is loaded
			case <-n.disk.Ready():
			case <-sweepCtx.Done():
				return
			}
		}
		n.bans.Run(sweepCtx)
	}()
	ticketsDone := make(chan struct{})
	go func() {
		defer close(ticketsDone)
		n.tls.run(sweepCtx) // session ticket keys: rotation and key file changes
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("listener: %w", err)
	}
	n.draining.Store(true)
	n.log.Info("stopping", "drain_timeout", n.s.drain)
	dctx, cancel := context.WithTimeout(context.Background(), n.s.drain)
	defer cancel()
	if n.fast != nil {
		if serr := n.fast.shutdown(dctx); serr != nil {
			n.log.Warn("fast path: drain timed out; closing connections", "err", serr)
		}
	}
	if serr := n.public.Shutdown(dctx); serr != nil {
		n.log.Warn("drain timed out; closing connections", "err", serr)
		n.public.Close()
	}
	n.stopOps(dctx)
	actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer acancel()
	n.admin.Shutdown(actx)
	stopSweep()
	<-sweepDone
	<-ticketsDone
	n.close()
	n.log.Info("stopped")
	return err
}

// ignoreClosed maps the error Serve returns after Shutdown to nil.
func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// close releases everything the node built, newest first.
func (n *node) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](); err != nil {
			n.log.Warn("close", "err", err)
		}
	}
	n.closers = nil
}
