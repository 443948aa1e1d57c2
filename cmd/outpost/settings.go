package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/access"
	"github.com/outpost-cdn/outpost/edge"
	"github.com/outpost-cdn/outpost/origin"
	"github.com/outpost-cdn/outpost/storage"
)

// settings is the resolved configuration of a node: defaults, then the
// file, then flags.
type settings struct {
	listen       string
	admin        string
	name         string
	origins      []string // catch-all pool (--origin)
	parents      []string
	parentHealth healthSettings
	memory       int64
	maxObject    int64
	memoryArena  storage.Arena
	sliceSize    int64
	sliceThresh  int64  // -1: slicing off
	busURL       string // purge_bus.nats; empty: no fleet bus
	busStream    string
	busReadyWait time.Duration    // purge_bus.ready_timeout; 0: wait for the replay
	tlsCert      *tls.Certificate // the public listener's; nil: plain HTTP
	tlsFiles     []certFiles      // every pair's files, tlsCert's first (certs.go)
	http3        bool             // HTTP/3 beside HTTPS (http3.go)
	tickets      ticketSettings   // tls.session_tickets (tickets.go)
	sendTimeout  time.Duration    // send_timeout: each write to a client must progress within it; 0: none
	fastPath     bool             // fast_path: plain HTTP/1.1 GET and HEAD served by fastpath.go
	cacheDir     string
	diskMinUses  int // storage.disk.min_uses; 0: the default
	disk         int64
	diskMaxObj   int64 // storage.disk.max_object; 0: the disk tier's default
	limits       limitSettings
	logFormat    string
	accessLog    bool
	accessFile   string // log.access_file; empty: standard error
	accessFormat string // text, json or combined
	drain        time.Duration
	tokenFile    string
	purgeMethod  bool
	hosts        []hostSettings
	cache        cachePolicy
	compression  edge.CompressionConfig
	// trustedProxies are the peers whose forwarding headers are kept
	// (trusted_proxies).
	trustedProxies []netip.Prefix
}

type hostSettings struct {
	names       []string
	origins     []string
	weights     []int
	balance     string
	hostHeader  string
	pathPrefix  string
	ignoreQuery []string
	sortQuery   bool
	health      healthSettings
	addHeaders  map[string]string
	delHeaders  []string
	caFile      string
	serverName  string
	insecure    bool
	timeouts    timeoutSettings
	privacy     privacySettings
	bucket      *bucketSettings // nil: HTTP origins
	access      access.Config   // signed URLs, hotlink rules, rate limits (access.go)
}

// privacySettings is a host's privacy block, resolved.
type privacySettings struct {
	setCookie         string // pass | strip | "" (cache.set_cookie)
	cookieHeuristic   bool
	storeTypeMismatch bool // deception_armor: false
	keepHeaders       []string
}

type timeoutSettings struct {
	dial, tlsHandshake, responseHeader, idleRead time.Duration
}

type healthSettings struct {
	path, host        string
	interval, timeout time.Duration
	status            int
	fall, rise        int
}

type cachePolicy struct {
	swr, sie            time.Duration
	heuristicMax        time.Duration
	negativeTTL         time.Duration
	staleUnreachable    time.Duration // -1: off
	ignoreClientNoCache bool
	setCookie           string // pass (default) | strip: hosts without their own
	maxVariants         int    // 0: the edge's default
}

// limitSettings bound client requests and connections (limits:).
type limitSettings struct {
	maxConns      int64
	requestLine   int
	headerBytes   int
	headerCount   int
	headerTimeout time.Duration
	bodyTimeout   time.Duration
	idleTimeout   time.Duration
	maxRanges     int
	maxFills      int // 0: the edge's default
	maxWaiters    int // 0: the edge's default
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// serveFlags are the flags of `outpost serve` (DESIGN "Command line").
type serveFlags struct {
	fs        *flag.FlagSet
	config    string
	listen    string
	admin     string
	origins   listFlag
	parents   listFlag
	memory    string
	cacheDir  string
	disk      string
	name      string
	logFormat string
	accessLog bool
	drain     time.Duration
	tlsCert   string
	tlsKey    string
}

func newServeFlags(name string, stderr io.Writer) *serveFlags {
	f := &serveFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "YAML configuration `file`")
	fs.StringVar(&f.listen, "listen", ":8080", "public HTTP listener `address`")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:9091", "admin listener `address`")
	fs.Var(&f.origins, "origin", "origin `URL` serving every host (repeatable: one pool)")
	fs.Var(&f.parents, "parent", "shield tier `URL` (repeatable)")
	fs.StringVar(&f.memory, "memory", "256MiB", "memory tier budget")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "disk tier `directory` (enables the disk tier)")
	fs.StringVar(&f.disk, "disk", "10GiB", "disk tier budget")
	fs.StringVar(&f.name, "name", "outpost", "node identity in Cache-Status and CDN-Loop")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&f.accessLog, "access-log", false, "log every request")
	fs.DurationVar(&f.drain, "drain-timeout", 30*time.Second, "how long a stop waits for in-flight responses")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate `file` (chain) for the public listener: serves HTTPS and HTTP/2")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	return f
}

