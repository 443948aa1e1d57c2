package access

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Config is one host's access rules. Each rule is off at its zero value.
type Config struct {
	// Host names the host in metrics (the host label). Empty means "*".
	Host string
	// SignedURLs requires a valid signed-URL token.
	SignedURLs SignedURLs
	// Hotlink requires an allowed Referer.
	Hotlink Hotlink
	// RateLimit limits each client's requests and bandwidth.
	RateLimit RateLimit
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (ClientAddr). Nil trusts none: the client is the peer.
	TrustedProxies []netip.Prefix
	// Metrics receives the counts. Nil counts into a Metrics of its own
	// that nothing exports.
	Metrics *Metrics
	// Now is the clock signed-URL expiry is checked against. Nil means
	// time.Now. Rate limits run on time.Now.
	Now func() time.Time
}

// Policy applies one host's access rules to requests. It is immutable once
// built but for its tables of clients, and safe for concurrent use.
type Policy struct {
	host    string
	signed  *verifier // nil: off
	hotlink *hotlink  // nil: off
	limits  *limiter  // nil: off
	trusted []netip.Prefix
	now     func() time.Time // nil: the time the request is admitted at
	m       hostMetrics
}

// New returns the Policy of cfg, or an error naming the bad field (e.g.
// "signed_urls: keys[1]: 8 bytes, want at least 16").
func New(cfg Config) (*Policy, error) {
	if cfg.Host == "" {
		cfg.Host = "*"
	}
	p := &Policy{host: cfg.Host, now: cfg.Now, trusted: append([]netip.Prefix(nil), cfg.TrustedProxies...)}
	var err error
	if len(cfg.SignedURLs.Keys) > 0 {
		if p.signed, err = newVerifier(cfg.SignedURLs); err != nil {
			return nil, err
		}
	} else if len(cfg.SignedURLs.Paths) > 0 {
		return nil, fmt.Errorf("signed_urls: paths are set but no keys")
	}
	if len(cfg.Hotlink.Referers) > 0 {
		if p.hotlink, err = newHotlink(cfg.Hotlink); err != nil {
			return nil, err
		}
	} else if cfg.Hotlink.DenyEmpty {
		return nil, fmt.Errorf("hotlink: an empty Referer is refused but no referers are allowed")
	}
	if p.limits, err = newLimiter(cfg.RateLimit); err != nil {
		return nil, err
	}
	m := cfg.Metrics
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	p.m = m.forHost(p.host)
	if p.limits != nil {
		for _, t := range []struct {
			name string
			t    *table
		}{{"client", p.limits.client}, {"prefix", p.limits.prefix}} {
			if t.t != nil {
				t.t.evicted = m.evictions.WithLabelValues(p.host, t.name)
			}
		}
	}
	m.track(p)
	return p, nil
}

// Enabled reports whether any rule is on.
func (p *Policy) Enabled() bool {
	return p != nil && (p.signed != nil || p.hotlink != nil || p.limits != nil)
}

// Admit applies the rules to r, in order: rate limits (429 with
// Retry-After), hotlink rules (403), signed URL (403). A refused request is
// answered here, and Admit returns false. An admitted one returns true and
// the writer to answer through: w itself, or, when a bandwidth rule
// applies, w wrapped to pace the body. Admit has the shape of
// edge.Host.Admit.
func (p *Policy) Admit(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
	var client netip.Addr
	clientRead := false
	clientAddr := func() netip.Addr {
		if !clientRead {
			client, clientRead = ClientAddr(r, p.trusted), true
		}
		return client
	}
	var now time.Time // read once: the clock is not free on every machine
	if p.limits != nil || p.signed != nil {
		now = time.Now()
	}
	var b buckets
	if p.limits != nil {
		reason, retry, bk := p.limits.admit(now, clientAddr())
		if reason != "" {
			p.m.rateDenied[reason].Inc()
			tooMany(w, retry)
			return w, false
		}
		p.m.rateOK.Inc()
		b = bk
	}
	if p.hotlink != nil {
		if reason := p.hotlink.check(r.Header["Referer"]); reason != "" {
			p.m.hotlinkDenied[reason].Inc()
			forbid(w)
			return w, false
		}
		p.m.hotlinkOK.Inc()
	}
	if p.signed != nil {
		path := r.URL.EscapedPath()
		if p.signed.protects(path) {
			if p.now != nil {
				now = p.now()
			}
			if reason := p.signed.verify(path, r.URL.RawQuery, now, clientAddr); reason != "" {
				p.m.signedDenied[reason].Inc()
				forbid(w)
				return w, false
			}
			p.m.signedOK.Inc()
		}
	}
	if p.limits == nil || !p.limits.paced || r.Method == http.MethodHead {
		return w, true
	}
	pw := &pacedWriter{ResponseWriter: w, ctx: r.Context(), b: b, after: -1, waited: p.m.waited}
	if lr := p.limits.cfg.LimitRate; lr.Rate > 0 {
		pw.after, pw.perResp = lr.After, rateOf(lr.Rate)
	}
	return pw, true
}

// forbid answers 403. Nothing is said about why: a prober learns nothing.
func forbid(w http.ResponseWriter) {
	deny(w, http.StatusForbidden, "403 Forbidden\n")
}

// tooMany answers 429 with Retry-After in whole seconds, rounded up (RFC
// 6585 §4, RFC 9110 §10.2.3).
func tooMany(w http.ResponseWriter, retry time.Duration) {
	secs := int64((retry + time.Second - 1) / time.Second)
	w.Header()["Retry-After"] = []string{strconv.FormatInt(max(secs, 1), 10)}
	deny(w, http.StatusTooManyRequests, "429 Too Many Requests\n")
}

func deny(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	w.Write([]byte(body))
}

// Gate holds the Policy in force for one host, so that a reload replaces
// it with one atomic store while requests keep flowing: each request reads
// the Policy once and is judged by it whole. The zero Gate, or one holding
// nil, admits everything. It is safe for concurrent use.
type Gate struct {
	p atomic.Pointer[Policy]
}

// NewGate returns a Gate holding p (which may be nil).
func NewGate(p *Policy) *Gate {
	g := &Gate{}
	g.Store(p)
	return g
}

// Store makes p the Policy in force; nil, or a Policy with every rule off,
// admits everything at the cost of one atomic load.
func (g *Gate) Store(p *Policy) {
	if !p.Enabled() {
		p = nil
	}
	g.p.Store(p)
}

// Load returns the Policy in force, nil when no rule is on.
func (g *Gate) Load() *Policy { return g.p.Load() }

// Admit applies the Policy in force (Policy.Admit). It is what an
// edge.Host's Admit is set to.
func (g *Gate) Admit(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
	p := g.p.Load()
	if p == nil {
		return w, true
	}
	return p.Admit(w, r)
}
