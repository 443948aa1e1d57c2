package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outpost-cdn/outpost/internal/httpurl"
)

// at is a configuration value with the line it came from, so validation,
// which knows the field's path, can name both.
type at[T any] struct {
	V    T
	Line int // 0: set by a flag or a default
}

func (a *at[T]) UnmarshalYAML(n *yaml.Node) error {
	a.Line = n.Line
	return n.Decode(&a.V)
}

// fileConfig is the YAML configuration file (DESIGN "Configuration file").
// Unknown fields are errors.
type fileConfig struct {
	Listen  at[string]    `yaml:"listen"`
	Admin   adminConfig   `yaml:"admin"`
	Name    at[string]    `yaml:"name"`
	Storage storageConfig `yaml:"storage"`
	Hosts   []hostConfig  `yaml:"hosts"`
	Parents []at[string]  `yaml:"parents"`
	// ParentHealth configures active checks of the parents (an extension).
	ParentHealth healthConfig `yaml:"parent_health"`
	Cache        cacheConfig  `yaml:"cache"`
	Log          logConfig    `yaml:"log"`
	Drain        at[string]   `yaml:"drain_timeout"`
	SendTimeout  at[string]   `yaml:"send_timeout"`
	PurgeBus     purgeBus     `yaml:"purge_bus"`
	// TLS serves the public listener over TLS (with HTTP/2).
	TLS listenerTLS `yaml:"tls"`
	// TrustedProxies are CIDRs (or addresses) of the peers whose
	// forwarding headers are kept (DESIGN "Privacy and request hygiene").
	TrustedProxies []at[string] `yaml:"trusted_proxies"`
	// Compression configures compression on the fly: "off", or options.
	Compression compressionConfig `yaml:"compression"`
	// HTTP3 serves HTTP/3 beside HTTPS when TLS is configured; unset
	// means true.
	HTTP3 at[bool] `yaml:"http3"`
	// Limits bound what a client may ask of the public listener.
	Limits limitsConfig `yaml:"limits"`
	// FastPath serves plain HTTP/1.1 GET and HEAD without net/http's
	// connection loop (fastpath.go); off by default.
	FastPath at[bool] `yaml:"fast_path"`
}

// limitsConfig bounds client requests and connections (an extension of
// the DESIGN file format, documented in the README).
type limitsConfig struct {
	MaxConnections at[int]    `yaml:"max_connections"`
	RequestLine    at[string] `yaml:"request_line"`
	HeaderBytes    at[string] `yaml:"header_bytes"`
	HeaderCount    at[int]    `yaml:"header_count"`
	HeaderTimeout  at[string] `yaml:"header_timeout"`
	BodyTimeout    at[string] `yaml:"body_timeout"`
	IdleTimeout    at[string] `yaml:"idle_timeout"`
	MaxRanges      at[int]    `yaml:"max_ranges"`
	MaxFills       at[int]    `yaml:"max_fills"`
	MaxWaiters     at[int]    `yaml:"max_waiters"`
}

// compressionConfig is `compression: off` (or on), or a mapping of options.
type compressionConfig struct {
	Line            int
	Off             bool
	Types           []at[string] `yaml:"types"`
	MinSize         at[string]   `yaml:"min_size"`
	Codings         []at[string] `yaml:"codings"`
	RecompressAfter at[int]      `yaml:"recompress_after"`
	MaxDecompressed at[string]   `yaml:"max_decompressed"`
}

func (c *compressionConfig) UnmarshalYAML(n *yaml.Node) error {
	c.Line = n.Line
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "off", "false":
			c.Off = true
			return nil
		case "on", "true":
			return nil
		}
		return fmt.Errorf("line %d: compression: want off, on or a mapping of options, not %q", n.Line, n.Value)
	}
	type plain compressionConfig
	return strictDecode(n, (*plain)(c))
}

type listenerTLS struct {
	Cert at[string] `yaml:"cert"`
	Key  at[string] `yaml:"key"`
	// Certificates are more pairs, offered after cert and key.
	Certificates   []certPair    `yaml:"certificates"`
	SessionTickets ticketsConfig `yaml:"session_tickets"`
}

type certPair struct {
	Cert at[string] `yaml:"cert"`
	Key  at[string] `yaml:"key"`
}

// ticketsConfig is tls.session_tickets (see ticketKeys).
type ticketsConfig struct {
	Line     int
	KeyFile  at[string] `yaml:"key_file"`
	Rotation at[string] `yaml:"rotation"`
	Lifetime at[string] `yaml:"lifetime"`
}

func (t *ticketsConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain ticketsConfig
	t.Line = n.Line
	return strictDecode(n, (*plain)(t))
}

