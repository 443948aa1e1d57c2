package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"go.yaml.in/yaml/v3"

	"github.com/outpost-cdn/outpost/access"
	"github.com/outpost-cdn/outpost/origin"
)

// A host's bucket origin and access rules: the YAML blocks, their
// validation into settings, and what the node builds from them.

// bucketConfig is a host's bucket block: its origins are the endpoint of
// an S3-compatible bucket.
type bucketConfig struct {
	Line        int
	Name        at[string] `yaml:"name"`
	Region      at[string] `yaml:"region"`
	PathStyle   at[bool]   `yaml:"path_style"`
	NegativeTTL at[string] `yaml:"negative_ttl"`
	Profile     at[string] `yaml:"profile"`
	Anonymous   at[bool]   `yaml:"anonymous"`
}

type signedURLsConfig struct {
	Line     int
	KeyFiles []at[string] `yaml:"key_files"`
	Paths    []at[string] `yaml:"paths"`
}

type hotlinkConfig struct {
	Line       int
	Referers   []at[string] `yaml:"referers"`
	AllowEmpty at[bool]     `yaml:"allow_empty"`
}

type rateLimitConfig struct {
	Line       int
	Client     *limitConfig     `yaml:"client"`
	Prefix     *limitConfig     `yaml:"prefix"`
	LimitRate  *limitRateConfig `yaml:"limit_rate"`
	MaxClients at[int]          `yaml:"max_clients"`
}

type limitConfig struct {
	Line      int
	Requests  at[float64] `yaml:"requests"`
	Burst     at[int]     `yaml:"burst"`
	Bandwidth at[string]  `yaml:"bandwidth"`
}

type limitRateConfig struct {
	Line  int
	After at[string] `yaml:"after"`
	Rate  at[string] `yaml:"rate"`
}

// Each block rejects unknown keys, as the file's top level does.

func (c *bucketConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain bucketConfig
	c.Line = n.Line
	return strictDecode(n, (*plain)(c))
}

func (c *signedURLsConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain signedURLsConfig
	c.Line = n.Line
	return strictDecode(n, (*plain)(c))
}

func (c *hotlinkConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain hotlinkConfig
	c.Line = n.Line
	return strictDecode(n, (*plain)(c))
}

func (c *rateLimitConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain rateLimitConfig
	c.Line = n.Line
	return strictDecode(n, (*plain)(c))
}

func (c *limitConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain limitConfig
	c.Line = n.Line
	return strictDecode(n, (*plain)(c))
}

func (c *limitRateConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain limitRateConfig
	c.Line = n.Line
	return strictDecode(n, (*plain)(c))
}

// bucketSettings is a resolved bucket block.
type bucketSettings struct {
	name, region, profile string
	pathStyle, anonymous  bool
	negativeTTL           time.Duration // 0: the default; -1: off
}

// resolveBucket validates a host's bucket block; field names its keys.
func resolveBucket(field func(string) string, c *bucketConfig) (*bucketSettings, error) {
	bs := &bucketSettings{
		name: c.Name.V, region: c.Region.V, profile: c.Profile.V,
		pathStyle: c.PathStyle.V, anonymous: c.Anonymous.V,
	}
	if bs.name == "" {
		return nil, badField(field("bucket.name"), c.Line, "missing")
	}
	if bs.anonymous && bs.profile != "" {
		return nil, badField(field("bucket.profile"), c.Profile.Line, "set, but bucket.anonymous sends requests unsigned")
	}
	if c.NegativeTTL.V == "off" {
		bs.negativeTTL = -1
	} else {
		var err error
		if bs.negativeTTL, err = durationField(field("bucket.negative_ttl"), c.NegativeTTL, 0); err != nil {
			return nil, err
		}
		if bs.negativeTTL > 0 && bs.negativeTTL < time.Second {
			return nil, badField(field("bucket.negative_ttl"), c.NegativeTTL.Line, "%v is under a second (or off)", bs.negativeTTL)
		}
	}
	// origin.New checks the rest (the name's characters, the region);
	// it is asked now so the error names the line.
	p, err := origin.New(origin.Config{Origins: []origin.Server{{URL: "https://s3.example.com"}}, Bucket: &origin.Bucket{Name: bs.name, Region: bs.region}})
	if err != nil {
		return nil, badField(field("bucket"), c.Line, "%s", strings.TrimPrefix(err.Error(), "origin: "))
	}
	p.Close()
	return bs, nil
}