// resolve merges defaults, the configuration file and the flags the user
// set (flags win), validating every value and naming the bad one.
func (f *serveFlags) resolve() (*settings, error) {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	fc := &fileConfig{}
	if f.config != "" {
		var err error
		if fc, err = loadConfigFile(f.config); err != nil {
			return nil, err
		}
	}
	return f.resolveConfig(fc, set)
}

// resolveConfig is resolve with the file decoded; set names the flags the
// user set.
func (f *serveFlags) resolveConfig(fc *fileConfig, set map[string]bool) (*settings, error) {
	// pick returns the flag's value when the user set it, else the file's,
	// else the flag's default.
	pick := func(flagName, flagVal string, file at[string], field string) (at[string], string) {
		if set[flagName] || file.V == "" {
			return at[string]{V: flagVal}, "--" + flagName
		}
		return file, field
	}
	s := &settings{drain: f.drain, accessLog: f.accessLog || fc.Log.Access.V, tokenFile: fc.Admin.TokenFile.V, purgeMethod: fc.Admin.PurgeMethod.V}
	var err error
	v, field := pick("listen", f.listen, fc.Listen, "listen")
	if s.listen, err = addrField(field, v); err != nil {
		return nil, err
	}
	v, field = pick("admin", f.admin, fc.Admin.Listen, "admin.listen")
	if s.admin, err = addrField(field, v); err != nil {
		return nil, err
	}
	v, field = pick("name", f.name, fc.Name, "name")
	if err := edge.CheckName(v.V); err != nil {
		return nil, badField(field, v.Line, "%v", err)
	}
	s.name = v.V
	v, field = pick("memory", f.memory, fc.Storage.Memory, "storage.memory")
	if s.memory, err = sizeField(field, v, 0); err != nil {
		return nil, err
	}
	if s.memory < 1<<20 {
		return nil, badField(field, v.Line, "memory tier of %d bytes is below the 1MiB minimum", s.memory)
	}
	if s.maxObject, err = sizeField("storage.max_object", fc.Storage.MaxObject, 0); err != nil {
		return nil, err
	}
	if s.memoryArena, err = storage.ParseArena(fc.Storage.MemoryArena.V); err != nil {
		return nil, badField("storage.memory_arena", fc.Storage.MemoryArena.Line, "%v", err)
	}
	if s.sliceSize, err = sizeField("storage.slice_size", fc.Storage.SliceSize, 0); err != nil {
		return nil, err
	}
	if err := edge.CheckSliceSize(s.sliceSize); err != nil {
		return nil, badField("storage.slice_size", fc.Storage.SliceSize.Line, "%s: %v", fc.Storage.SliceSize.V, err)
	}
	if fc.Storage.SliceThreshold.V == "off" {
		s.sliceThresh = -1
	} else if s.sliceThresh, err = sizeField("storage.slice_threshold", fc.Storage.SliceThreshold, 0); err != nil {
		return nil, err
	}
	v, _ = pick("cache-dir", f.cacheDir, fc.Storage.Disk.Dir, "storage.disk.dir")
	s.cacheDir = v.V
	if mu := fc.Storage.Disk.MinUses; mu.V != 0 && mu.V != 1 && mu.V != 2 {
		return nil, badField("storage.disk.min_uses", mu.Line, "%d: want 1 or 2", mu.V)
	}
	s.diskMinUses = fc.Storage.Disk.MinUses.V
	v, field = pick("disk", f.disk, fc.Storage.Disk.Size, "storage.disk.size")
	if s.disk, err = sizeField(field, v, 0); err != nil {
		return nil, err
	}
	if s.diskMaxObj, err = sizeField("storage.disk.max_object", fc.Storage.Disk.MaxObject, 0); err != nil {
		return nil, err
	}
	v, field = pick("log-format", f.logFormat, fc.Log.Format, "log.format")
	if v.V != "text" && v.V != "json" {
		return nil, badField(field, v.Line, "bad log format %q (want text or json)", v.V)
	}
	s.logFormat = v.V
	if !set["drain-timeout"] && fc.Drain.V != "" {
		if s.drain, err = durationField("drain_timeout", fc.Drain, 0); err != nil {
			return nil, err
		}
	}
	if s.sendTimeout, err = durationField("send_timeout", fc.SendTimeout, 60*time.Second); err != nil {
		return nil, err
	}
	if s.cache, err = resolveCache(&fc.Cache); err != nil {
		return nil, err
	}
	if s.trustedProxies, err = resolveTrustedProxies(fc.TrustedProxies); err != nil {
		return nil, err
	}
	if s.compression, err = resolveCompression(&fc.Compression); err != nil {
		return nil, err
	}
	if s.limits, err = resolveLimits(&fc.Limits); err != nil {
		return nil, err
	}
	if err := s.resolveBus(&fc.PurgeBus, set["name"] || fc.Name.V != ""); err != nil {
		return nil, err
	}
	if err := s.resolveTLS(f, set, &fc.TLS); err != nil {
		return nil, err
	}
	s.fastPath = fc.FastPath.V
	if err := s.resolveTickets(&fc.TLS.SessionTickets); err != nil { // tickets.go
		return nil, err
	}
	if err := s.resolveOps(fc); err != nil { // access log, HTTP/3 (ops.go)
		return nil, err
	}
	// Origins: --origin replaces the file's catch-all; parents likewise.
	for _, o := range f.origins {
		u, err := urlField("--origin", at[string]{V: o})
		if err != nil {
			return nil, err
		}
		s.origins = append(s.origins, u)
	}
	if set["parent"] {
		for _, p := range f.parents {
			u, err := urlField("--parent", at[string]{V: p})
			if err != nil {
				return nil, err
			}
			s.parents = append(s.parents, u)
		}
	} else {
		for i, p := range fc.Parents {
			u, err := urlField(fmt.Sprintf("parents[%d]", i), p)
			if err != nil {
				return nil, err
			}
			s.parents = append(s.parents, u)
		}
	}
	if s.parentHealth, err = resolveHealth("parent_health", &fc.ParentHealth); err != nil {
		return nil, err
	}
	for i := range fc.Hosts {
		hs, err := resolveHost(i, &fc.Hosts[i])
		if err != nil {
			return nil, err
		}
		if len(hs.names) == 0 && len(s.origins) > 0 {
			continue // --origin replaces the file's catch-all entry
		}
		s.hosts = append(s.hosts, hs)
	}
	if len(s.origins) == 0 && len(s.hosts) == 0 {
		return nil, badField("--origin", 0, "no origin: give --origin URL or hosts in --config")
	}
	if !isLoopback(s.admin) && os.Getenv(tokenEnv) == "" && s.tokenFile == "" {
		return nil, badField("admin.listen", fc.Admin.Listen.Line,
			"admin listener %s is not on a loopback address and no admin token is set (OUTPOST_ADMIN_TOKEN or admin.token_file)", s.admin)
	}
	return s, nil
}