type adminConfig struct {
	Listen    at[string] `yaml:"listen"`
	TokenFile at[string] `yaml:"token_file"`
	// PurgeMethod enables the PURGE method on the public listener
	// (token-guarded).
	PurgeMethod at[bool] `yaml:"purge_method"`
}

type storageConfig struct {
	Memory at[string] `yaml:"memory"`
	Disk   diskConfig `yaml:"disk"`
	// MaxObject bounds one object in memory.
	MaxObject at[string] `yaml:"max_object"`
	// MemoryArena is where the memory tier keeps bodies: mmap or heap.
	MemoryArena at[string] `yaml:"memory_arena"`
	// SliceSize and SliceThreshold control slicing of large objects.
	SliceSize      at[string] `yaml:"slice_size"`
	SliceThreshold at[string] `yaml:"slice_threshold"`
}

type diskConfig struct {
	Dir  at[string] `yaml:"dir"`
	Size at[string] `yaml:"size"`
	// MaxObject bounds one object on disk.
	MaxObject at[string] `yaml:"max_object"`
	// MinUses is how many requests an object needs before its disk copy
	// is written (1 or 2).
	MinUses at[int] `yaml:"min_uses"`
}

type hostConfig struct {
	Line       int
	Names      []at[string]   `yaml:"names"`
	Origins    []originEntry  `yaml:"origins"`
	Balance    at[string]     `yaml:"balance"`
	Health     healthConfig   `yaml:"health"`
	CacheKey   cacheKeyConfig `yaml:"cache_key"`
	HostHeader at[string]     `yaml:"host_header"`
	PathPrefix at[string]     `yaml:"path_prefix"`
	Headers    headersConfig  `yaml:"request_headers"`
	TLS        tlsConfig      `yaml:"tls"`
	Timeouts   timeoutsConfig `yaml:"timeouts"`
	Privacy    privacyConfig  `yaml:"privacy"`
	// Bucket makes the origins an S3-compatible bucket's endpoint; the
	// access blocks are the host's signed URLs, hotlink rules and rate
	// limits (extensions of the DESIGN file format; see access.go).
	Bucket     *bucketConfig     `yaml:"bucket"`
	SignedURLs *signedURLsConfig `yaml:"signed_urls"`
	Hotlink    *hotlinkConfig    `yaml:"hotlink"`
	RateLimit  *rateLimitConfig  `yaml:"rate_limit"`
}

// privacyConfig is a host's privacy policy (an extension of the DESIGN file
// format; edge.Privacy). Unknown fields are errors.
type privacyConfig struct {
	Line int
	// SetCookie is pass (not stored, the default) or strip (stored
	// without Set-Cookie); unset takes cache.set_cookie.
	SetCookie       at[string]   `yaml:"set_cookie"`
	CookieHeuristic at[bool]     `yaml:"cookie_heuristic"`
	DeceptionArmor  at[bool]     `yaml:"deception_armor"` // unset means true
	KeepHeaders     []at[string] `yaml:"keep_headers"`
}

func (p *privacyConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain privacyConfig
	p.Line = n.Line
	return strictDecode(n, (*plain)(p))
}

// timeoutsConfig bounds the phases of an exchange with an origin (an
// extension of the DESIGN file format).
type timeoutsConfig struct {
	Dial           at[string] `yaml:"dial"`
	TLSHandshake   at[string] `yaml:"tls_handshake"`
	ResponseHeader at[string] `yaml:"response_header"`
	IdleRead       at[string] `yaml:"idle_read"`
}

func (h *hostConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain hostConfig
	h.Line = n.Line
	return strictDecode(n, (*plain)(h))
}

// originEntry is an origin server: a URL, or {url, weight}.
type originEntry struct {
	URL    at[string]
	Weight at[int]
}

func (o *originEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return o.URL.UnmarshalYAML(n)
	}
	var v struct {
		URL    at[string] `yaml:"url"`
		Weight at[int]    `yaml:"weight"`
	}
	if err := strictDecode(n, &v); err != nil {
		return err
	}
	o.URL, o.Weight = v.URL, v.Weight
	if o.URL.Line == 0 {
		o.URL.Line = n.Line
	}
	return nil
}

type healthConfig struct {
	Path     at[string] `yaml:"path"`
	Host     at[string] `yaml:"host"`
	Interval at[string] `yaml:"interval"`
	Timeout  at[string] `yaml:"timeout"`
	Status   at[int]    `yaml:"status"`
	Fall     at[int]    `yaml:"fall"`
	Rise     at[int]    `yaml:"rise"`
}

