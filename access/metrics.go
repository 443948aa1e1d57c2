package access

import (
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the Policies of a node decide, for every host:
//
//	outpost_access_allowed_total{host, rule}          requests a rule let through
//	outpost_access_denied_total{host, rule, reason}   requests a rule refused (403 or 429)
//	outpost_rate_limit_clients{host, table}           entries in a table of token buckets
//	outpost_rate_limit_evictions_total{host, table}   entries forgotten to make room
//	outpost_rate_limit_delay_seconds_total{host}      time response writes waited for bandwidth
//
// rule is signed_url, hotlink or rate_limit; table is client or prefix.
// Counters keep counting across reloads: a new Policy for a host adds to
// the same series, and the clients gauge follows the Policy built last for
// each host. A Metrics is safe for concurrent use.
type Metrics struct {
	allowed   *prometheus.CounterVec
	denied    *prometheus.CounterVec
	evictions *prometheus.CounterVec
	delay     *prometheus.CounterVec
	clients   *prometheus.Desc

	mu   sync.Mutex
	live map[string]*Policy // the newest Policy of each host
}

// NewMetrics returns a Metrics registered with reg; a nil reg registers
// nothing (the counts are kept but not exported). Its error is a failed
// registration, such as a second Metrics on one registry.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		allowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_access_allowed_total",
			Help: "Requests an access rule (signed_url, hotlink, rate_limit) let through.",
		}, []string{"host", "rule"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_access_denied_total",
			Help: "Requests an access rule refused: 403 (signed_url, hotlink) or 429 (rate_limit), by reason.",
		}, []string{"host", "rule", "reason"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_rate_limit_evictions_total",
			Help: "Clients (or prefixes) forgotten because their table of token buckets was full.",
		}, []string{"host", "table"}),
		delay: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_rate_limit_delay_seconds_total",
			Help: "Time response writes waited for a bandwidth limit.",
		}, []string{"host"}),
		clients: prometheus.NewDesc("outpost_rate_limit_clients",
			"Clients (or prefixes) in a table of token buckets.", []string{"host", "table"}, nil),
		live: make(map[string]*Policy),
	}
	if err := promreg.Register(reg, "access", m.allowed, m.denied, m.evictions, m.delay, (*tableGauge)(m)); err != nil {
		return nil, err
	}
	return m, nil
}

// tableGauge exports outpost_rate_limit_clients at scrape time.
type tableGauge Metrics

func (g *tableGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.clients }

func (g *tableGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for host, p := range g.live {
		if p.limits == nil {
			continue
		}
		for _, t := range []struct {
			name string
			t    *table
		}{{"client", p.limits.client}, {"prefix", p.limits.prefix}} {
			if t.t != nil {
				ch <- prometheus.MustNewConstMetric(g.clients, prometheus.GaugeValue, float64(t.t.len()), host, t.name)
			}
		}
	}
}

// track makes p the Policy whose tables the gauge shows for its host.
func (m *Metrics) track(p *Policy) {
	m.mu.Lock()
	m.live[p.host] = p
	m.mu.Unlock()
}

// hostMetrics are one host's series, resolved once so the request path
// only adds.
type hostMetrics struct {
	signedOK, hotlinkOK, rateOK prometheus.Counter
	signedDenied                map[string]prometheus.Counter
	hotlinkDenied               map[string]prometheus.Counter
	rateDenied                  map[string]prometheus.Counter
	delay                       prometheus.Counter
}

const (
	ruleSigned  = "signed_url"
	ruleHotlink = "hotlink"
	ruleRate    = "rate_limit"
)

func (m *Metrics) forHost(host string) hostMetrics {
	reasons := func(rule string, rs ...string) map[string]prometheus.Counter {
		out := make(map[string]prometheus.Counter, len(rs))
		for _, r := range rs {
			out[r] = m.denied.WithLabelValues(host, rule, r)
		}
		return out
	}
	return hostMetrics{
		signedOK:      m.allowed.WithLabelValues(host, ruleSigned),
		hotlinkOK:     m.allowed.WithLabelValues(host, ruleHotlink),
		rateOK:        m.allowed.WithLabelValues(host, ruleRate),
		signedDenied:  reasons(ruleSigned, reasonMissing, reasonExpired, reasonScope, reasonIP, reasonInvalid),
		hotlinkDenied: reasons(ruleHotlink, reasonEmpty, reasonReferer),
		rateDenied:    reasons(ruleRate, reasonClientRequests, reasonPrefixRequests, reasonClientBandwidth, reasonPrefixBandwidth),
		delay:         m.delay.WithLabelValues(host),
	}
}

func (hm *hostMetrics) waited(d time.Duration) { hm.delay.Add(d.Seconds()) }