// resolveHealth validates a health check block named field.
func resolveHealth(field string, hl *healthConfig) (healthSettings, error) {
	var hs healthSettings
	var err error
	hs.path, hs.host = hl.Path.V, hl.Host.V
	if hs.interval, err = durationField(field+".interval", hl.Interval, 0); err != nil {
		return hs, err
	}
	if hs.timeout, err = durationField(field+".timeout", hl.Timeout, 0); err != nil {
		return hs, err
	}
	hs.status, hs.fall, hs.rise = hl.Status.V, hl.Fall.V, hl.Rise.V
	// The rules are the origin package's; this only points at the line.
	var fe *origin.FieldError
	if err := healthCheck(&hs).Validate(); errors.As(err, &fe) {
		line := map[string]int{"health.path": hl.Path.Line, "health.host": hl.Host.Line, "health.interval": hl.Interval.Line,
			"health.timeout": hl.Timeout.Line, "health.status": hl.Status.Line, "health.fall": hl.Fall.Line, "health.rise": hl.Rise.Line}[fe.Field]
		return hs, badField(field+strings.TrimPrefix(fe.Field, "health"), line, "%s", fe.Reason)
	} else if err != nil {
		return hs, badField(field, 0, "%v", err)
	}
	return hs, nil
}

// resolveCompression reads the compression block; edge validates the
// values (CompressionConfig.Validate) and this names the field and line.
func resolveCompression(c *compressionConfig) (edge.CompressionConfig, error) {
	cc := edge.CompressionConfig{Off: c.Off, RecompressAfter: c.RecompressAfter.V}
	var err error
	if cc.MinSize, err = sizeField("compression.min_size", c.MinSize, 0); err != nil {
		return cc, err
	}
	if cc.MaxDecompressed, err = sizeField("compression.max_decompressed", c.MaxDecompressed, 0); err != nil {
		return cc, err
	}
	for _, t := range c.Types {
		cc.Types = append(cc.Types, t.V)
		if err := (edge.CompressionConfig{Types: []string{t.V}}).Validate(); err != nil {
			return cc, badField("compression.types", t.Line, "%v", errors.Unwrap(err))
		}
	}
	for _, n := range c.Codings {
		cc.Codings = append(cc.Codings, n.V)
		if err := (edge.CompressionConfig{Codings: []string{n.V}}).Validate(); err != nil {
			return cc, badField("compression.codings", n.Line, "%v", errors.Unwrap(err))
		}
	}
	if err := cc.Validate(); err != nil {
		return cc, badField("compression", c.Line, "%v", err)
	}
	return cc, nil
}