type cacheKeyConfig struct {
	IgnoreQuery []at[string] `yaml:"ignore_query"`
	SortQuery   at[bool]     `yaml:"sort_query"`
}

type headersConfig struct {
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

type tlsConfig struct {
	CAFile             at[string] `yaml:"ca_file"`
	ServerName         at[string] `yaml:"server_name"`
	InsecureSkipVerify at[bool]   `yaml:"insecure_skip_verify"`
}

// cacheConfig holds node-wide caching policy (an extension of the
// DESIGN file format, documented in the README).
type cacheConfig struct {
	StaleWhileRevalidate at[string] `yaml:"stale_while_revalidate"`
	StaleIfError         at[string] `yaml:"stale_if_error"`
	IgnoreClientNoCache  at[bool]   `yaml:"ignore_client_no_cache"`
	// SetCookie is the default of hosts[].privacy.set_cookie.
	SetCookie at[string] `yaml:"set_cookie"`
	// PassSetCookie is the key set_cookie replaced, still accepted: true
	// is set_cookie: pass, false is set_cookie: strip.
	PassSetCookie      at[bool]   `yaml:"pass_set_cookie"`
	HeuristicMax       at[string] `yaml:"heuristic_max"`
	NegativeTTL        at[string] `yaml:"negative_ttl"`
	StaleIfUnreachable at[string] `yaml:"stale_if_unreachable"`
	MaxVariants        at[int]    `yaml:"max_variants"`
}

type logConfig struct {
	Format at[string] `yaml:"format"`
	Access at[bool]   `yaml:"access"`
	// AccessFile is where the access log goes (reopened on SIGUSR1);
	// empty: with the other logs, on standard error.
	AccessFile at[string] `yaml:"access_file"`
	// AccessFormat is text, json or combined; empty: log.format.
	AccessFormat at[string] `yaml:"access_format"`
}

type purgeBus struct {
	NATS   at[string] `yaml:"nats"`
	Stream at[string] `yaml:"stream"`
	// ReadyTimeout bounds how long /readyz waits for the replay of the
	// purges missed while down; zero waits however long it takes.
	ReadyTimeout at[string] `yaml:"ready_timeout"`
}

// configError is a bad configuration value: it names the field and, for
// the file, the line. cmd exits 2 on it.
type configError struct {
	Field string
	Line  int
	Msg   string
}

func (e *configError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("config: line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Msg)
}

func badField(field string, line int, format string, args ...any) error {
	return &configError{Field: field, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// loadConfigFile reads and strictly decodes a YAML configuration file.
func loadConfigFile(path string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{Field: "--config", Msg: err.Error()}
	}
	return parseConfig(b, path)
}

// parseConfig strictly decodes the YAML configuration b, read from path.
func parseConfig(b []byte, path string) (*fileConfig, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return nil, &configError{Field: "config file " + path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	return &fc, nil
}

// strictDecode decodes a mapping node into the struct v points to,
// rejecting keys v has no field for, as the file's top-level decoder does
// (yaml.v3 does not carry KnownFields into custom unmarshalers). Lines stay
// those of the file.
func strictDecode(n *yaml.Node, v any) error {
	if n.Kind == yaml.MappingNode {
		known := map[string]bool{}
		t := reflect.TypeOf(v).Elem()
		for i := range t.NumField() {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
				known[tag] = true
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !known[k.Value] {
				return fmt.Errorf("line %d: field %s not found", k.Line, k.Value)
			}
		}
	}
	return n.Decode(v)
}

// Validation helpers used by settings; each names the field.

func sizeField(field string, v at[string], def int64) (int64, error) {
	if v.V == "" {
		return def, nil
	}
	n, err := parseSize(v.V)
	if err != nil {
		return 0, badField(field, v.Line, "%v", err)
	}
	return n, nil
}

func durationField(field string, v at[string], def time.Duration) (time.Duration, error) {
	if v.V == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v.V)
	if err != nil || d < 0 {
		return 0, badField(field, v.Line, "bad duration %q (want e.g. 30s, 5m)", v.V)
	}
	return d, nil
}

func addrField(field string, v at[string]) (string, error) {
	if _, _, err := net.SplitHostPort(v.V); err != nil {
		return "", badField(field, v.Line, "bad address %q (want host:port or :port)", v.V)
	}
	return v.V, nil
}

func urlField(field string, v at[string]) (string, error) {
	u, err := httpurl.Parse(v.V)
	if err != nil {
		return "", badField(field, v.Line, "bad URL %q (want an absolute http:// or https:// URL)", v.V)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", badField(field, v.Line, "URL %q must not have a query, fragment or user info", v.V)
	}
	return v.V, nil
}