// defaultEndpoint is AWS S3's endpoint for a region, the origin of a
// bucket host that lists none.
func defaultEndpoint(region string) string {
	if region == "" {
		region = "us-east-1"
	}
	return "https://s3." + region + ".amazonaws.com"
}

// resolveAccess validates a host's signed_urls, hotlink and rate_limit
// blocks into an access.Config (without Host, TrustedProxies and
// Metrics, which the node adds). Key files are read here.
func resolveAccess(field func(string) string, h *hostConfig) (access.Config, error) {
	var ac access.Config
	if c := h.SignedURLs; c != nil {
		if len(c.KeyFiles) == 0 {
			return ac, badField(field("signed_urls.key_files"), c.Line, "missing: one key file, or two while rotating")
		}
		if len(c.KeyFiles) > 2 {
			return ac, badField(field("signed_urls.key_files"), c.KeyFiles[2].Line, "at most two (the current key and the one it replaces)")
		}
		for j, kf := range c.KeyFiles {
			key, err := readKeyFile(kf.V)
			if err != nil {
				return ac, badField(fmt.Sprintf("%s[%d]", field("signed_urls.key_files"), j), kf.Line, "%v", err)
			}
			ac.SignedURLs.Keys = append(ac.SignedURLs.Keys, key)
		}
		for j, p := range c.Paths {
			if !strings.HasPrefix(p.V, "/") {
				return ac, badField(fmt.Sprintf("%s[%d]", field("signed_urls.paths"), j), p.Line, "%q must start with /", p.V)
			}
			ac.SignedURLs.Paths = append(ac.SignedURLs.Paths, p.V)
		}
	}
	if c := h.Hotlink; c != nil {
		if len(c.Referers) == 0 {
			return ac, badField(field("hotlink.referers"), c.Line, "missing: the sites allowed to embed this host's objects")
		}
		for j, r := range c.Referers {
			ac.Hotlink.Referers = append(ac.Hotlink.Referers, r.V)
			if _, err := access.New(access.Config{Hotlink: access.Hotlink{Referers: []string{r.V}}}); err != nil {
				return ac, badField(fmt.Sprintf("%s[%d]", field("hotlink.referers"), j), r.Line, "%q: want a host name (example.com, *.example.com), optionally with a path prefix", r.V)
			}
		}
		ac.Hotlink.DenyEmpty = c.AllowEmpty.Line > 0 && !c.AllowEmpty.V
	}
	if c := h.RateLimit; c != nil {
		var err error
		if ac.RateLimit.Client, err = resolveLimit(field("rate_limit.client"), c.Client); err != nil {
			return ac, err
		}
		if ac.RateLimit.Prefix, err = resolveLimit(field("rate_limit.prefix"), c.Prefix); err != nil {
			return ac, err
		}
		if lr := c.LimitRate; lr != nil {
			f := field("rate_limit.limit_rate")
			if ac.RateLimit.LimitRate.After, err = sizeField(f+".after", lr.After, 0); err != nil {
				return ac, err
			}
			if ac.RateLimit.LimitRate.Rate, err = sizeField(f+".rate", lr.Rate, 0); err != nil {
				return ac, err
			}
			if ac.RateLimit.LimitRate.Rate == 0 {
				return ac, badField(f+".rate", lr.Line, "missing: the cap in bytes per second (e.g. 1MiB)")
			}
		}
		if c.MaxClients.V < 0 || c.MaxClients.Line > 0 && c.MaxClients.V == 0 {
			return ac, badField(field("rate_limit.max_clients"), c.MaxClients.Line, "%d: want a positive number of clients", c.MaxClients.V)
		}
		ac.RateLimit.MaxClients = c.MaxClients.V
		rl := ac.RateLimit
		if !(rl.Client.Requests > 0 || rl.Client.Bandwidth > 0 || rl.Prefix.Requests > 0 || rl.Prefix.Bandwidth > 0 || rl.LimitRate.Rate > 0) {
			return ac, badField(field("rate_limit"), c.Line, "no limit set (client, prefix or limit_rate)")
		}
	}
	if _, err := access.New(ac); err != nil {
		return ac, badField(field(strings.SplitN(err.Error(), ":", 2)[0]), h.Line, "%v", err)
	}
	return ac, nil
}