func resolveCache(c *cacheConfig) (cachePolicy, error) {
	var p cachePolicy
	var err error
	if p.swr, err = durationField("cache.stale_while_revalidate", c.StaleWhileRevalidate, 0); err != nil {
		return p, err
	}
	if p.sie, err = durationField("cache.stale_if_error", c.StaleIfError, 0); err != nil {
		return p, err
	}
	if p.heuristicMax, err = durationField("cache.heuristic_max", c.HeuristicMax, 0); err != nil {
		return p, err
	}
	if p.negativeTTL, err = durationField("cache.negative_ttl", c.NegativeTTL, 0); err != nil {
		return p, err
	}
	if c.StaleIfUnreachable.V == "off" {
		p.staleUnreachable = -1
	} else if p.staleUnreachable, err = durationField("cache.stale_if_unreachable", c.StaleIfUnreachable, 0); err != nil {
		return p, err
	}
	p.ignoreClientNoCache = c.IgnoreClientNoCache.V
	p.setCookie = "pass"
	switch {
	case c.SetCookie.V != "" && c.PassSetCookie.Line > 0:
		return p, badField("cache.pass_set_cookie", c.PassSetCookie.Line, "replaced by cache.set_cookie, which is also set: keep one")
	case c.SetCookie.V != "":
		if p.setCookie, err = setCookieField("cache.set_cookie", c.SetCookie); err != nil {
			return p, err
		}
	case c.PassSetCookie.Line > 0 && !c.PassSetCookie.V:
		// The old key's false meant "store responses that set cookies";
		// the nearest behaviour that never hands a cookie to another
		// client is to store them without it.
		p.setCookie = "strip"
	}
	if p.maxVariants = c.MaxVariants.V; p.maxVariants < 0 {
		return p, badField("cache.max_variants", c.MaxVariants.Line, "%d is negative", p.maxVariants)
	}
	return p, nil
}

// setCookieField validates a set_cookie value.
func setCookieField(field string, v at[string]) (string, error) {
	switch v.V {
	case "pass", "strip":
		return v.V, nil
	}
	return "", badField(field, v.Line, "want pass or strip, not %q", v.V)
}

