package edge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus series. Counters for each label value
// are resolved once, so the request path only adds atomically.
type metrics struct {
	hit, stale, miss, pass, errors prometheus.Counter
	origin                         [6]prometheus.Counter // by status class
	fills, fillErrors              prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, inFlight func() float64) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_requests_total",
		Help: "Client requests by how the cache answered them (hit, stale, miss, pass, error).",
	}, []string{"cache"})
	origin := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_origin_responses_total",
		Help: "Responses received from upstream, by status class.",
	}, []string{"class"})
	fills := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_fills_total",
		Help: "Upstream fetches made to fill the cache (coalesced misses count once).",
	})
	fillErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_fill_errors_total",
		Help: "Upstream fetches that failed or were cut short.",
	})
	flights := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outpost_flights_in_progress",
		Help: "Coalesced upstream fetches in progress.",
	}, inFlight)
	if reg != nil {
		reg.MustRegister(requests, origin, fills, fillErrors, flights)
	}
	m := &metrics{
		hit:        requests.WithLabelValues("hit"),
		stale:      requests.WithLabelValues("stale"),
		miss:       requests.WithLabelValues("miss"),
		pass:       requests.WithLabelValues("pass"),
		errors:     requests.WithLabelValues("error"),
		fills:      fills,
		fillErrors: fillErrors,
	}
	for i, class := range [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.origin[i] = origin.WithLabelValues(class)
	}
	return m
}

func (m *metrics) originStatus(code int) {
	class := code / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.origin[class].Inc()
}

// served counts a response by its Cache-Status entry.
func (m *metrics) served(cs *cacheStatus) {
	switch {
	case cs.hit && cs.hasTTL && cs.ttl < 0:
		m.stale.Inc()
	case cs.hit:
		m.hit.Inc()
	case cs.detail == "stale-if-error" || cs.detail == "origin-unreachable":
		m.stale.Inc()
	case cs.fwd == fwdMethod || cs.fwd == fwdBypass:
		m.pass.Inc()
	case cs.fwd != "":
		m.miss.Inc()
	default:
		m.errors.Inc()
	}
}
