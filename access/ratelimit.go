package access

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit configures a host's rate limits. Each limit is off at zero;
// with all of them zero, rate limiting is off.
type RateLimit struct {
	// Client limits each client address.
	Client Limit
	// Prefix limits each /24 (IPv4) or /64 (IPv6) prefix, all its
	// addresses together: one network cannot escape the Client limit by
	// spreading over many addresses.
	Prefix Limit
	// LimitRate caps each response after its first bytes.
	LimitRate LimitRate
	// MaxClients bounds each table of token buckets (one for addresses,
	// one for prefixes): when a table is full, the client seen least
	// recently is forgotten. Zero means 65536; an entry takes about 350
	// bytes, so a full table about 23 MB.
	MaxClients int
}

// Limit is a token bucket for requests and one for bytes.
type Limit struct {
	// Requests is the sustained request rate allowed, per second. A
	// request over it gets 429 with Retry-After. Zero means no limit.
	Requests float64
	// Burst is how many requests may come at once above the rate. Zero
	// means one second's worth (at least 1).
	Burst int
	// Bandwidth is the sustained rate of response bytes, per second,
	// shared by all the responses to the client (or prefix): their bodies
	// are paced to it, and a new request while more than a second's worth
	// is queued gets 429 with Retry-After. Up to one second's worth goes
	// out at full speed. Zero means no limit.
	Bandwidth int64
}

// LimitRate caps each response's speed once it has sent After bytes, like
// nginx's limit_rate_after and limit_rate: large media starts fast, then
// streams no faster than it plays.
type LimitRate struct {
	// After is how many body bytes are sent at full speed. Zero means the
	// cap applies from the first byte.
	After int64
	// Rate is the cap, in bytes per second. Zero turns LimitRate off.
	Rate int64
}

const defaultMaxClients = 1 << 16

// chunk is the most bytes a paced write sends at once.
const chunk = 16 << 10

// Why a request was rate limited: the reason label of
// outpost_access_denied_total{rule="rate_limit"}.
const (
	reasonClientRequests  = "client_requests"
	reasonPrefixRequests  = "prefix_requests"
	reasonClientBandwidth = "client_bandwidth"
	reasonPrefixBandwidth = "prefix_bandwidth"
)

// limiter applies a host's RateLimit. It is safe for concurrent use.
type limiter struct {
	client, prefix *table // nil when that Limit is off
	cfg            RateLimit
	paced          bool // some bandwidth rule applies: responses are wrapped
}

func (l Limit) on() bool { return l.Requests > 0 || l.Bandwidth > 0 }

func newLimiter(cfg RateLimit) (*limiter, error) {
	for _, c := range []struct {
		name string
		l    Limit
	}{{"client", cfg.Client}, {"prefix", cfg.Prefix}} {
		switch {
		case c.l.Requests < 0 || math.IsNaN(c.l.Requests) || math.IsInf(c.l.Requests, 0):
			return nil, fmt.Errorf("rate_limit: %s.requests %v: must be a positive rate", c.name, c.l.Requests)
		case c.l.Burst < 0:
			return nil, fmt.Errorf("rate_limit: %s.burst %d: must not be negative", c.name, c.l.Burst)
		case c.l.Bandwidth < 0:
			return nil, fmt.Errorf("rate_limit: %s.bandwidth %d: must not be negative", c.name, c.l.Bandwidth)
		case c.l.Burst > 0 && c.l.Requests == 0:
			return nil, fmt.Errorf("rate_limit: %s.burst is set without %s.requests", c.name, c.name)
		}
	}
	switch {
	case cfg.MaxClients < 0:
		return nil, fmt.Errorf("rate_limit: max_clients %d: must not be negative", cfg.MaxClients)
	case cfg.LimitRate.After < 0 || cfg.LimitRate.Rate < 0:
		return nil, fmt.Errorf("rate_limit: limit_rate: after and rate must not be negative")
	case cfg.LimitRate.After > 0 && cfg.LimitRate.Rate == 0:
		return nil, fmt.Errorf("rate_limit: limit_rate.after is set without limit_rate.rate")
	}
	if !cfg.Client.on() && !cfg.Prefix.on() && cfg.LimitRate.Rate == 0 {
		return nil, nil
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = defaultMaxClients
	}
	l := &limiter{cfg: cfg}
	l.paced = cfg.Client.Bandwidth > 0 || cfg.Prefix.Bandwidth > 0 || cfg.LimitRate.Rate > 0
	if cfg.Client.on() {
		l.client = newTableFor(cfg.Client, cfg.MaxClients)
	}
	if cfg.Prefix.on() {
		l.prefix = newTableFor(cfg.Prefix, cfg.MaxClients)
	}
	return l, nil
}