// resolvePrivacy validates a host's privacy block.
func resolvePrivacy(field string, c *privacyConfig) (privacySettings, error) {
	var ps privacySettings
	if c.SetCookie.V != "" {
		var err error
		if ps.setCookie, err = setCookieField(field+".set_cookie", c.SetCookie); err != nil {
			return ps, err
		}
	}
	ps.cookieHeuristic = c.CookieHeuristic.V
	ps.storeTypeMismatch = c.DeceptionArmor.Line > 0 && !c.DeceptionArmor.V
	for j, k := range c.KeepHeaders {
		name := http.CanonicalHeaderKey(strings.TrimSpace(k.V))
		if !slices.Contains(edge.OverrideHeaders(), name) {
			return ps, badField(fmt.Sprintf("%s.keep_headers[%d]", field, j), k.Line,
				"%q is not an override header (one of %s)", k.V, strings.Join(edge.OverrideHeaders(), ", "))
		}
		ps.keepHeaders = append(ps.keepHeaders, name)
	}
	return ps, nil
}

// resolveTrustedProxies parses trusted_proxies: CIDRs, or addresses
// meaning a prefix of their own length.
func resolveTrustedProxies(list []at[string]) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, v := range list {
		s := strings.TrimSpace(v.V)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, badField(fmt.Sprintf("trusted_proxies[%d]", i), v.Line, "bad CIDR or address %q (want e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)", v.V)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil

}

// Default limits (README "Limits"): nginx's and Apache's where they have
// one.
const (
	defaultMaxConns      = 16384
	defaultRequestLine   = 8 << 10
	defaultHeaderBytes   = 32 << 10
	defaultHeaderCount   = 100
	defaultHeaderTimeout = 10 * time.Second
	defaultBodyTimeout   = 60 * time.Second
	defaultIdleTimeout   = 120 * time.Second
	defaultMaxRanges     = 32
)

