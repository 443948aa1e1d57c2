package edge

import (
	"errors"

	"github.com/outpost-cdn/outpost/internal/promreg"
	"github.com/outpost-cdn/outpost/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus series. Counters for each label value
// are resolved once, so the request path only adds atomically.
type metrics struct {
	hit, stale, miss, pass, errors prometheus.Counter
	origin                         [6]prometheus.Counter // by status class
	fills, fillErrors              prometheus.Counter
	// writes counts what became of the bodies the edge tried to store.
	written, notAdmitted, tooLarge, purged, writeErrors prometheus.Counter
	notStoredBy                                         map[string]prometheus.Counter // by reason (privacy.go); read-only
	rangesOverLimit                                     prometheus.Counter
	fillsRefused                                        map[string]prometheus.Counter // by limit (limits.go); read-only
}

func newMetrics(reg prometheus.Registerer, inFlight func() float64, more ...prometheus.Collector) (*metrics, error) {
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
	rangesOverLimit := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_ranges_over_limit_total",
		Help: "Range requests with more parts than the limit (max_ranges), answered with the whole representation.",
	})
	fillsRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_fills_refused_total",
		Help: "Upstream fetches not made because of a fill limit: max_fills (a miss answered 503, or a stale response served without revalidating), max_waiters (a request answered 503).",
	}, []string{"limit"})
	flights := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outpost_flights_in_progress",
		Help: "Coalesced upstream fetches in progress.",
	}, inFlight)
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_cache_writes_total",
		Help: "Responses the edge tried to store, by result: stored, not_admitted (the memory tier's admission policy kept what it had), too_large, purged (a purge arrived during the fill), error.",
	}, []string{"result"})
	notStored := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outpost_not_stored_total",
		Help: "Responses fetched from upstream for a client and not stored, by reason (the Cache-Status detail: no-store, private, authorization, vary-star, status, no-freshness, set-cookie, cookie, type-mismatch).",
	}, []string{"reason"})
	if err := promreg.Register(reg, "edge", append([]prometheus.Collector{requests, origin, fills, fillErrors, rangesOverLimit, fillsRefused, flights, writes, notStored}, more...)...); err != nil {
		return nil, err
	}
	m := &metrics{
		hit:        requests.WithLabelValues("hit"),
		stale:      requests.WithLabelValues("stale"),
		miss:       requests.WithLabelValues("miss"),
		pass:       requests.WithLabelValues("pass"),
		errors:     requests.WithLabelValues("error"),
		fills:      fills,
		fillErrors: fillErrors,

		written:         writes.WithLabelValues("stored"),
		notAdmitted:     writes.WithLabelValues("not_admitted"),
		tooLarge:        writes.WithLabelValues("too_large"),
		purged:          writes.WithLabelValues("purged"),
		writeErrors:     writes.WithLabelValues("error"),
		rangesOverLimit: rangesOverLimit,
		notStoredBy:     make(map[string]prometheus.Counter, len(notStoredReasons)),
		fillsRefused: map[string]prometheus.Counter{
			limitFills:   fillsRefused.WithLabelValues(limitFills),
			limitWaiters: fillsRefused.WithLabelValues(limitWaiters),
		},
	}
	for _, r := range notStoredReasons {
		m.notStoredBy[r] = notStored.WithLabelValues(r)
	}
	for i, class := range [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.origin[i] = origin.WithLabelValues(class)
	}
	return m, nil
}

func (m *metrics) originStatus(code int) {
	class := code / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.origin[class].Inc()
}

// served counts a response by its Cache-Status entry, and an upstream
// response not stored by the reason its detail gives (counted once: not
// again for the requests that joined its fetch).
func (m *metrics) served(cs *cacheStatus) {
	if cs.fwd != "" && !cs.stored && !cs.collapsed && cs.detail != "" {
		if c, ok := m.notStoredBy[cs.detail]; ok {
			c.Inc()
		}
	}
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

// stores counts the result of an attempt to store a body: err is what
// Put, Write or Commit returned (nil: stored), or errPurged.
func (m *metrics) stores(err error) {
	switch {
	case err == nil:
		m.written.Inc()
	case errors.Is(err, storage.ErrNotAdmitted):
		m.notAdmitted.Inc()
	case errors.Is(err, storage.ErrTooLarge):
		m.tooLarge.Inc()
	case errors.Is(err, errPurged):
		m.purged.Inc()
	default:
		m.writeErrors.Inc()
	}
}