// resolveLimit validates a client or prefix block.
func resolveLimit(field string, c *limitConfig) (access.Limit, error) {
	var l access.Limit
	if c == nil {
		return l, nil
	}
	if r := c.Requests.V; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return l, badField(field+".requests", c.Requests.Line, "%v: want a rate per second, e.g. 20 or 0.5", r)
	}
	if c.Burst.V < 0 {
		return l, badField(field+".burst", c.Burst.Line, "%d is negative", c.Burst.V)
	}
	if c.Burst.V > 0 && c.Requests.V == 0 {
		return l, badField(field+".burst", c.Burst.Line, "set without %s.requests", field)
	}
	var err error
	if l.Bandwidth, err = sizeField(field+".bandwidth", c.Bandwidth, 0); err != nil {
		return l, err
	}
	l.Requests, l.Burst = c.Requests.V, c.Burst.V
	if l.Requests == 0 && l.Bandwidth == 0 {
		return l, badField(field, c.Line, "neither requests nor bandwidth is set")
	}
	return l, nil
}

// readKeyFile reads a signing key: the file's contents without surrounding
// white space, at least 16 bytes.
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < 16 {
		return nil, fmt.Errorf("%s: key of %d bytes, want at least 16 (e.g. openssl rand -base64 32)", path, len(key))
	}
	return key, nil
}

// bucketOrigin is the origin.Bucket of a host's bucket settings, with
// credentials from the AWS SDK's standard chain (environment, shared
// config and credentials files, the profile named, container and
// instance roles), resolved when a request needs them.
func bucketOrigin(bs *bucketSettings) (*origin.Bucket, error) {
	b := &origin.Bucket{Name: bs.name, Region: bs.region, PathStyle: bs.pathStyle, NegativeTTL: bs.negativeTTL}
	if bs.anonymous {
		return b, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cmpOr(bs.region, "us-east-1"))}
	if bs.profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(bs.profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: AWS configuration: %w", bs.name, err)
	}
	b.Credentials = cfg.Credentials
	if b.Credentials == nil {
		b.Credentials = aws.AnonymousCredentials{}
	}
	return b, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// hostAccess builds the Gate of host entry i from its settings, and the
// cache key's ignored parameters with the token's added when signed URLs
// are on. A reload builds the Gates anew with the host set (reload.go).
func (n *node) hostAccess(hs *hostSettings) (*access.Gate, []string, error) {
	p, err := n.accessPolicy(hs)
	if err != nil {
		return nil, nil, err
	}
	ignore := hs.ignoreQuery
	if len(hs.access.SignedURLs.Keys) > 0 {
		ignore = slices.Clone(ignore)
		for _, name := range access.TokenParams() {
			if !slices.Contains(ignore, name) {
				ignore = append(ignore, name)
			}
		}
	}
	return access.NewGate(p), ignore, nil
}

// accessPolicy is the Policy of a host's settings: what a reload builds
// and stores in the host's Gate.
func (n *node) accessPolicy(hs *hostSettings) (*access.Policy, error) {
	cfg := hs.access
	cfg.Host = "*"
	if len(hs.names) > 0 {
		cfg.Host = hs.names[0]
	}
	cfg.TrustedProxies, cfg.Metrics = n.s.trustedProxies, n.access
	return access.New(cfg)
}