func resolveLimits(c *limitsConfig) (limitSettings, error) {
	l := limitSettings{maxConns: int64(c.MaxConnections.V), headerCount: c.HeaderCount.V, maxRanges: c.MaxRanges.V,
		maxFills: c.MaxFills.V, maxWaiters: c.MaxWaiters.V}
	for _, v := range []struct {
		field string
		v     at[int]
	}{{"limits.max_connections", c.MaxConnections}, {"limits.header_count", c.HeaderCount}, {"limits.max_ranges", c.MaxRanges},
		{"limits.max_fills", c.MaxFills}, {"limits.max_waiters", c.MaxWaiters}} {
		if v.v.V < 0 {
			return l, badField(v.field, v.v.Line, "%d is negative", v.v.V)
		}
	}
	for _, v := range []struct {
		field string
		v     at[string]
		def   int64
		dst   *int
	}{{"limits.request_line", c.RequestLine, defaultRequestLine, &l.requestLine}, {"limits.header_bytes", c.HeaderBytes, defaultHeaderBytes, &l.headerBytes}} {
		n, err := sizeField(v.field, v.v, v.def)
		if err != nil {
			return l, err
		}
		if n < 256 || n > 1<<20 {
			return l, badField(v.field, v.v.Line, "%s is outside 256B..1MiB", v.v.V)
		}
		*v.dst = int(n)
	}
	if l.requestLine+2 > l.headerBytes {
		return l, badField("limits.request_line", c.RequestLine.Line, "request line of %d bytes does not fit in limits.header_bytes (%d)", l.requestLine, l.headerBytes)
	}
	var err error
	for _, d := range []struct {
		field string
		v     at[string]
		def   time.Duration
		dst   *time.Duration
	}{
		{"limits.header_timeout", c.HeaderTimeout, defaultHeaderTimeout, &l.headerTimeout},
		{"limits.body_timeout", c.BodyTimeout, defaultBodyTimeout, &l.bodyTimeout},
		{"limits.idle_timeout", c.IdleTimeout, defaultIdleTimeout, &l.idleTimeout},
	} {
		if *d.dst, err = durationField(d.field, d.v, d.def); err != nil {
			return l, err
		}
	}
	if l.headerTimeout == 0 {
		return l, badField("limits.header_timeout", c.HeaderTimeout.Line, "0s would let a client hold a connection without sending a request")
	}
	setDefault(&l.maxConns, defaultMaxConns)
	setDefault(&l.headerCount, defaultHeaderCount)
	setDefault(&l.maxRanges, defaultMaxRanges)
	return l, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func resolveHost(i int, h *hostConfig) (hostSettings, error) {
	field := func(name string) string { return fmt.Sprintf("hosts[%d].%s", i, name) }
	var hs hostSettings
	for j, n := range h.Names {
		name := strings.ToLower(strings.TrimSpace(n.V))
		if name == "" || strings.ContainsAny(name, "/: ") || strings.Contains(name[1:], "*") ||
			(strings.HasPrefix(name, "*") && !strings.HasPrefix(name, "*.")) {
			return hs, badField(fmt.Sprintf("hosts[%d].names[%d]", i, j), n.Line, "bad host name %q (want a name like static.example.com or *.example.com)", n.V)
		}
		hs.names = append(hs.names, name)
	}
	origins := h.Origins
	if h.Bucket != nil {
		var err error
		if hs.bucket, err = resolveBucket(field, h.Bucket); err != nil {
			return hs, err
		}
		if h.HostHeader.V == "client" {
			return hs, badField(field("host_header"), h.HostHeader.Line, "client: a bucket is addressed by its own host name (leave host_header out)")
		}
		if len(origins) == 0 {
			// AWS S3's own endpoint for the bucket's region.
			origins = []originEntry{{URL: at[string]{V: defaultEndpoint(hs.bucket.region), Line: h.Bucket.Line}}}
		}
	}
	if len(origins) == 0 {
		return hs, badField(field("origins"), h.Line, "no origins for this host")
	}
	for j, o := range origins {
		u, err := urlField(fmt.Sprintf("hosts[%d].origins[%d]", i, j), o.URL)
		if err != nil {
			return hs, err
		}
		if o.Weight.V < 0 {
			return hs, badField(fmt.Sprintf("hosts[%d].origins[%d].weight", i, j), o.Weight.Line, "weight %d is negative", o.Weight.V)
		}
		hs.origins = append(hs.origins, u)
		hs.weights = append(hs.weights, o.Weight.V)
	}
	if hs.balance = h.Balance.V; hs.balance != "" && !origin.Policy(hs.balance).Valid() {
		return hs, badField(field("balance"), h.Balance.Line, "unknown policy %q (want %s, %s or %s)", h.Balance.V, origin.RoundRobin, origin.LeastRequests, origin.Rendezvous)
	}
	switch h.HostHeader.V {
	case "", "client", "origin":
		hs.hostHeader = h.HostHeader.V
	default:
		return hs, badField(field("host_header"), h.HostHeader.Line, "want client or origin, not %q", h.HostHeader.V)
	}
	if p := h.PathPrefix.V; p != "" && !strings.HasPrefix(p, "/") {
		return hs, badField(field("path_prefix"), h.PathPrefix.Line, "%q must start with /", p)
	}
	hs.pathPrefix = h.PathPrefix.V
	for _, q := range h.CacheKey.IgnoreQuery {
		if q.V == "" || strings.Contains(strings.TrimSuffix(q.V, "*"), "*") {
			return hs, badField(field("cache_key.ignore_query"), q.Line, "bad parameter pattern %q (a name, optionally ending in *)", q.V)
		}
		hs.ignoreQuery = append(hs.ignoreQuery, q.V)
	}
	hs.sortQuery = h.CacheKey.SortQuery.V
	var err error
	if hs.health, err = resolveHealth(fmt.Sprintf("hosts[%d].health", i), &h.Health); err != nil {
		return hs, err
	}
	t := &h.Timeouts
	for _, d := range []struct {
		name string
		v    at[string]
		dst  *time.Duration
	}{
		{"timeouts.dial", t.Dial, &hs.timeouts.dial},
		{"timeouts.tls_handshake", t.TLSHandshake, &hs.timeouts.tlsHandshake},
		{"timeouts.response_header", t.ResponseHeader, &hs.timeouts.responseHeader},
		{"timeouts.idle_read", t.IdleRead, &hs.timeouts.idleRead},
	} {
		if *d.dst, err = durationField(field(d.name), d.v, 0); err != nil {
			return hs, err
		}
	}
	if hs.privacy, err = resolvePrivacy(field("privacy"), &h.Privacy); err != nil {
		return hs, err
	}
	if hs.access, err = resolveAccess(field, h); err != nil {
		return hs, err
	}
	hs.addHeaders, hs.delHeaders = h.Headers.Add, h.Headers.Remove
	hs.caFile, hs.serverName, hs.insecure = h.TLS.CAFile.V, h.TLS.ServerName.V, h.TLS.InsecureSkipVerify.V
	return hs, nil
}

// isLoopback reports whether a listen address binds only loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tokenEnv names the environment variable holding the admin token.
const tokenEnv = "OUTPOST_ADMIN_TOKEN"

// adminToken returns the admin token: OUTPOST_ADMIN_TOKEN, else the
// contents of admin.token_file, else none.
func (s *settings) adminToken() (string, error) {
	if t := os.Getenv(tokenEnv); t != "" {
		return t, nil
	}
	if s.tokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return "", badField("admin.token_file", 0, "%v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", badField("admin.token_file", 0, "%s is empty", s.tokenFile)
	}
	return t, nil
}

// resolveBus validates purge_bus. The bus names each node's durable
// consumer after the node, so a node on a bus must be given a name of its
// own: two nodes left at the default would share a consumer and each miss
// the purges the other received.
func (s *settings) resolveBus(b *purgeBus, named bool) error {
	if b.NATS.V == "" {
		if b.Stream.V != "" {
			return badField("purge_bus.nats", b.Stream.Line, "missing (purge_bus.stream is set)")
		}
		return nil
	}
	for _, u := range strings.Split(b.NATS.V, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Host == "" || (pu.Scheme != "nats" && pu.Scheme != "tls" && pu.Scheme != "ws" && pu.Scheme != "wss") {
			return badField("purge_bus.nats", b.NATS.Line, "bad NATS URL %q (want nats://host:4222, several comma-separated)", redactURL(u))
		}
	}
	if st := b.Stream.V; len(st) > 255 || strings.ContainsAny(st, ".*>/\\ \t\r\n") {
		return badField("purge_bus.stream", b.Stream.Line, "bad stream name %q (no dots, spaces, slashes, * or >)", st)
	}
	if !named {
		return badField("purge_bus.nats", b.NATS.Line, "a node on the purge bus needs a name unique in the fleet (set name or --name)")
	}
	var err error
	if s.busReadyWait, err = durationField("purge_bus.ready_timeout", b.ReadyTimeout, 0); err != nil {
		return err
	}
	s.busURL, s.busStream = b.NATS.V, b.Stream.V
	return nil
}

// redactURL drops the credentials from a URL for an error message.
func redactURL(raw string) string {
	pu, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "(unparseable)"
	}
	if pu.User != nil {
		pu.User = url.User("redacted")
	}
	return pu.String()
}