func newTableFor(l Limit, max int) *table {
	burst := l.Burst
	if burst == 0 {
		burst = max1(int(math.Ceil(l.Requests)))
	}
	return newTable(max, rate.Limit(l.Requests), burst, rate.Limit(l.Bandwidth), bandwidthBurst(l.Bandwidth))
}

// bandwidthBurst is a byte bucket's size: one second's worth, and at least
// one paced write.
func bandwidthBurst(perSecond int64) int {
	return int(min(max(perSecond, chunk), math.MaxInt32))
}

func max1(n int) int { return max(n, 1) }

func rateOf(perSecond int64) rate.Limit { return rate.Limit(perSecond) }

// buckets are the byte buckets a response is paced by; nil when off.
type buckets struct {
	client, prefix *rate.Limiter
}

// admit takes a request token from client's buckets and checks that its
// byte buckets are not too far behind. It returns "" and the byte buckets
// to pace the response by, or the reason for refusing and how long the
// client should wait.
func (l *limiter) admit(now time.Time, client netip.Addr) (reason string, retry time.Duration, b buckets) {
	if !client.IsValid() {
		return "", 0, b // a request built in process: nobody to limit
	}
	if l.client != nil {
		e := l.client.get(client)
		if d, limited := take(&e.req, l.cfg.Client.Requests, now); limited {
			return reasonClientRequests, d, b
		}
		if l.cfg.Client.Bandwidth > 0 {
			if d, behind := backlog(&e.bw, l.cfg.Client.Bandwidth, now); behind {
				return reasonClientBandwidth, d, b
			}
			b.client = &e.bw
		}
	}
	if l.prefix != nil {
		e := l.prefix.get(prefixOf(client))
		if d, limited := take(&e.req, l.cfg.Prefix.Requests, now); limited {
			return reasonPrefixRequests, d, b
		}
		if l.cfg.Prefix.Bandwidth > 0 {
			if d, behind := backlog(&e.bw, l.cfg.Prefix.Bandwidth, now); behind {
				return reasonPrefixBandwidth, d, b
			}
			b.prefix = &e.bw
		}
	}
	return "", 0, b
}

// take takes one request token, or reports how long until there is one.
func take(lim *rate.Limiter, perSecond float64, now time.Time) (time.Duration, bool) {
	if perSecond <= 0 || lim.AllowN(now, 1) {
		return 0, false
	}
	missing := 1 - lim.TokensAt(now)
	return time.Duration(missing / perSecond * float64(time.Second)), true
}

// backlog reports whether a byte bucket owes more than a second's worth of
// bytes (responses in flight have reserved them), and how long until it
// owes no more than that.
func backlog(lim *rate.Limiter, perSecond int64, now time.Time) (time.Duration, bool) {
	owed := -lim.TokensAt(now) - float64(perSecond)
	if owed <= 0 {
		return 0, false
	}
	return time.Duration(owed / float64(perSecond) * float64(time.Second)), true
}

// prefixOf returns the /24 (IPv4) or /64 (IPv6) network of a.
func prefixOf(a netip.Addr) netip.Addr {
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p.Addr()
}