// resolveTLS loads the public listener's certificate from --tls-cert and
// --tls-key, or tls.cert and tls.key: both or neither.
func (s *settings) resolveTLS(f *serveFlags, set map[string]bool, t *listenerTLS) error {
	cert, certField := t.Cert, "tls.cert"
	if set["tls-cert"] {
		cert, certField = at[string]{V: f.tlsCert}, "--tls-cert"
	}
	key, keyField := t.Key, "tls.key"
	if set["tls-key"] {
		key, keyField = at[string]{V: f.tlsKey}, "--tls-key"
	}
	switch {
	case cert.V == "" && key.V == "" && len(t.Certificates) > 0 && !set["tls-cert"] && !set["tls-key"]:
		return s.resolveMoreCerts(t.Certificates) // certs.go
	case cert.V == "" && key.V == "":
		return nil
	case cert.V == "":
		if set["tls-key"] {
			certField = "--tls-cert"
		}
		return badField(certField, key.Line, "missing (%s is set)", keyField)
	case key.V == "":
		if set["tls-cert"] {
			keyField = "--tls-key"
		}
		return badField(keyField, cert.Line, "missing (%s is set)", certField)
	}
	pair, err := tls.LoadX509KeyPair(cert.V, key.V)
	if err != nil {
		return badField(certField, cert.Line, "%v", err)
	}
	s.tlsCert = &pair
	s.tlsFiles = []certFiles{{cert: cert.V, key: key.V}}
	if set["tls-cert"] || set["tls-key"] {
		return nil // the flags replace the file's pairs
	}
	return s.resolveMoreCerts(t.Certificates)
}
